"""`codebase-mcp serve`: the MCP gateway on stdio (default) or Streamable HTTP."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from codebase_indexer.connections import (DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT,
                                          GATEWAY_APPLICATION_NAME, MIN_CONNECTIONS, ConnectionLimits)

from .auth import TOKEN_ENV, InsecureHttpConfiguration, http_auth
from .control_plane.base import ControlPlane

ALLOWED_ROOTS_ENV = "CODEBASE_MCP_ALLOWED_ROOTS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--transport", choices=("stdio", "http"), default=env("CODEBASE_MCP_TRANSPORT", "stdio"),
                        help="stdio (what Claude Code and Claude Desktop launch) or Streamable HTTP")
    parser.add_argument("--host", default=env("CODEBASE_MCP_HOST", "127.0.0.1"), help="HTTP bind address")
    parser.add_argument("--port", type=int, default=int(env("CODEBASE_MCP_PORT", "8000")), help="HTTP port")
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    parser.add_argument("--no-auth", action="store_true",
                        help=f"serve HTTP without the bearer token ({TOKEN_ENV}); loopback addresses only")
    parser.add_argument("--control-plane", choices=("local", "kubernetes"),
                        default=env("CODEBASE_MCP_CONTROL_PLANE", "local"),
                        help="local: embedded PostgreSQL and indexer processes; "
                             "kubernetes: CodebaseProject/IndexingRun resources run by the operator")
    parser.add_argument("--allowed-root", action="append", type=Path, default=None, metavar="DIR",
                        help=f"repositories must be under DIR (repeatable; env {ALLOWED_ROOTS_ENV}, "
                             "separated by ':'); default: anywhere (local), the workspace root (kubernetes)")
    parser.add_argument("--namespace", default=None,
                        help="kubernetes: namespace of the resources (default: the pod's, else 'default')")
    parser.add_argument("--workspace-root", type=Path, default=Path(env("CODEBASE_MCP_WORKSPACE_ROOT", "/workspace")),
                        help="kubernetes: the directory mounted into indexer pods (env CODEBASE_MCP_WORKSPACE_ROOT)")
    parser.add_argument("--max-database-connections", type=int,
                        default=int(env("CODEBASE_MCP_MAX_DATABASE_CONNECTIONS", str(DEFAULT_MAX_CONNECTIONS))),
                        metavar="N",
                        help="ceiling on the gateway's PostgreSQL connections, whatever the number of "
                             "projects; idle project pools are closed, least recently used first "
                             f"(default {DEFAULT_MAX_CONNECTIONS}, at least {MIN_CONNECTIONS}; "
                             "env CODEBASE_MCP_MAX_DATABASE_CONNECTIONS)")
    parser.add_argument("--statement-timeout", type=float,
                        default=float(env("CODEBASE_MCP_STATEMENT_TIMEOUT", str(DEFAULT_STATEMENT_TIMEOUT))),
                        metavar="SECONDS",
                        help="longest a search query may run before it is stopped with an error "
                             f"(default {DEFAULT_STATEMENT_TIMEOUT:g}; 0 = none; env CODEBASE_MCP_STATEMENT_TIMEOUT)")
    parser.add_argument("--log-level", default=env("CODEBASE_MCP_LOG_LEVEL", "WARNING"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def allowed_roots(args: argparse.Namespace) -> list[Path]:
    if args.allowed_root:
        roots = args.allowed_root
    else:
        roots = [Path(p) for p in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [root.expanduser().resolve() for root in roots]


def connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    """Raises ValueError with a message naming the flag."""
    return ConnectionLimits(max_connections=args.max_database_connections,
                            statement_timeout=args.statement_timeout, application_name=GATEWAY_APPLICATION_NAME)


def control_plane_for(args: argparse.Namespace) -> ControlPlane:
    limits = connection_limits(args)
    if args.control_plane == "kubernetes":
        from .control_plane.kubernetes import KubernetesControlPlane

        return KubernetesControlPlane(namespace=args.namespace, workspace_root=args.workspace_root, limits=limits)
    from .control_plane.local import LocalControlPlane

    return LocalControlPlane(limits=limits)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        auth = (http_auth(args.host, os.environ.get(TOKEN_ENV), no_auth=args.no_auth)
                if args.transport == "http" else None)
    except InsecureHttpConfiguration as exc:
        print(f"codebase-mcp serve: {exc}", file=sys.stderr)
        return 2
    from .server import create_server

    try:
        control_plane = control_plane_for(args)
    except ValueError as exc:
        print(f"codebase-mcp serve: --max-database-connections / --statement-timeout: {exc}", file=sys.stderr)
        return 2
    server = create_server(control_plane, allowed_roots=allowed_roots(args), auth=auth)
    # SIGTERM (Kubernetes, a closing editor) stops like Ctrl-C: the lifespan stops the runs, and
    # exit handlers release the embedded database, which the default SIGTERM action would skip.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.transport == "http":
            asyncio.run(server.run_http_async(show_banner=False, host=args.host, port=args.port,
                                              path=args.path, log_level=args.log_level.lower()))
        else:
            asyncio.run(server.run_stdio_async(show_banner=False, log_level=args.log_level))
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:  # the control plane could not start: say why, without a traceback
        print(f"codebase-mcp serve: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codebase-mcp serve", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
