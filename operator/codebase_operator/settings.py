"""The operator's settings (`codebase-operator`), declared once.

Flags and environment names derive from the fields (codebase_indexer.configuration), so a
Deployment can be configured from a ConfigMap and the admin database URL from a Secret. The
environment names of earlier releases (`CODEBASE_<NAME>`) keep working for one release.
"""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from codebase_indexer.configuration import InvalidSetting, setting

from .config import JobDefaults, OperatorConfig, WorkspaceVolume


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """Everything `codebase-operator` is configured with."""

    namespaces: tuple[str, ...] = setting(
        (), flag="--namespace", short="-n", metavar="NAMESPACE", old_env=("CODEBASE_NAMESPACES",),
        default_text="all namespaces", help="watch this namespace (globs allowed)")
    all_namespaces: bool = setting(False, short="-A", env=False,
                                   help="watch all namespaces (needs cluster-wide RBAC)")
    kubeconfig: str | None = setting(None, old_env=("CODEBASE_KUBECONFIG",),
                                     default_text="in-cluster, else `$KUBECONFIG` or `~/.kube/config`",
                                     help="the kubeconfig file")
    liveness_endpoint: str | None = setting(None, flag="--liveness", metavar="URL",
                                            old_env=("CODEBASE_LIVENESS_ENDPOINT",),
                                            help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    metrics_port: int = setting(9100, metavar="PORT", old_env=("CODEBASE_METRICS_PORT",),
                                help="serve Prometheus metrics at http://0.0.0.0:PORT/metrics; 0 = off")
    peering: str | None = setting(None, metavar="NAME", old_env=("CODEBASE_PEERING",),
                                  default_text="standalone", help="kopf peering object for several replicas")
    admin_database_url: str | None = setting(
        None, secret=True, old_env=("CODEBASE_ADMIN_DATABASE_URL",),
        help="PostgreSQL URL of a role that may create roles and databases; its host is also what "
             "indexer pods use (this or the file)")
    admin_database_url_file: str | None = setting(None, old_env=("CODEBASE_ADMIN_DATABASE_URL_FILE",),
                                                  help="read the admin URL from this file, e.g. a mounted Secret")
    indexer_image: str = setting("codebase-mcp-indexer:latest", old_env=("CODEBASE_INDEXER_IMAGE",),
                                 help="container image of the indexer")
    indexer_command: str = setting("codebase-indexer", old_env=("CODEBASE_INDEXER_COMMAND",),
                                   help="the indexer's command in that image (split like a shell would)")
    image_pull_policy: str = setting("IfNotPresent", choices=("Always", "IfNotPresent", "Never"),
                                     old_env=("CODEBASE_IMAGE_PULL_POLICY",), help="of indexer pods")
    indexer_service_account: str = setting("codebase-indexer", old_env=("CODEBASE_INDEXER_SERVICE_ACCOUNT",),
                                           help="ServiceAccount of indexer pods (needs no permissions)")
    workspace_root: str = setting("/workspace", old_env=("CODEBASE_WORKSPACE_ROOT",),
                                  help="where the workspace volume is mounted in indexer pods; "
                                       "spec.source.path is relative to it")
    workspace_claim: str | None = setting(None, old_env=("CODEBASE_WORKSPACE_CLAIM",),
                                          help="PersistentVolumeClaim holding the source trees")
    workspace_host_path: str | None = setting(None, old_env=("CODEBASE_WORKSPACE_HOST_PATH",),
                                              help="node directory holding the source trees (kind, single node)")
    job_deadline_seconds: int = setting(3600, old_env=("CODEBASE_JOB_DEADLINE_SECONDS",),
                                        help="default activeDeadlineSeconds of indexer Jobs")
    job_backoff_limit: int = setting(1, old_env=("CODEBASE_JOB_BACKOFF_LIMIT",),
                                     help="default backoffLimit of indexer Jobs")
    default_parallelism: int = setting(1, help="pods (shards) per run when neither the IndexingRun "
                                               "(spec.parallelism) nor its project (spec.indexing.parallelism) "
                                               "says; 1 to 64")
    job_ttl_seconds: int = setting(7 * 24 * 3600, old_env=("CODEBASE_JOB_TTL_SECONDS",),
                                   help="ttlSecondsAfterFinished of indexer Jobs")
    max_active_jobs: int = setting(8, old_env=("CODEBASE_MAX_ACTIVE_JOBS",),
                                   help="indexer Jobs active at once across all watched namespaces; later runs "
                                        "wait (reason WaitingForSlot)")
    allowed_embedding_urls: tuple[str, ...] = setting(
        (), flag="--allowed-embedding-url", metavar="URL_OR_HOST", old_env=("CODEBASE_ALLOWED_EMBEDDING_URLS",),
        default_text="any",
        help="only send embedding requests (code and API key) here: a URL prefix (`https://llm.example/v1`: same "
             "scheme, host, port, and a path under it) or a host (`llm.example`, `llm.example:8443`)")
    allow_plaintext_git: bool = setting(False, old_env=("CODEBASE_ALLOW_PLAINTEXT_GIT",),
                                        help="also accept http:// and git:// git sources (unencrypted)")
    poll_interval: float = setting(5.0, metavar="SECONDS", old_env=("CODEBASE_POLL_INTERVAL",),
                                   help="seconds between checks of a running run")
    recheck_interval: float = setting(60.0, metavar="SECONDS", old_env=("CODEBASE_RECHECK_INTERVAL",),
                                      help="how often each project's database, roles and Secrets are checked "
                                           "and restored when missing")
    refresh_check_interval: float = setting(15.0, metavar="SECONDS",
                                            help="how often projects with spec.refresh are checked for a due run")
    min_refresh_interval: float = setting(60.0, metavar="SECONDS",
                                          help="the shortest spec.refresh.interval honoured (a shorter one is "
                                               "raised to it), and the least time between a schedule's runs")
    retry_max_delay: float = setting(60.0, metavar="SECONDS", old_env=("CODEBASE_RETRY_MAX_DELAY",),
                                     help="cap of the exponential backoff of waiting runs and failed provisioning")
    verbose: bool = setting(False, short="-v", env=False, help="debug logging")

    def __post_init__(self) -> None:
        if self.workspace_claim and self.workspace_host_path:
            raise InvalidSetting("--workspace-claim and --workspace-host-path exclude each other: give one")
        if self.admin_database_url and self.admin_database_url_file:
            raise InvalidSetting("--admin-database-url and --admin-database-url-file (or their CODEBASE_MCP_ "
                                 "variables) exclude each other: give one, preferably the file")

    def watched_namespaces(self) -> list[str]:
        """The namespaces to watch; empty means cluster-wide."""
        return [] if self.all_namespaces else list(self.namespaces)

    def operator_config(self) -> OperatorConfig:
        """What the handlers run with; raises ValueError (or OSError for the URL file) naming the problem."""
        admin_url = self.admin_database_url
        if not admin_url and self.admin_database_url_file:
            admin_url = Path(self.admin_database_url_file).read_text().strip()
        return OperatorConfig(
            admin_database_url=admin_url or "",
            indexer_image=self.indexer_image,
            indexer_command=tuple(shlex.split(self.indexer_command)),
            indexer_service_account=self.indexer_service_account,
            image_pull_policy=self.image_pull_policy,
            workspace_root=self.workspace_root,
            workspace=WorkspaceVolume(host_path=self.workspace_host_path, claim_name=self.workspace_claim),
            jobs=JobDefaults(active_deadline_seconds=self.job_deadline_seconds,
                             backoff_limit=self.job_backoff_limit,
                             parallelism=self.default_parallelism,
                             ttl_seconds_after_finished=self.job_ttl_seconds),
            kubeconfig=self.kubeconfig,
            poll_interval=self.poll_interval,
            recheck_interval=self.recheck_interval,
            retry_max_delay=self.retry_max_delay,
            refresh_check_interval=self.refresh_check_interval,
            min_refresh_interval=self.min_refresh_interval,
            allowed_embedding_urls=self.allowed_embedding_urls,
            allow_plaintext_git=self.allow_plaintext_git,
            max_active_jobs=self.max_active_jobs,
            metrics_port=self.metrics_port,
        )

