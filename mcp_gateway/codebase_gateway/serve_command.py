"""`codebase-mcp serve`: the MCP gateway on stdio (default) or Streamable HTTP."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from starlette.middleware import Middleware

from codebase_indexer import configuration
from codebase_indexer.configuration import InvalidSetting, variable
from codebase_indexer.connections import GATEWAY_APPLICATION_NAME, ConnectionLimits
from codebase_indexer.log_redaction import redact_logs
from codebase_indexer.settings import use_offline_model

from .auth import TOKEN_ENV, InsecureHttpConfiguration, http_auth
from .control_plane.base import ControlPlane
from .host_guard import ANY, HostOriginGuard, InvalidAllowList, build_policy
from .settings import GatewaySettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_arguments(parser, GatewaySettings)


def parse_settings(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """The gateway's settings from command-line arguments and the environment."""
    parser = argparse.ArgumentParser(prog="codebase-mcp serve")
    add_arguments(parser)
    return configuration.load(GatewaySettings, parser.parse_args(argv), environ)


class MissingAllowedRoot(ValueError):
    """The gateway would serve HTTP with no confinement, or a configured root does not exist."""


def allowed_roots(settings: GatewaySettings) -> list[Path]:
    """The configured roots, absolute and as written (the checks also match their resolved form)."""
    roots = [Path(os.path.abspath(Path(root).expanduser())) for root in settings.allowed_roots]
    for root in roots:
        if not root.is_dir():
            raise MissingAllowedRoot(f"--allowed-root {root} is not an existing directory: "
                                     "give the folder that holds the repositories to index")
    return roots


def confinement(settings: GatewaySettings, control_plane: ControlPlane) -> list[Path]:
    """The roots the gateway confines paths to. Over HTTP there must be at least one: any token
    holder (or, with --no-auth, any local process) could otherwise index /etc or /proc/self/root."""
    roots = allowed_roots(settings) or control_plane.default_allowed_roots()
    if settings.transport == "http" and not roots:
        raise MissingAllowedRoot(
            f"HTTP transport needs at least one --allowed-root DIR (or {variable(GatewaySettings, 'allowed_roots')}, "
            f"separated by '{os.pathsep}'): the folders holding the repositories clients may index, "
            "e.g. --allowed-root ~/src")
    return roots


def http_middleware(settings: GatewaySettings) -> list[Middleware]:
    """The Host/Origin guard every HTTP request passes first (before the token is even looked at)."""
    if settings.no_auth and ANY in settings.allowed_hosts:
        raise InsecureHttpConfiguration(
            f"--allowed-host '{ANY}' turns off DNS-rebinding protection; with --no-auth any web page could "
            f"use the gateway: name the hosts instead, or set {TOKEN_ENV}")
    try:
        policy = build_policy(settings.host, list(settings.allowed_hosts), list(settings.allowed_origins))
    except InvalidAllowList as exc:
        raise InsecureHttpConfiguration(str(exc)) from None
    return [Middleware(HostOriginGuard, policy=policy)]


def checked_configuration(settings: GatewaySettings):
    """Token, Host/Origin guard, control plane and roots; refuses an HTTP setup that would be open."""
    http = settings.transport == "http"
    auth = http_auth(settings.host, settings.token, no_auth=settings.no_auth) if http else None
    middleware = http_middleware(settings) if http else []
    control_plane = control_plane_for(settings)
    return auth, middleware, control_plane, confinement(settings, control_plane)


def connection_limits(settings: GatewaySettings) -> ConnectionLimits:
    """Raises ValueError with a message naming the flag."""
    return ConnectionLimits(max_connections=settings.max_database_connections,
                            statement_timeout=settings.statement_timeout,
                            application_name=GATEWAY_APPLICATION_NAME)


def control_plane_for(settings: GatewaySettings) -> ControlPlane:
    limits = connection_limits(settings)
    if settings.control_plane == "kubernetes":
        from .control_plane.kubernetes import KubernetesControlPlane

        return KubernetesControlPlane(namespace=settings.namespace, workspace_root=settings.workspace_root,
                                      limits=limits)
    from .control_plane.local import LocalControlPlane
    from .control_plane.watcher import WatchSettings

    watch = WatchSettings(enabled=settings.watch, debounce_seconds=settings.watch_debounce,
                          max_delay_seconds=max(settings.watch_debounce, 10.0))
    return LocalControlPlane(max_concurrent_runs=settings.max_concurrent_runs, limits=limits, watch=watch,
                             watch_roots=allowed_roots(settings), parallelism=settings.parallelism)


def run(args: argparse.Namespace) -> int:
    use_offline_model()
    try:
        settings = configuration.load(GatewaySettings, args)
    except InvalidSetting as exc:
        print(f"codebase-mcp serve: {exc}", file=sys.stderr)
        return 2
    try:
        auth, middleware, control_plane, roots = checked_configuration(settings)
    except (InsecureHttpConfiguration, MissingAllowedRoot) as exc:
        print(f"codebase-mcp serve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # from connection_limits or the watch settings
        print(f"codebase-mcp serve: --max-database-connections / --statement-timeout / --watch-debounce: {exc}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()
    from .embedder import LazyEmbedder, query_embedder
    from .server import create_server

    embedder = LazyEmbedder(query_embedder(settings.query_threads))
    server = create_server(control_plane, allowed_roots=roots, auth=auth, embedder=embedder,
                           metrics_public=settings.metrics_public)
    # SIGTERM (Kubernetes, a closing editor) stops like Ctrl-C: the lifespan stops the runs, and
    # exit handlers release the embedded database, which the default SIGTERM action would skip.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if settings.transport == "http":
            asyncio.run(server.run_http_async(show_banner=False, host=settings.host, port=settings.port,
                                              path=settings.path, log_level=settings.log_level.lower(),
                                              middleware=middleware))
        else:
            asyncio.run(server.run_stdio_async(show_banner=False, log_level=settings.log_level))
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
