"""The `index_runs` table of a project database: a run's state and progress, read by control planes.

Also the project's write lock. A run holds a session-level advisory lock on its project
database for its whole write phase, so two indexers (a CLI beside a gateway, two gateways)
never write one project at once. The lock dies with the holder's connection, which is how a
killed indexer is told apart from a running one: a `running` row whose run holds no lock is dead.
"""
from __future__ import annotations

import json

import asyncpg

from .connections import Connector, direct_connection
from .models import IndexSummary, Progress
from .outcomes import CANCELLED, FAILED, RUNNING, SUCCEEDED

RUN_STATES = (RUNNING, SUCCEEDED, FAILED, CANCELLED)  # a row exists once its run started
PROJECT_LOCK_KEY = 7203  # one project per database, so one key per database is enough
ABANDONED_MESSAGE = ("the indexer stopped without finishing (its process was killed or lost its "
                     "database connection); start the indexing again, it resumes incrementally")
_STEPS_PENDING_KEY = "whole_run_steps_pending"
# The backend holding the project lock, if any (pg_advisory_lock(bigint) puts the key in objid).
_LOCK_HOLDER_PID = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 "
    f"AND objid = {PROJECT_LOCK_KEY} AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def try_lock_project(conn: asyncpg.Connection, run_id: str) -> bool:
    """Take the project's write lock for `run_id` on this connection, if no one holds it."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", PROJECT_LOCK_KEY):
        return False
    await conn.execute(
        "INSERT INTO project_meta (key, value) "
        "VALUES ('writer', jsonb_build_object('run_id', $1::text, 'backend_pid', pg_backend_pid())) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", run_id)
    return True


async def unlock_project(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", PROJECT_LOCK_KEY)


async def lock_holder(conn: asyncpg.Connection) -> str | None:
    """The run id holding the project's write lock, or None when it is free."""
    return await conn.fetchval(
        "SELECT value ->> 'run_id' FROM project_meta WHERE key = 'writer' "
        f"AND (value ->> 'backend_pid')::int IN ({_LOCK_HOLDER_PID})")


async def fail_abandoned_runs(conn: asyncpg.Connection, run_id: str) -> list[str]:
    """With the lock held by `run_id`, every other `running` row is a run that died: mark it failed."""
    rows = await conn.fetch(
        "UPDATE index_runs SET state = 'failed', error = $2, updated_at = now(), finished_at = now() "
        "WHERE state = 'running' AND run_id <> $1 RETURNING run_id", run_id, ABANDONED_MESSAGE)
    return [row["run_id"] for row in rows]


async def whole_run_steps_pending(conn: asyncpg.Connection) -> bool:
    """Whether a run wrote files but did not finish the whole-run steps (it crashed or was killed)."""
    return bool(await conn.fetchval("SELECT 1 FROM project_meta WHERE key = $1", _STEPS_PENDING_KEY))


async def mark_whole_run_steps_pending(conn: asyncpg.Connection, run_id: str) -> None:
    await conn.execute(
        "INSERT INTO project_meta (key, value) VALUES ($1, to_jsonb($2::text)) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", _STEPS_PENDING_KEY, run_id)


async def clear_whole_run_steps_pending(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM project_meta WHERE key = $1", _STEPS_PENDING_KEY)


async def start_run(conn: asyncpg.Connection, run_id: str, mode: str) -> None:
    await conn.execute(
        "INSERT INTO index_runs (run_id, mode, state) VALUES ($1, $2, 'running') "
        "ON CONFLICT (run_id) DO UPDATE SET mode = excluded.mode, state = 'running', "
        "files_total = 0, files_done = 0, chunks_done = 0, summary = NULL, error = NULL, "
        "started_at = now(), updated_at = now(), finished_at = NULL",
        run_id, mode,
    )


async def record_progress(conn: asyncpg.Connection, run_id: str, progress: Progress) -> None:
    await conn.execute(
        "UPDATE index_runs SET files_total = $2, files_done = $3, chunks_done = $4, updated_at = now() "
        "WHERE run_id = $1",
        run_id, progress.files_total, progress.files_done, progress.chunks_done,
    )


async def finish_run(conn: asyncpg.Connection, run_id: str, state: str, *,
                     summary: IndexSummary | None = None, error: str | None = None) -> None:
    if state not in RUN_STATES:
        raise ValueError(f"unknown run state {state!r}")
    await conn.execute(
        "UPDATE index_runs SET state = $2, summary = $3::jsonb, error = $4, "
        "updated_at = now(), finished_at = now() WHERE run_id = $1",
        run_id, state, json.dumps(summary.to_dict()) if summary else None, error,
    )


async def read_run(url: str, run_id: str, connect: Connector = direct_connection) -> dict | None:
    """A run's row as a dict (summary decoded), or None when the database or row is missing.

    A `running` row whose run no longer holds the project lock is reported as failed.
    """
    try:
        async with connect(url) as conn:
            row = await conn.fetchrow("SELECT * FROM index_runs WHERE run_id = $1", run_id)
            abandoned = (row is not None and row["state"] == "running"
                         and await lock_holder(conn) != run_id)
    except (asyncpg.InvalidCatalogNameError, asyncpg.UndefinedTableError, OSError):
        return None
    if row is None:
        return None
    run = dict(row)
    run["summary"] = json.loads(run["summary"]) if run["summary"] else None
    if abandoned:
        run.update(state="failed", error=ABANDONED_MESSAGE)
    return run
