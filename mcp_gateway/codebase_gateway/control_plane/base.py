"""The contract both control planes keep, and the job status object the tools return."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from codebase_indexer.connections import ConnectionBudget
from codebase_indexer.outcomes import FINISHED_STATES, tool_status

from ..project_resolution import ResolvedProject


class UnknownJob(LookupError):
    """No indexing job has this id."""


class UnknownProject(LookupError):
    """No project of this id has been indexed."""


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs, resolved inside the tool call: plain data only."""

    project: ResolvedProject
    repo_path: Path
    force_reindex: bool = False


@dataclass
class JobStatus:
    """The result object of `get_indexing_status` (keys of the original codebase-mcp, plus a few)."""

    job_id: str
    status: str  # a run state (codebase_indexer.outcomes); the tools say `completed` for `succeeded`
    status_message: str
    repo_path: str
    project_id: str
    database_name: str
    force_reindex: bool
    files_indexed: int = 0
    chunks_created: int = 0
    error_message: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    progress: dict = field(default_factory=lambda: {"files_total": 0, "files_done": 0, "chunks_done": 0})
    summary: dict | None = None
    queue_position: int | None = None  # pending runs: 1 starts next
    trigger: str = "tool"  # tool (an MCP tool call) | watch (files changed) | refresh | annotation

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATES

    def to_dict(self) -> dict:
        """The tools' object: the state in the words of the original server."""
        return {**asdict(self), "status": tool_status(self.status)}


@dataclass(frozen=True)
class ProjectInfo:
    """One row of `list_projects`."""

    name: str
    database: str
    ready: bool
    last_indexed: str | None
    files: int
    chunks: int
    # local: the gateway's watch of the project's folder (state, message, ...); kubernetes: spec.refresh
    watch: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class ControlPlane(Protocol):
    name: str  # "local" | "kubernetes"
    connection_budget: ConnectionBudget  # every database connection of the gateway, searches included

    def default_allowed_roots(self) -> list[Path]:
        """Where repositories may live when no `--allowed-root` is configured ([] = anywhere)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def start_run(self, request: RunRequest) -> JobStatus:
        """Record the run (its project provisioned or declared) and return at once."""

    async def get_run(self, job_id: str) -> JobStatus:
        """Raise UnknownJob for an id this control plane never issued."""

    async def list_runs(self, *, project_id: str | None, status: str | None, limit: int) -> list[JobStatus]:
        """Newest first."""

    async def cancel_run(self, job_id: str) -> JobStatus: ...

    async def list_projects(self) -> list[ProjectInfo]: ...

    async def project_database_url(self, project_id: str) -> str:
        """Connection URL of an existing project's database; raise UnknownProject otherwise."""

    async def source_root(self, project_id: str) -> Path | None:
        """The folder the gateway can stat to tell stale results (freshness.py), or None when it
        cannot see the project's files (Kubernetes)."""

    async def health(self) -> dict:
        """At least `database_reachable`; anything else worth showing in `health://status`."""

    async def run_counts(self) -> dict[str, int]:
        """Number of runs in each state, for the metrics."""


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
