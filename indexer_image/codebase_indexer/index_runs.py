"""The `index_runs` table of a project database: a run's state and progress, read by control planes.

Also the project's write lock. A run holds an advisory lock on its project database for its
whole write phase, so two runs (a CLI beside a gateway, two gateways) never write one project
at once. The shards of one run (shards.py) hold it together: the project lock is taken shared,
and a claim (serialised by a short transaction lock) is refused while a backend of another run
holds it. Each shard also holds its own exclusive shard lock, so two processes never work one
shard. The locks die with the holder's connection, which is how a killed indexer is told apart
from a running one: a `running` shard whose shard lock nobody holds is dead.
"""
from __future__ import annotations

import json

import asyncpg

from .connections import Connector, direct_connection
from .models import IndexSummary, Progress
from .outcomes import CANCELLED, FAILED, RUNNING, SUCCEEDED
from .shards import WHOLE, Owner, Shard

RUN_STATES = (RUNNING, SUCCEEDED, FAILED, CANCELLED)  # a row exists once its run started
PROJECT_LOCK_KEY = 7203  # one project per database, so one key per database is enough
SHARD_LOCK_CLASS = 7205  # (class, shard index): one process per shard
_CLAIM_LOCK_KEY = 7204  # held for the length of a claim's transaction only
ABANDONED_MESSAGE = ("the indexer stopped without finishing (its process was killed or lost its "
                     "database connection); start the indexing again, it resumes incrementally")
_STEPS_PENDING_KEY = "whole_run_steps_pending"
_THIS_DATABASE = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
# Backends holding the project lock (pg_advisory_lock(bigint) puts the key in objid).
_LOCK_HOLDER_PIDS = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 "
    f"AND objid = {PROJECT_LOCK_KEY} AND objsubid = 1 AND {_THIS_DATABASE}"
)
# Shard indexes whose shard lock is held (pg_advisory_lock(int, int): class in classid, index in objid).
_LIVE_SHARDS = (
    "SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' AND granted "
    f"AND classid = {SHARD_LOCK_CLASS} AND objsubid = 2 AND {_THIS_DATABASE}"
)
_PROGRESS_SUMS = (
    "UPDATE index_runs r SET files_total = s.files_total, files_done = s.files_done, "
    " chunks_done = s.chunks_done, updated_at = now() "
    "FROM (SELECT sum(files_total) AS files_total, sum(files_done) AS files_done, "
    "      sum(chunks_done) AS chunks_done FROM index_run_shards WHERE run_id = $1) s "
    "WHERE r.run_id = $1"
)


async def try_lock_project(conn: asyncpg.Connection, run_id: str, shard: Shard = WHOLE) -> bool:
    """Take the project's write lock for `run_id` (and this shard's lock) on this connection;
    False while another run holds the project or another process holds this shard."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CLAIM_LOCK_KEY)
        holder = await lock_holder(conn)
        if holder is not None and holder != run_id:
            return False
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", SHARD_LOCK_CLASS, shard.index):
            return False
        if not await conn.fetchval("SELECT pg_try_advisory_lock_shared($1)", PROJECT_LOCK_KEY):
            await conn.execute("SELECT pg_advisory_unlock($1, $2)", SHARD_LOCK_CLASS, shard.index)
            return False
        await conn.execute(
            "INSERT INTO project_meta (key, value) "
            "VALUES ('writer', jsonb_build_object('run_id', $1::text, 'backend_pid', pg_backend_pid())) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", run_id)
    return True


async def unlock_project(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock_all()")


async def lock_holder(conn: asyncpg.Connection) -> str | None:
    """The run id holding the project's write lock, or None when it is free."""
    return await conn.fetchval(
        "SELECT value ->> 'run_id' FROM project_meta WHERE key = 'writer' "
        f"AND EXISTS ({_LOCK_HOLDER_PIDS})")


