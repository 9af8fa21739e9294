"""`codebase-operator` (also `codebase-mcp operator`): run the operator.

Its options are the fields of OperatorSettings (settings.py): each is a flag and an
environment variable, so a Deployment can be configured from a ConfigMap and the admin
database URL from a Secret.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from collections.abc import Sequence

import kopf
import pykube

from codebase_indexer import configuration

from . import GROUP, metrics
from .config import OperatorConfig
from .context import Context
from .handlers import build_registry
from .kube import load_config
from .settings import OperatorSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The operator's options; `codebase-mcp operator` adds them to its own subcommand."""
    configuration.add_arguments(parser, OperatorSettings)


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    """Flags, then the environment, then the defaults; raises InvalidSetting naming a bad value."""
    return configuration.load(OperatorSettings, args)


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    return settings_from_args(args).operator_config()


def namespaces_from_args(args: argparse.Namespace) -> list[str]:
    """The namespaces to watch; empty means cluster-wide."""
    return settings_from_args(args).watched_namespaces()


async def operate(config: OperatorConfig, *, namespaces: Sequence[str] = (),
                  liveness_endpoint: str | None = None, peering_name: str | None = None,
                  stop_flag: asyncio.Event | threading.Event | None = None,
                  ready_flag: asyncio.Event | threading.Event | None = None) -> None:
    """Run the operator in the current event loop until `stop_flag` is set (or it is cancelled)."""
    api = pykube.HTTPClient(load_config(config.kubeconfig))
    metrics.forget_runs()
    with metrics.MetricsServer(config.metrics_port):
        await _run_kopf(config, api, namespaces, liveness_endpoint, peering_name, stop_flag, ready_flag)


async def _run_kopf(config: OperatorConfig, api: pykube.HTTPClient, namespaces: Sequence[str],
                    liveness_endpoint: str | None, peering_name: str | None,
                    stop_flag: asyncio.Event | threading.Event | None,
                    ready_flag: asyncio.Event | threading.Event | None) -> None:
    await kopf.operator(
        registry=build_registry(poll_interval=config.poll_interval,
                                error_backoff=min(config.retry_max_delay, 10.0)),
        memo=kopf.Memo(context=Context(config=config, api=api, namespaces=tuple(namespaces))),
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness_endpoint,
        standalone=peering_name is None,
        peering_name=peering_name,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run(args: argparse.Namespace) -> int:
    """Run with parsed arguments; the exit code."""
    try:
        settings = settings_from_args(args)
        config = settings.operator_config()
    except (ValueError, OSError) as exc:
        print(f"codebase-operator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if settings.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(operate(config, namespaces=settings.watched_namespaces(),
                            liveness_endpoint=settings.liveness_endpoint, peering_name=settings.peering))
    except KeyboardInterrupt:
        return 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="codebase-operator",
        description=f"Reconcile CodebaseProject and IndexingRun resources (group {GROUP}).")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
