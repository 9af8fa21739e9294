"""Status transitions of projects and runs as pure functions: (current status, new state) → status patch.

Condition types are exactly what `kubectl wait --for=condition=...` needs:
`Ready` and `DatabaseReady` on a CodebaseProject, `Succeeded` on an IndexingRun
(Unknown while it is not finished, then True or False, like a Tekton TaskRun).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from codebase_indexer.credentials import redact
from codebase_indexer.outcomes import summary_sentence

from . import conditions
from .conditions import ConditionStatus
from .jobs import JobState

READY, DATABASE_READY, SUCCEEDED = "Ready", "DatabaseReady", "Succeeded"
REMOTE_CHECKED = "RemoteChecked"  # a git source's last refresh check: could the remote say where the ref is?


@dataclasses.dataclass(frozen=True)
class State:
    """One condition's worth of news: status, machine-readable reason, human-readable message.

    The message is redacted here, once: it goes to conditions, `status.message`, Events and
    the log, and may quote an indexer's report or a git URL that carries credentials.
    """
    status: ConditionStatus
    reason: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", redact(self.message))

    @property
    def event_type(self) -> Literal["Normal", "Warning"]:
        return "Warning" if self.status == "False" else "Normal"


# IndexingRun states.

def waiting_for_database(project: str, detail: str) -> State:
    return State("Unknown", "WaitingForDatabase", f"waiting for the database of project {project}: {detail}")


def queued(project: str, active_run: str) -> State:
    return State("Unknown", "Queued", f"waiting for run {active_run} of project {project} to finish")


def waiting_for_slot(active: int, limit: int) -> State:
    return State("Unknown", "WaitingForSlot",
                 f"waiting for a free indexer slot: {active} of {limit} indexer Jobs are active "
                 f"(the operator's --max-active-jobs); it starts when one finishes")


def pending(job: str) -> State:
    return State("Unknown", "Pending", f"the indexer Job {job} is created; waiting for its pod to start")


def running(job: str) -> State:
    return State("Unknown", "Running", f"the indexer Job {job} is running")


def invalid_spec(message: str) -> State:
    return State("False", "InvalidSpec", message)


def cancelled(detail: str) -> State:
    return State("False", "Cancelled", detail)


def finished(job: JobState, report: Mapping[str, Any] | None, *, shards: int = 1,
             failed_indexes: str = "") -> State:
    """A finished Job's outcome, preferring the indexer's own words over the Job's; a failed run
    of several shards names the shard that failed."""
    state = _finished(job, report)
    if shards <= 1 or state.status != "False" or state.reason == "Cancelled":
        return state
    index = ((report or {}).get("shard") or {}).get("index") if report and report.get("ok") is False else None
    which = f"shard {index} of {shards}" if index is not None else (
        f"shard {failed_indexes} of {shards}" if failed_indexes else f"a shard of {shards}")
    return State(state.status, state.reason, f"{which}: {state.message}")


def _finished(job: JobState, report: Mapping[str, Any] | None) -> State:
    if job.phase == "Succeeded":
        summary = (report or {}).get("summary") or {}
        return State("True", "Succeeded", summary_sentence(summary))
    if job.reason == "DeadlineExceeded":
        return State("False", "DeadlineExceeded", job.message or "the Job ran past its activeDeadlineSeconds")
    if report is not None and report.get("ok") is False:
        reason = str(report.get("reason") or "Failed")
        if reason == "Cancelled":
            return cancelled(str(report.get("message") or "the indexer was stopped"))
        return State("False", "Failed", f"{reason}: {report.get('message') or 'the indexer failed'}")
    return State("False", "Failed", f"{job.reason}: {job.message}" if job.message else
                 f"the indexer Job failed ({job.reason or 'no reason given'})")


def job_lost(job: str) -> State:
    return State("False", "Failed", f"the indexer Job {job} disappeared before it finished")


def is_finished(status: Mapping[str, Any] | None) -> bool:
    condition = conditions.find((status or {}).get("conditions"), SUCCEEDED)
    return condition is not None and condition.get("status") in ("True", "False")


def reason_of(status: Mapping[str, Any] | None, type_: str = SUCCEEDED) -> str | None:
    condition = conditions.find((status or {}).get("conditions"), type_)
    return condition.get("reason") if condition else None


def is_news(status: Mapping[str, Any] | None, state: State, type_: str = SUCCEEDED) -> bool:
    """Whether `state` changes the condition's status or reason (worth an Event)."""
    condition = conditions.find((status or {}).get("conditions"), type_)
    return condition is None or (condition.get("status"), condition.get("reason")) != (state.status, state.reason)


def run_status(status: Mapping[str, Any] | None, state: State, *, generation: int | None,
               now: str | None = None, **fields: Any) -> dict[str, Any]:
    """The status patch of a run entering `state`, with extra top-level fields (jobName, …)."""
    now = now or conditions.now_rfc3339()
    patch: dict[str, Any] = {
        "conditions": conditions.set_condition(
            (status or {}).get("conditions"), type_=SUCCEEDED, status=state.status,
            reason=state.reason, message=state.message, observed_generation=generation, now=now),
        "observedGeneration": generation,
        "message": conditions.truncate(state.message),
        **fields,
    }
    if state.status != "Unknown" and not (status or {}).get("completionTime"):
        patch["completionTime"] = now
    return patch


