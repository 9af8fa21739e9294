"""`codebase-mcp serve`: the MCP gateway on stdio (default) or Streamable HTTP."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from starlette.middleware import Middleware

from codebase_indexer.connections import (DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT,
                                          GATEWAY_APPLICATION_NAME, MIN_CONNECTIONS, ConnectionLimits)
from codebase_indexer.log_redaction import redact_logs
from codebase_indexer.shards import MAX_SHARDS

from .auth import TOKEN_ENV, InsecureHttpConfiguration, http_auth
from .control_plane.base import ControlPlane
from .host_guard import ALLOWED_HOSTS_ENV, ALLOWED_ORIGINS_ENV, ANY, HostOriginGuard, InvalidAllowList, build_policy

ALLOWED_ROOTS_ENV = "CODEBASE_MCP_ALLOWED_ROOTS"
METRICS_PUBLIC_ENV = "CODEBASE_MCP_METRICS_PUBLIC"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--transport", choices=("stdio", "http"), default=env("CODEBASE_MCP_TRANSPORT", "stdio"),
                        help="stdio (what Claude Code and Claude Desktop launch) or Streamable HTTP")
    parser.add_argument("--host", default=env("CODEBASE_MCP_HOST", "127.0.0.1"), help="HTTP bind address")
    parser.add_argument("--port", type=int, default=int(env("CODEBASE_MCP_PORT", "8000")), help="HTTP port")
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    parser.add_argument("--no-auth", action="store_true",
                        help=f"serve HTTP without the bearer token ({TOKEN_ENV}); loopback addresses only")
    parser.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                        help="HTTP: a Host name clients use besides localhost, 127.0.0.1, [::1] and --host "
                             f"(repeatable; NAME or NAME:PORT; env {ALLOWED_HOSTS_ENV}, comma-separated); "
                             "any other Host is refused with 403 (DNS-rebinding protection)")
    parser.add_argument("--allowed-origin", action="append", default=None, metavar="ORIGIN",
                        help="HTTP: a browser Origin (scheme://host[:port]) allowed besides the allowed hosts' own "
                             f"(repeatable; env {ALLOWED_ORIGINS_ENV}, comma-separated)")
    parser.add_argument("--metrics-public", action="store_true",
                        help="HTTP: serve /metrics (Prometheus text) without the bearer token, for scrapers "
                             f"(env {METRICS_PUBLIC_ENV}=true); the Host/Origin check still applies. "
                             "Default: /metrics needs the token like every other route")
    parser.add_argument("--control-plane", choices=("local", "kubernetes"),
                        default=env("CODEBASE_MCP_CONTROL_PLANE", "local"),
                        help="local: embedded PostgreSQL and indexer processes; "
                             "kubernetes: CodebaseProject/IndexingRun resources run by the operator")
    parser.add_argument("--allowed-root", action="append", type=Path, default=None, metavar="DIR",
                        help=f"repositories must be under DIR (repeatable; env {ALLOWED_ROOTS_ENV}, "
                             "separated by ':'); default: anywhere (local stdio), the workspace root (kubernetes); "
                             "HTTP with the local control plane needs at least one")
    parser.add_argument("--max-concurrent-runs", type=_positive_int,
                        default=env("CODEBASE_MCP_MAX_CONCURRENT_RUNS", "2"), metavar="N",
                        help="local: indexer processes this gateway runs at once; later runs wait in a "
                             "queue (env CODEBASE_MCP_MAX_CONCURRENT_RUNS, default 2)")
    parser.add_argument("--parallelism", type=_parallelism, default=env("CODEBASE_MCP_PARALLELISM", "1"),
                        metavar="N",
                        help="local: indexer processes per run, each indexing its share of the files (the "
                             "shards a Kubernetes run of parallelism N has; env CODEBASE_MCP_PARALLELISM, "
                             "default 1, at most 64)")
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


def metrics_public(args: argparse.Namespace) -> bool:
    """--metrics-public, or its environment variable; raises ValueError for a value that is not a boolean."""
    text = os.environ.get(METRICS_PUBLIC_ENV, "").strip().lower()
    if text not in _TRUE + _FALSE:
        raise ValueError(f"{METRICS_PUBLIC_ENV}={os.environ[METRICS_PUBLIC_ENV]!r} is not a boolean: use true or false")
    return args.metrics_public or text in _TRUE


class MissingAllowedRoot(ValueError):
    """The gateway would serve HTTP with no confinement, or a configured root does not exist."""


def _parallelism(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SHARDS} (shards per run), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def allowed_roots(args: argparse.Namespace) -> list[Path]:
    """The configured roots, absolute and as written (the checks also match their resolved form)."""
    if args.allowed_root:
        roots = args.allowed_root
    else:
        roots = [Path(p) for p in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    roots = [Path(os.path.abspath(root.expanduser())) for root in roots]
    for root in roots:
        if not root.is_dir():
            raise MissingAllowedRoot(f"--allowed-root {root} is not an existing directory: "
                                     "give the folder that holds the repositories to index")
    return roots


def confinement(args: argparse.Namespace, control_plane: ControlPlane) -> list[Path]:
    """The roots the gateway confines paths to. Over HTTP there must be at least one: any token
    holder (or, with --no-auth, any local process) could otherwise index /etc or /proc/self/root."""
    roots = allowed_roots(args) or control_plane.default_allowed_roots()
    if args.transport == "http" and not roots:
        raise MissingAllowedRoot(
            f"HTTP transport needs at least one --allowed-root DIR (or {ALLOWED_ROOTS_ENV}, separated by "
            f"'{os.pathsep}'): the folders holding the repositories clients may index, e.g. --allowed-root ~/src")
    return roots


def _listed(values: list[str] | None, env_name: str) -> list[str]:
    if values:
        return values
    return [v.strip() for v in os.environ.get(env_name, "").split(",") if v.strip()]


def http_middleware(args: argparse.Namespace) -> list[Middleware]:
    """The Host/Origin guard every HTTP request passes first (before the token is even looked at)."""
    hosts = _listed(args.allowed_host, ALLOWED_HOSTS_ENV)
    if args.no_auth and ANY in hosts:
        raise InsecureHttpConfiguration(
            f"--allowed-host '{ANY}' turns off DNS-rebinding protection; with --no-auth any web page could "
            f"use the gateway: name the hosts instead, or set {TOKEN_ENV}")
    try:
        policy = build_policy(args.host, hosts, _listed(args.allowed_origin, ALLOWED_ORIGINS_ENV))
    except InvalidAllowList as exc:
        raise InsecureHttpConfiguration(str(exc)) from None
    return [Middleware(HostOriginGuard, policy=policy)]


def checked_configuration(args: argparse.Namespace):
    """Token, Host/Origin guard, control plane and roots; refuses an HTTP setup that would be open."""
    http = args.transport == "http"
    auth = http_auth(args.host, os.environ.get(TOKEN_ENV), no_auth=args.no_auth) if http else None
    middleware = http_middleware(args) if http else []
    control_plane = control_plane_for(args)
    return auth, middleware, control_plane, confinement(args, control_plane)


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

    return LocalControlPlane(max_concurrent_runs=args.max_concurrent_runs, limits=limits,
                             parallelism=args.parallelism)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        public_metrics = metrics_public(args)
    except ValueError as exc:
        print(f"codebase-mcp serve: {exc}", file=sys.stderr)
        return 2
    try:
        auth, middleware, control_plane, roots = checked_configuration(args)
    except (InsecureHttpConfiguration, MissingAllowedRoot) as exc:
        print(f"codebase-mcp serve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # from connection_limits
        print(f"codebase-mcp serve: --max-database-connections / --statement-timeout: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()
    from .server import create_server

    server = create_server(control_plane, allowed_roots=roots, auth=auth, metrics_public=public_metrics)
    # SIGTERM (Kubernetes, a closing editor) stops like Ctrl-C: the lifespan stops the runs, and
    # exit handlers release the embedded database, which the default SIGTERM action would skip.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.transport == "http":
            asyncio.run(server.run_http_async(show_banner=False, host=args.host, port=args.port,
                                              path=args.path, log_level=args.log_level.lower(),
                                              middleware=middleware))
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