async def fail_abandoned_runs(conn: asyncpg.Connection, run_id: str) -> list[str]:
    """With the lock held by `run_id`, every other `running` row is a run that died: mark it failed."""
    rows = await conn.fetch(
        "UPDATE index_runs SET state = 'failed', error = $2, updated_at = now(), finished_at = now() "
        "WHERE state = 'running' AND run_id <> $1 RETURNING run_id", run_id, ABANDONED_MESSAGE)
    await conn.execute(
        "UPDATE index_run_shards SET state = 'failed', error = $2, updated_at = now(), finished_at = now() "
        "WHERE state = 'running' AND run_id <> $1", run_id, ABANDONED_MESSAGE)
    return [row["run_id"] for row in rows]


async def whole_run_steps_pending(conn: asyncpg.Connection, run_id: str | None = None) -> bool:
    """Whether a run wrote files but did not finish the whole-run steps (it crashed or was killed);
    with `run_id`, whether a run other than that one left them."""
    marker = await conn.fetchval("SELECT value #>> '{}' FROM project_meta WHERE key = $1", _STEPS_PENDING_KEY)
    return marker is not None and marker != run_id


async def mark_whole_run_steps_pending(conn: asyncpg.Connection, run_id: str) -> None:
    """Mark the steps pending before the first write; a marker an earlier run left stays (it names
    the run whose steps are still owed, so the finishing run knows to redo them)."""
    await conn.execute(
        "INSERT INTO project_meta (key, value) VALUES ($1, to_jsonb($2::text)) "
        "ON CONFLICT (key) DO NOTHING", _STEPS_PENDING_KEY, run_id)