_SHARD_STATES = {"running": "Running", "succeeded": "Succeeded", "failed": "Failed", "cancelled": "Cancelled"}


def progress(row: Mapping[str, Any] | None, shards: int = 1) -> dict[str, Any] | None:
    """`status.progress` from the indexer's `index_runs` row (the sums of its shards' rows); a run of
    several shards adds each shard's progress and `shardSummary` ("3/4 shards") for `kubectl get ir`."""
    if not row:
        return None
    result: dict[str, Any] = {"filesTotal": int(row.get("files_total") or 0),
                              "filesDone": int(row.get("files_done") or 0),
                              "chunksDone": int(row.get("chunks_done") or 0)}
    if shards > 1:
        result.update(shard_progress(row.get("shards") or (), shards))
    return result


def shard_progress(rows: Any, shards: int) -> dict[str, Any]:
    """Each shard's progress (a shard with no row yet is Pending) and how many succeeded."""
    by_index = {int(r["shard_index"]): r for r in rows if int(r.get("shard_count") or shards) == shards}
    listed = [{"index": i,
               "filesDone": int((by_index.get(i) or {}).get("files_done") or 0),
               "chunksDone": int((by_index.get(i) or {}).get("chunks_done") or 0),
               "state": _SHARD_STATES.get((by_index.get(i) or {}).get("state", ""), "Pending")}
              for i in range(shards)]
    done = sum(1 for shard in listed if shard["state"] == "Succeeded")
    return {"shards": listed, "shardCount": shards, "shardsSucceeded": done,
            "shardSummary": f"{done}/{shards} shards"}


_SUMMARY_FIELDS = {
    "files_total": "filesTotal", "files_indexed": "filesIndexed", "files_unchanged": "filesUnchanged",
    "files_deleted": "filesDeleted", "files_skipped": "filesSkipped", "chunks_created": "chunksCreated",
    "chunks_deleted": "chunksDeleted", "chunks_skipped": "chunksSkipped", "duration_seconds": "durationSeconds",
}


def summary(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`status.summary` from the indexer's report (snake_case → camelCase, known fields only)."""
    raw = (report or {}).get("summary")
    if not isinstance(raw, Mapping):
        return None
    return {camel: raw[snake] for snake, camel in _SUMMARY_FIELDS.items()
            if isinstance(raw.get(snake), (int, float))}


def final_progress(summary_fields: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> dict:
    """Progress at completion: the summary's totals, so `kubectl get ir` shows the final counts
    (a sharded run's shard list kept)."""
    if not summary_fields:
        return dict(current or {})
    files = int(summary_fields.get("filesTotal", summary_fields.get("filesIndexed", 0)))
    shards = {key: value for key, value in (current or {}).items()
              if key in ("shards", "shardCount", "shardsSucceeded", "shardSummary")}
    return {"filesTotal": files, "filesDone": files, "chunksDone": int(summary_fields.get("chunksCreated", 0)),
            **shards}


def last_run(run_name: str, completion_time: str, succeeded: bool,
             summary_fields: Mapping[str, Any] | None, commit: str | None = None) -> dict[str, Any]:
    """A project's `status.lastRun` after one of its runs finished (with the commit a git source indexed)."""
    summary_fields = summary_fields or {}
    result = {"name": run_name, "completionTime": completion_time, "succeeded": succeeded,
              "files": int(summary_fields.get("filesIndexed", 0)),
              "chunks": int(summary_fields.get("chunksCreated", 0))}
    if commit:
        result["commit"] = commit
    return result


# CodebaseProject states.

def database_ready(database: str) -> State:
    return State("True", "DatabaseReady", f"database {database} is ready")


def provisioning_failed(message: str) -> State:
    return State("False", "ProvisioningFailed", message)


def conflict(message: str) -> State:
    """The database (or a Secret) the project would use belongs to something else."""
    return State("False", "Conflict", message)


def remote_check_failed(message: str) -> State:
    return State("False", "RemoteCheckFailed", message)


def commit_unchanged(ref: str, commit: str) -> State:
    return State("True", "CommitUnchanged", f"{ref} is at {commit[:12]}, which is indexed already: no run")


def commit_moved(ref: str, commit: str, run: str) -> State:
    return State("True", "CommitMoved", f"{ref} is at {commit[:12]}, not indexed yet: run {run}")


def project_status(status: Mapping[str, Any] | None, database: State, *, generation: int | None,
                   database_name: str | None = None, secret_name: str | None = None,
                   now: str | None = None) -> dict[str, Any]:
    """The status patch of a project; `Ready` follows `DatabaseReady`."""
    now = now or conditions.now_rfc3339()
    current = (status or {}).get("conditions")
    updated = conditions.set_condition(current, type_=DATABASE_READY, status=database.status,
                                       reason=database.reason, message=database.message,
                                       observed_generation=generation, now=now)
    ready = (State("True", "Ready", "the project can be indexed and searched")
             if database.status == "True" else database)
    updated = conditions.set_condition(updated, type_=READY, status=ready.status, reason=ready.reason,
                                       message=ready.message, observed_generation=generation, now=now)
    patch: dict[str, Any] = {"conditions": updated, "observedGeneration": generation}
    if database_name:
        patch["database"] = {"name": database_name, "secretName": secret_name}
    return patch
