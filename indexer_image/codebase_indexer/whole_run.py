"""The end of a run: each shard records its part; the last shard to finish does the whole-run step.

The whole-run step needs every shard's result: it deletes the files the shards found gone,
refreshes the lexeme statistics (document frequencies over all chunks), records the run's
summary (the shards' summaries added up) and drops the run's assignment plan (shard_plans.py).
It runs once, in the shard that finds every other shard succeeded, inside one transaction under
a lock that serialises finishing shards, while that shard still holds the project's write lock:
no other run can write in between, and a crash part-way leaves nothing half done (the shard's
retry finds the others done and redoes it).
A single-process run is the one-shard case of the same code.
"""
from __future__ import annotations

from dataclasses import fields

import asyncpg

from . import index_runs, shard_plans, store
from .models import IndexSummary
from .outcomes import SUCCEEDED
from .shards import Shard

_FINISH_LOCK_KEY = 7206  # serialises finishing shards for the length of their transaction


async def finish_shard(conn: asyncpg.Connection, run_id: str, shard: Shard,
                       summary: IndexSummary) -> IndexSummary | None:
    """Record the shard's success; if it is the last, do the whole-run step and return the run's summary."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _FINISH_LOCK_KEY)
        await index_runs.finish_shard(conn, run_id, shard, SUCCEEDED, summary=summary)
        parts = await index_runs.shard_summaries(conn, run_id, shard.count)
        if parts is None:
            return None
        total = combined(summary, parts)
        gone = await index_runs.gone_paths(conn, run_id)
        total.chunks_deleted += await store.delete_files(conn, gone)
        total.files_deleted = len(gone)
        if total.files_indexed or gone or await index_runs.whole_run_steps_pending(conn, run_id):
            await store.refresh_lexeme_stats(conn)
        total.duration_seconds = round(float(await conn.fetchval(
            "SELECT extract(epoch FROM clock_timestamp() - started_at) FROM index_runs WHERE run_id = $1",
            run_id) or 0.0), 3)
        await index_runs.finish_run(conn, run_id, SUCCEEDED, summary=total)
        await index_runs.clear_whole_run_steps_pending(conn)
        await index_runs.clear_gone(conn, run_id)
        await shard_plans.delete_plans(conn)
    return total


_ADDED = ("files_total", "files_indexed", "files_unchanged", "files_skipped", "chunks_created",
          "chunks_deleted", "chunks_skipped", "embeddings_computed", "embeddings_cached")
_MERGED = ("skipped_by_reason", "chunks_skipped_by_reason")


def combined(template: IndexSummary, parts: list[dict]) -> IndexSummary:
    """The run's summary: the shards' counts added up (deletions and duration are the caller's)."""
    known = {f.name for f in fields(IndexSummary)}
    total = IndexSummary(project_id=template.project_id, database_name=template.database_name,
                         mode=template.mode)
    for part in parts:
        part = {key: value for key, value in part.items() if key in known}
        for name in _ADDED:
            setattr(total, name, getattr(total, name) + int(part.get(name) or 0))
        for name in _MERGED:
            merged = getattr(total, name)
            for reason, count in (part.get(name) or {}).items():
                merged[reason] = merged.get(reason, 0) + int(count)
    for name in _MERGED:
        setattr(total, name, dict(sorted(getattr(total, name).items())))
    return total
