"""`codebase-operator` (also `codebase-mcp operator`): run the operator.

Every option has an environment variable, so a Deployment can be configured
from a ConfigMap and the admin database URL from a Secret.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import kopf
import pykube

from . import GROUP
from .config import JobDefaults, OperatorConfig, WorkspaceVolume
from .context import Context
from . import metrics
from .handlers import build_registry
from .kube import load_config

ENV_PREFIX = "CODEBASE_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The operator's options; `codebase-mcp operator` adds them to its own subcommand."""
    scope = parser.add_argument_group("what to watch")
    scope.add_argument("-n", "--namespace", dest="namespaces", action="append", default=None,
                       help="watch this namespace (repeatable; globs allowed); "
                            "default: $CODEBASE_NAMESPACES (comma-separated), else all namespaces")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="watch all namespaces (needs cluster-wide RBAC)")
    scope.add_argument("--kubeconfig", default=_env("KUBECONFIG"),
                       help="kubeconfig file [$CODEBASE_KUBECONFIG]; default: in-cluster, "
                            "else $KUBECONFIG or ~/.kube/config")
    scope.add_argument("--liveness", default=_env("LIVENESS_ENDPOINT"), metavar="URL",
                       help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz "
                            "[$CODEBASE_LIVENESS_ENDPOINT]")
    scope.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "9100") or 0),
                       metavar="PORT", help="serve Prometheus metrics at http://0.0.0.0:PORT/metrics "
                                            "(default 9100; 0 = off) [$CODEBASE_METRICS_PORT]")
    scope.add_argument("--peering", default=_env("PEERING"), metavar="NAME",
                       help="kopf peering object for several replicas (default: standalone) "
                            "[$CODEBASE_PEERING]")

    database = parser.add_argument_group("database")
    database.add_argument("--admin-database-url", default=_env("ADMIN_DATABASE_URL"),
                          help="PostgreSQL URL of a role that may create roles and databases "
                               "[$CODEBASE_ADMIN_DATABASE_URL]; its host is also what indexer pods use")
    database.add_argument("--admin-database-url-file", default=_env("ADMIN_DATABASE_URL_FILE"),
                          help="read the admin URL from this file, e.g. a mounted Secret "
                               "[$CODEBASE_ADMIN_DATABASE_URL_FILE]")

    indexer = parser.add_argument_group("indexer Jobs")
    indexer.add_argument("--indexer-image", default=_env("INDEXER_IMAGE", "codebase-mcp-indexer:latest"),
                         help="container image of the indexer [$CODEBASE_INDEXER_IMAGE]")
    indexer.add_argument("--indexer-command", default=_env("INDEXER_COMMAND", "codebase-indexer"),
                         help="the indexer's command in that image [$CODEBASE_INDEXER_COMMAND]")
    indexer.add_argument("--image-pull-policy", default=_env("IMAGE_PULL_POLICY", "IfNotPresent"),
                         choices=["Always", "IfNotPresent", "Never"])
    indexer.add_argument("--indexer-service-account", default=_env("INDEXER_SERVICE_ACCOUNT", "codebase-indexer"),
                         help="ServiceAccount of indexer pods (needs no permissions) "
                              "[$CODEBASE_INDEXER_SERVICE_ACCOUNT]")
    indexer.add_argument("--workspace-root", default=_env("WORKSPACE_ROOT", "/workspace"),
                         help="where the workspace volume is mounted in indexer pods; "
                              "spec.source.path is relative to it [$CODEBASE_WORKSPACE_ROOT]")
    workspace = indexer.add_mutually_exclusive_group()
    workspace.add_argument("--workspace-claim", default=_env("WORKSPACE_CLAIM"),
                           help="PersistentVolumeClaim holding the source trees [$CODEBASE_WORKSPACE_CLAIM]")
    workspace.add_argument("--workspace-host-path", default=_env("WORKSPACE_HOST_PATH"),
                           help="node directory holding the source trees (kind, single node) "
                                "[$CODEBASE_WORKSPACE_HOST_PATH]")
    indexer.add_argument("--job-deadline-seconds", type=int,
                         default=int(_env("JOB_DEADLINE_SECONDS", "3600") or 3600),
                         help="default activeDeadlineSeconds [$CODEBASE_JOB_DEADLINE_SECONDS]")
    indexer.add_argument("--job-backoff-limit", type=int, default=int(_env("JOB_BACKOFF_LIMIT", "1") or 1),
                         help="default backoffLimit [$CODEBASE_JOB_BACKOFF_LIMIT]")
    indexer.add_argument("--default-parallelism", type=int, default=int(_env("DEFAULT_PARALLELISM", "1") or 1),
                         help="pods (shards) per run when neither the run nor its project sets "
                              "parallelism [$CODEBASE_DEFAULT_PARALLELISM]")
    indexer.add_argument("--job-ttl-seconds", type=int,
                         default=int(_env("JOB_TTL_SECONDS", str(7 * 24 * 3600)) or 0),
                         help="ttlSecondsAfterFinished [$CODEBASE_JOB_TTL_SECONDS]")
    indexer.add_argument("--max-active-jobs", type=int, default=int(_env("MAX_ACTIVE_JOBS", "8") or 8),
                         help="indexer Jobs active at once across all watched namespaces; later runs "
                              "wait (reason WaitingForSlot) [$CODEBASE_MAX_ACTIVE_JOBS]")

    sources = parser.add_argument_group("what projects may use")
    sources.add_argument("--allowed-embedding-url", dest="allowed_embedding_urls", action="append",
                         default=None, metavar="URL_OR_HOST",
                         help="only send embedding requests (code and API key) under this URL prefix or "
                              "to this host (repeatable); default: any "
                              "[$CODEBASE_ALLOWED_EMBEDDING_URLS, comma-separated]")
    sources.add_argument("--allow-plaintext-git", action="store_true",
                         default=_env("ALLOW_PLAINTEXT_GIT", "false").lower() in ("1", "true", "yes"),
                         help="also accept http:// and git:// git sources (unencrypted) "
                              "[$CODEBASE_ALLOW_PLAINTEXT_GIT]")

    pacing = parser.add_argument_group("pacing")
    pacing.add_argument("--poll-interval", type=float, default=float(_env("POLL_INTERVAL", "5") or 5),
                        help="seconds between checks of a running run [$CODEBASE_POLL_INTERVAL]")
    pacing.add_argument("--recheck-interval", type=float,
                        default=float(_env("RECHECK_INTERVAL", "60") or 60), metavar="SECONDS",
                        help="how often each project's database, roles and Secrets are checked and "
                             "restored when missing (default 60)")
    pacing.add_argument("--retry-max-delay", type=float, default=float(_env("RETRY_MAX_DELAY", "60") or 60),
                        help="cap of the exponential backoff of waiting runs and failed "
                             "provisioning [$CODEBASE_RETRY_MAX_DELAY]")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    admin_url = args.admin_database_url
    if not admin_url and args.admin_database_url_file:
        admin_url = Path(args.admin_database_url_file).read_text().strip()
    return OperatorConfig(
        admin_database_url=admin_url or "",
        indexer_image=args.indexer_image,
        indexer_command=tuple(shlex.split(args.indexer_command)),
        indexer_service_account=args.indexer_service_account,
        image_pull_policy=args.image_pull_policy,
        workspace_root=args.workspace_root,
        workspace=WorkspaceVolume(host_path=args.workspace_host_path, claim_name=args.workspace_claim),
        jobs=JobDefaults(active_deadline_seconds=args.job_deadline_seconds,
                         backoff_limit=args.job_backoff_limit,
                         parallelism=args.default_parallelism,
                         ttl_seconds_after_finished=args.job_ttl_seconds),
        kubeconfig=args.kubeconfig,
        poll_interval=args.poll_interval,
        recheck_interval=args.recheck_interval,
        retry_max_delay=args.retry_max_delay,
        allowed_embedding_urls=tuple(_allowed_embedding_urls(args)),
        allow_plaintext_git=args.allow_plaintext_git,
        max_active_jobs=args.max_active_jobs,
        metrics_port=args.metrics_port,
    )


def _allowed_embedding_urls(args: argparse.Namespace) -> list[str]:
    if args.allowed_embedding_urls:
        return list(args.allowed_embedding_urls)
    return [url.strip() for url in (_env("ALLOWED_EMBEDDING_URLS") or "").split(",") if url.strip()]


def namespaces_from_args(args: argparse.Namespace) -> list[str]:
    """The namespaces to watch; empty means cluster-wide."""
    if args.all_namespaces:
        return []
    if args.namespaces:
        return list(args.namespaces)
    return [ns.strip() for ns in (_env("NAMESPACES") or "").split(",") if ns.strip()]


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
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"codebase-operator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(operate(config, namespaces=namespaces_from_args(args),
                            liveness_endpoint=args.liveness, peering_name=args.peering))
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
