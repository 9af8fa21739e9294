"""A run's assignment plan: which shard owns each file of the tree, computed once and kept in the database.

A shard of a run (N > 1) that finds no plan weighs every file it listed and assigns them with
`shards.assign`; the first such plan is stored in `index_run_plans` / `index_run_plan_files`
under a short transaction lock, and every shard (the others that made one too, a later one, a
retried one: same run id) then reads and follows that stored plan.

A file's weight is what embedding it costs, which the bytes the model will read track closely:
a file the indexer will skip (binary, minified, generated) or that is unchanged since it was
indexed (an incremental run) weighs almost nothing, since its owner only reads it. Reading every
file once costs about a second per 40 MB, against the minutes the shards then spend embedding.
The whole-run step deletes the plan (`delete_plans`); a plan a failed run left is deleted when
the next run stores its own.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import asyncpg

from .scanning import Candidate, SkipCounter, read_source
from .shards import Owner, PlannedShard, Shard, assign

_PLAN_LOCK_KEY = 7207  # held for the length of the planning transaction only
READ_COST_DIVISOR = 1024  # reading and hashing a byte costs about a thousandth of embedding it


def file_weights(candidates: Iterable[Candidate], stored_hashes: Mapping[str, str] | None = None) -> dict[str, int]:
    """Each listed file's weight: the bytes to embed (none for a file the indexer will skip or that
    is unchanged from `stored_hashes`), plus the bytes to read divided by READ_COST_DIVISOR, plus 1."""
    stored_hashes = stored_hashes or {}
    weights: dict[str, int] = {}
    for candidate in candidates:
        source = read_source(candidate, SkipCounter())
        if source is None:
            weights[candidate.path] = 1 + candidate.size // READ_COST_DIVISOR
        elif stored_hashes.get(source.path) == source.content_hash:
            weights[candidate.path] = 1 + source.size // READ_COST_DIVISOR
        else:
            weights[candidate.path] = 1 + source.size + source.size // READ_COST_DIVISOR
    return weights


async def planned_owner(conn: asyncpg.Connection, run_id: str, shard: Shard, candidates: list[Candidate],
                        stored_hashes: Mapping[str, str] | None = None) -> Owner:
    """What `shard` owns in run `run_id`: the run's plan, made from `candidates` (this shard's
    listing) if no shard made it yet. A one-shard run owns everything and needs no plan."""
    if shard.whole:
        return shard
    plan = await read_plan(conn, run_id, shard.count)
    if plan is None:
        # Weighed outside the lock: shards starting together read the tree at once rather than in
        # turn, and no transaction stays open while files are read. The first plan stored wins.
        mine = assign(await asyncio.to_thread(file_weights, candidates, stored_hashes), shard.count)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PLAN_LOCK_KEY)
            plan = await read_plan(conn, run_id, shard.count)
            if plan is None:
                await _store_plan(conn, run_id, shard.count, mine)
                plan = mine
    return PlannedShard(shard, plan)


async def read_plan(conn: asyncpg.Connection, run_id: str, shard_count: int) -> dict[str, int] | None:
    """The run's plan (path → shard index), or None when it has none for `shard_count` shards."""
    planned = await conn.fetchval(
        "SELECT shard_count FROM index_run_plans WHERE run_id = $1", run_id)
    if planned != shard_count:
        return None
    rows = await conn.fetch("SELECT path, shard_index FROM index_run_plan_files WHERE run_id = $1", run_id)
    # A row out of range (never written by this module) falls back to the hash rule, never to no owner.
    return {row["path"]: row["shard_index"] for row in rows if row["shard_index"] < shard_count}


async def _store_plan(conn: asyncpg.Connection, run_id: str, shard_count: int, plan: dict[str, int]) -> None:
    # Only this run may write now (it holds the project lock): any other run's plan is a dead one's.
    await conn.execute("DELETE FROM index_run_plans")
    await conn.execute("INSERT INTO index_run_plans (run_id, shard_count) VALUES ($1, $2)", run_id, shard_count)
    await conn.copy_records_to_table("index_run_plan_files", records=[(run_id, p, i) for p, i in plan.items()],
                                     columns=("run_id", "path", "shard_index"))


async def delete_plans(conn: asyncpg.Connection) -> None:
    """Drop every plan: called by the whole-run step, when no shard of any run needs one any more."""
    await conn.execute("DELETE FROM index_run_plans")