async def clear_whole_run_steps_pending(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM project_meta WHERE key = $1", _STEPS_PENDING_KEY)


async def start_run(conn: asyncpg.Connection, run_id: str, mode: str, shard: Shard = WHOLE) -> None:
    """Record that `shard` of the run started. The first shard creates the run's row; a single-shard
    run (or a retry of one) starts it afresh, while a shard joining others keeps its start time."""
    await conn.execute(
        "INSERT INTO index_runs (run_id, mode, state, shard_count) VALUES ($1, $2, 'running', $3) "
        "ON CONFLICT (run_id) DO UPDATE SET mode = excluded.mode, state = 'running', "
        "shard_count = excluded.shard_count, summary = NULL, error = NULL, updated_at = now(), "
        "finished_at = NULL, "
        "started_at = CASE WHEN excluded.shard_count > 1 THEN index_runs.started_at ELSE now() END",
        run_id, mode, shard.count,
    )
    await conn.execute("DELETE FROM index_run_shards WHERE run_id = $1 AND shard_count <> $2", run_id, shard.count)
    await conn.execute(
        "INSERT INTO index_run_shards (run_id, shard_index, shard_count, state) VALUES ($1, $2, $3, 'running') "
        "ON CONFLICT (run_id, shard_index) DO UPDATE SET state = 'running', files_total = 0, files_done = 0, "
        "chunks_done = 0, summary = NULL, error = NULL, started_at = now(), updated_at = now(), "
        "finished_at = NULL", run_id, shard.index, shard.count)
    await conn.execute(_PROGRESS_SUMS, run_id)


async def record_progress(conn: asyncpg.Connection, run_id: str, progress: Progress,
                          shard: Shard = WHOLE) -> None:
    """The shard's progress, and the run's as the sum of its shards'."""
    await conn.execute(
        "UPDATE index_run_shards SET files_total = $3, files_done = $4, chunks_done = $5, updated_at = now() "
        "WHERE run_id = $1 AND shard_index = $2",
        run_id, shard.index, progress.files_total, progress.files_done, progress.chunks_done,
    )
    await conn.execute(_PROGRESS_SUMS, run_id)


async def finish_shard(conn: asyncpg.Connection, run_id: str, shard: Shard, state: str, *,
                       summary: IndexSummary | None = None, error: str | None = None) -> None:
    if state not in RUN_STATES:
        raise ValueError(f"unknown run state {state!r}")
    await conn.execute(
        "UPDATE index_run_shards SET state = $3, summary = $4::jsonb, error = $5, "
        "updated_at = clock_timestamp(), finished_at = clock_timestamp() WHERE run_id = $1 AND shard_index = $2",
        run_id, shard.index, state, json.dumps(summary.to_dict()) if summary else None, error,
    )


async def shard_summaries(conn: asyncpg.Connection, run_id: str, shard_count: int) -> list[dict] | None:
    """The summaries of the run's `shard_count` shards when every one succeeded, else None."""
    rows = await conn.fetch(
        "SELECT summary FROM index_run_shards WHERE run_id = $1 AND shard_count = $2 AND state = 'succeeded' "
        "ORDER BY shard_index", run_id, shard_count)
    if len(rows) < shard_count:
        return None
    return [json.loads(row["summary"]) for row in rows]


async def record_gone(conn: asyncpg.Connection, run_id: str, shard: Owner, paths: list[str]) -> None:
    """The shard's files that left the repository: the whole-run step deletes them after every shard."""
    stale = [path for path in await gone_paths(conn, run_id) if shard.owns(path)]
    await conn.execute("DELETE FROM index_run_gone WHERE run_id = $1 AND path = ANY($2::text[])", run_id, stale)
    await conn.execute(
        "INSERT INTO index_run_gone (run_id, path) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        run_id, paths)


async def gone_paths(conn: asyncpg.Connection, run_id: str) -> list[str]:
    return [row["path"] for row in await conn.fetch(
        "SELECT path FROM index_run_gone WHERE run_id = $1 ORDER BY path", run_id)]


async def clear_gone(conn: asyncpg.Connection, run_id: str) -> None:
    await conn.execute("DELETE FROM index_run_gone WHERE run_id = $1", run_id)


async def finish_run(conn: asyncpg.Connection, run_id: str, state: str, *,
                     summary: IndexSummary | None = None, error: str | None = None) -> None:
    if state not in RUN_STATES:
        raise ValueError(f"unknown run state {state!r}")
    await conn.execute(
        "UPDATE index_runs SET state = $2, summary = $3::jsonb, error = $4, "
        "updated_at = clock_timestamp(), finished_at = clock_timestamp() WHERE run_id = $1",
        run_id, state, json.dumps(summary.to_dict()) if summary else None, error,
    )


async def read_run(url: str, run_id: str, connect: Connector = direct_connection) -> dict | None:
    """A run's row as a dict (summary decoded, `shards` listing its shards' progress), or None when
    the database or row is missing.

    A `running` run with a shard that is `running` but whose process holds no shard lock any more
    (killed, or its connection lost) is reported as failed.
    """
    try:
        async with connect(url) as conn:
            row = await conn.fetchrow("SELECT * FROM index_runs WHERE run_id = $1", run_id)
            if row is None:
                return None
            shards = [dict(r) for r in await conn.fetch(
                "SELECT shard_index, shard_count, state, files_total, files_done, chunks_done, error "
                "FROM index_run_shards WHERE run_id = $1 ORDER BY shard_index", run_id)]
            abandoned = row["state"] == "running" and await _has_dead_shard(conn, run_id, shards)
    except (asyncpg.InvalidCatalogNameError, asyncpg.UndefinedTableError, OSError):
        return None
    run = dict(row)
    run["summary"] = json.loads(run["summary"]) if run["summary"] else None
    run["shards"] = shards
    if abandoned:
        run.update(state="failed", error=ABANDONED_MESSAGE)
    return run


async def _has_dead_shard(conn: asyncpg.Connection, run_id: str, shards: list[dict]) -> bool:
    if not shards:  # a row written before shards existed: the run itself must hold the lock
        return await lock_holder(conn) != run_id
    live = {row[0] for row in await conn.fetch(_LIVE_SHARDS)}
    return any(shard["state"] == "running" and shard["shard_index"] not in live for shard in shards)
