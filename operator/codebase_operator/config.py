"""The operator's configuration: everything that comes from flags and environment variables."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import PurePosixPath

from codebase_indexer.shards import MAX_SHARDS


@dataclasses.dataclass(frozen=True)
class WorkspaceVolume:
    """The volume that holds source trees for `spec.source.path`, mounted read-only into indexer pods."""
    host_path: str | None = None
    claim_name: str | None = None

    def as_volume(self, name: str) -> dict | None:
        if self.claim_name:
            return {"name": name, "persistentVolumeClaim": {"claimName": self.claim_name, "readOnly": True}}
        if self.host_path:
            return {"name": name, "hostPath": {"path": self.host_path, "type": "Directory"}}
        return None


@dataclasses.dataclass(frozen=True)
class JobDefaults:
    """Job settings a project's `spec.indexerTemplate` may override (except the TTL)."""
    active_deadline_seconds: int = 3600
    backoff_limit: int = 1  # per shard (backoffLimitPerIndex)
    parallelism: int = 1  # shards of a run whose run and project set none
    ttl_seconds_after_finished: int = 7 * 24 * 3600
    resources: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=lambda: {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "3Gi"},
    })


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    admin_database_url: str
    indexer_image: str = "codebase-mcp-indexer:latest"
    indexer_command: tuple[str, ...] = ("codebase-indexer",)
    indexer_service_account: str = "codebase-indexer"
    image_pull_policy: str = "IfNotPresent"
    workspace_root: str = "/workspace"
    workspace: WorkspaceVolume = WorkspaceVolume()
    jobs: JobDefaults = JobDefaults()
    kubeconfig: str | None = None
    # How often running runs are checked (Job state, progress); waits back off up to the max delay.
    poll_interval: float = 5.0
    # How often a project's database, roles and Secrets are checked (and restored when missing).
    recheck_interval: float = 60.0
    retry_max_delay: float = 60.0
    # How often projects with spec.refresh are checked for a due run.
    refresh_check_interval: float = 15.0
    # The shortest spec.refresh.interval honoured (a shorter one is raised to it).
    min_refresh_interval: float = 60.0
    # Embedding URLs (prefixes or hosts) a project may send its code and API key to; empty: any.
    allowed_embedding_urls: tuple[str, ...] = ()
    # http:// and git:// sources send code (and credentials) unencrypted: refused unless allowed.
    allow_plaintext_git: bool = False
    # Indexer Jobs active at once across every watched namespace; later runs wait for a slot.
    max_active_jobs: int = 8
    # Port of the Prometheus /metrics endpoint (all interfaces); 0: none.
    metrics_port: int = 0

    def __post_init__(self) -> None:
        if not self.admin_database_url:
            raise ValueError("the admin database URL is required (--admin-database-url or "
                             "CODEBASE_MCP_ADMIN_DATABASE_URL, or its _FILE variant)")
        if not PurePosixPath(self.workspace_root).is_absolute():
            raise ValueError(f"--workspace-root must be an absolute path, not {self.workspace_root!r}")
        if min(self.poll_interval, self.retry_max_delay, self.recheck_interval, self.refresh_check_interval,
               self.min_refresh_interval) <= 0:
            raise ValueError("intervals must be positive")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"--metrics-port must be 0 (off) or a TCP port up to 65535, not {self.metrics_port}")
        if not 1 <= self.jobs.parallelism <= MAX_SHARDS:
            raise ValueError(f"--default-parallelism must be from 1 to {MAX_SHARDS}, not {self.jobs.parallelism}")
        if self.max_active_jobs < 1:
            raise ValueError(f"--max-active-jobs must be at least 1, not {self.max_active_jobs}")

    def backoff(self, retry: int) -> float:
        """Delay before the next attempt: exponential from 1 s, capped."""
        return float(min(self.retry_max_delay, 2 ** min(retry, 16)))
