"""The `index_runs` table of a project database: a run's state and progress, read by control planes."""
from __future__ import annotations

import json

import asyncpg

from .connections import Connector, direct_connection
from .models import IndexSummary, Progress

RUN_STATES = ("running", "succeeded", "failed", "cancelled")


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
    """A run's row as a dict (summary decoded), or None when the database or row is missing."""
    try:
        async with connect(url) as conn:
            row = await conn.fetchrow("SELECT * FROM index_runs WHERE run_id = $1", run_id)
    except (asyncpg.InvalidCatalogNameError, asyncpg.UndefinedTableError, OSError):
        return None
    if row is None:
        return None
    run = dict(row)
    run["summary"] = json.loads(run["summary"]) if run["summary"] else None
    return run
