"""Issue 10: one run split over N shards builds the same index as one process, each shard writing only
its own files, and the whole-run step (gone files, lexeme statistics, the summary) done once, last."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from codebase_indexer import index_runs
from codebase_indexer.index_runs import read_run
from codebase_indexer.provisioning import ensure_project_database
from codebase_indexer.scanning import ScanOptions, SkipCounter, list_candidates
from codebase_indexer.schema import migrate
from codebase_indexer.shard_plans import planned_owner, read_plan
from codebase_indexer.shards import Shard, shard_of

from .conftest import Project, write_tree

EXTRA = {f"svc/handler_{i}.py": f"def handle_request_{i}(payload):\n    return payload.get('k{i}')\n"
         for i in range(8)}
# Small files in several languages (line windows, classes, methods), cheap to embed.
MIXED = {
    **EXTRA,
    "web/cart.ts": "export class Cart {\n  add(item: string) { return item; }\n  clear() { return 0; }\n}\n",
    "cmd/main.go": "package main\n\nfunc main() {}\n\nfunc parseFlags(args []string) int { return len(args) }\n",
    "lib/ring.rs": "pub struct Ring;\nimpl Ring {\n    pub fn rotate(&self) -> u8 { 1 }\n}\n",
    "docs/guide.md": "# Guide\n\nHow to reconcile the ledger.\n\n## Refunds\n\nRefunds go back.\n",
    "conf/app.yaml": "server:\n  port: 8080\n  workers: 4\n",
    "src/Shelf.java": "class Shelf {\n  int count() { return 1; }\n  void empty() {}\n}\n",
}


async def index_sharded(project: Project, repo, count: int, run_id: str | None = None):
    """Every shard of one run at once, as the pods of an Indexed Job run; the summaries by shard."""
    run_id = run_id or uuid.uuid4().hex
    return await asyncio.gather(*(project.index(repo, run_id=run_id, shard=Shard(i, count))
                                  for i in range(count)))


async def snapshot(project: Project) -> dict:
    conn = await asyncpg.connect(project.database.url)
    try:
        return {
            "files": sorted(tuple(r) for r in await conn.fetch("SELECT path, content_hash FROM files")),
            "chunks": sorted(tuple(r) for r in await conn.fetch(
                "SELECT f.path, c.start_line, c.end_line, c.content_hash, c.symbol, c.kind "
                "FROM chunks c JOIN files f ON f.id = c.file_id")),
            "symbols": sorted(tuple(r) for r in await conn.fetch(
                "SELECT f.path, s.qualified_name, s.kind, s.start_line, s.end_line, s.signature "
                "FROM symbols s JOIN files f ON f.id = s.file_id")),
            "lines": await conn.fetchval("SELECT count(*) FROM lines"),
            "lexemes": sorted(tuple(r) for r in await conn.fetch("SELECT lexeme, df FROM lexeme_stats")),
            "documents": await conn.fetchval("SELECT value FROM project_meta WHERE key = 'lexical_documents'"),
        }
    finally:
        await conn.close()


async def new_project(postgres_url, embedder, name: str) -> Project:
    return Project(await ensure_project_database(postgres_url, f"{name}-{uuid.uuid4().hex[:8]}"), embedder)


@pytest.mark.slow
async def test_one_two_and_four_shards_build_the_same_index_also_after_edits(postgres_url, embedder, tmp_path):
    repo = write_tree(tmp_path / "repo", MIXED)
    projects = {n: await new_project(postgres_url, embedder, f"shards{n}") for n in (1, 2, 4)}
    for count, project in projects.items():
        summaries = await index_sharded(project, repo, count)
        finals = [s for s in summaries if not s.partial]
        assert len(finals) == 1 and finals[0].files_indexed == len(MIXED), (count, summaries)
        assert sum(s.files_indexed for s in summaries if s.partial) < len(MIXED) or count == 1
    first = await snapshot(projects[1])
    assert len(first["files"]) == len(MIXED) and len(first["chunks"]) > len(MIXED) and first["lexemes"]
    assert ("web/cart.ts", "Cart.add") in {(path, name) for path, name, *_ in first["symbols"]}
    assert {n: await snapshot(p) for n, p in projects.items()} == {n: first for n in projects}

    # Edits that land in different shards: changed, deleted and added files.
    paths = sorted(EXTRA)
    (repo / paths[0]).write_text("def handle_request_0(payload):\n    return 'rewritten refund path'\n")
    (repo / paths[1]).unlink()
    (repo / paths[2]).unlink()
    write_tree(repo, {"svc/new_ledger.py": "def reconcile_ledger_entries(rows):\n    return sorted(rows)\n"})
    assert len({shard_of(p, 4) for p in paths[:3] + ["svc/new_ledger.py"]}) > 1
    for count, project in projects.items():
        summaries = await index_sharded(project, repo, count)
        final = next(s for s in summaries if not s.partial)
        assert (final.files_indexed, final.files_deleted) == (2, 2), (count, final)
    again = await snapshot(projects[1])
    assert again != first and tuple(p for p, _ in again["files"] if "ledger" in p) == ("svc/new_ledger.py",)
    assert {n: await snapshot(p) for n, p in projects.items()} == {n: again for n in projects}


@pytest.mark.slow
async def test_a_shard_writes_only_its_own_files_and_the_last_one_does_the_whole_run_step(project, tmp_path):
    files = {**EXTRA, "svc/gone_soon.py": "def decommission_warehouse_robot(unit):\n    return unit\n"}
    repo = write_tree(tmp_path / "repo", files)
    await project.index(repo)
    gone = "svc/gone_soon.py"
    (repo / gone).unlink()
    write_tree(repo, {"svc/arrives.py": "def quarantine_suspicious_parcel(parcel):\n    return parcel\n"})
    owner = shard_of("svc/arrives.py", 2)
    run_id = "run-two-shards"

    first = await project.index(repo, run_id=run_id, shard=Shard(owner, 2))
    assert first.partial and first.files_indexed == 1
    state = await snapshot(project)
    stored = {path for path, _ in state["files"]}
    assert "svc/arrives.py" in stored and gone in stored  # deletion waits for the whole-run step
    assert not any(lexeme.startswith("quarantin") for lexeme, _ in state["lexemes"])
    run = await read_run(project.database.url, run_id)
    assert run["state"] == "running" and run["shard_count"] == 2
    assert [(s["shard_index"], s["state"]) for s in run["shards"]] == [(owner, "succeeded")]

    last = await project.index(repo, run_id=run_id, shard=Shard(1 - owner, 2))
    assert not last.partial and (last.files_indexed, last.files_deleted) == (1, 1)
    assert last.files_total == len(files)  # the run's totals, not the last shard's
    state = await snapshot(project)
    assert gone not in {path for path, _ in state["files"]}
    lexemes = {lexeme for lexeme, _ in state["lexemes"]}
    assert any(lexeme.startswith("quarantin") for lexeme in lexemes)
    assert not any(lexeme.startswith("decommiss") for lexeme in lexemes)
    assert state["documents"] is not None and int(state["documents"]) == len(state["chunks"])
    run = await read_run(project.database.url, run_id)
    assert run["state"] == "succeeded" and run["summary"]["files_deleted"] == 1
    assert run["files_total"] == len(files) and run["files_done"] == len(files)


async def test_a_failed_shard_fails_the_run_naming_it(project, tmp_path):
    from codebase_indexer.pipeline import ModelMismatch
    from codebase_indexer.schema import migrate, record_embedding_model

    repo = write_tree(tmp_path / "repo", EXTRA)
    conn = await asyncpg.connect(project.database.url)
    try:  # the project was indexed with another model: every shard must refuse to mix vectors
        await migrate(conn)
        await record_embedding_model(conn, "another-model", 384)
    finally:
        await conn.close()
    with pytest.raises(ModelMismatch):
        await project.index(repo, run_id="run-broken", shard=Shard(2, 3))
    run = await read_run(project.database.url, "run-broken")
    assert run["state"] == "failed" and run["error"].startswith("shard 2 of 3: "), run["error"]
    assert [(s["shard_index"], s["state"]) for s in run["shards"]] == [(2, "failed")]


async def stored_plan(project: Project, run_id: str, count: int) -> dict[str, int] | None:
    conn = await asyncpg.connect(project.database.url)
    try:
        return await read_plan(conn, run_id, count)
    finally:
        await conn.close()


def late_path(owner: int, count: int) -> str:
    """A new file's path that the hash rule gives to shard `owner`."""
    return next(p for p in (f"svc/late_{i}.py" for i in range(100)) if shard_of(p, count) == owner)


@pytest.mark.slow
async def test_shards_share_one_plan_that_survives_a_retry_and_leaves_later_files_to_the_hash(project, tmp_path):
    # Two heavy files among light ones: the plan puts them on different shards, whatever their hashes.
    heavy = {f"core/engine_{i}.py": "".join(f"def step_{i}_{n}(state):\n    return state + {n}\n"
                                            for n in range(20)) for i in range(2)}
    repo = write_tree(tmp_path / "repo", {**EXTRA, **heavy})
    run_id = "run-planned"

    first = await project.index(repo, run_id=run_id, shard=Shard(0, 2))
    plan = await stored_plan(project, run_id, 2)
    assert plan is not None and plan.keys() == {*EXTRA, *heavy}  # the whole tree, each file once
    assert set(plan.values()) == {0, 1} and plan["core/engine_0.py"] != plan["core/engine_1.py"]
    assert first.partial and first.files_total == first.files_indexed == list(plan.values()).count(0)

    retried = await project.index(repo, run_id=run_id, shard=Shard(0, 2))  # a retried pod of shard 0
    assert await stored_plan(project, run_id, 2) == plan
    assert (retried.files_total, retried.files_unchanged, retried.files_indexed) == (first.files_total,
                                                                                     first.files_total, 0)

    # Files created after the plan have one owner each, by the hash rule: shard 1 writes its own
    # new file and leaves shard 0's, which already finished, to the next run.
    mine, theirs = late_path(1, 2), late_path(0, 2)
    write_tree(repo, {mine: "def arrived_for_shard_one():\n    return 1\n",
                      theirs: "def arrived_for_shard_zero():\n    return 0\n"})
    last = await project.index(repo, run_id=run_id, shard=Shard(1, 2))
    # The run's summary adds up its shards' last attempts: the retry of shard 0 wrote nothing.
    assert not last.partial and last.files_indexed == list(plan.values()).count(1) + 1
    stored = {path for path, _ in (await snapshot(project))["files"]}
    assert stored == {*plan, mine}
    assert await stored_plan(project, run_id, 2) is None  # the whole-run step dropped the plan
    conn = await asyncpg.connect(project.database.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM index_run_plan_files") == 0
    finally:
        await conn.close()
    await index_sharded(project, repo, 2)
    assert theirs in {path for path, _ in (await snapshot(project))["files"]}


async def test_shards_planning_at_once_all_follow_the_first_plan_stored_and_a_dead_runs_plan_goes(project, tmp_path):
    repo = write_tree(tmp_path / "repo", MIXED)
    listed = list_candidates(repo, ScanOptions(), SkipCounter())
    connections = [await asyncpg.connect(project.database.url) for _ in range(4)]
    try:
        await migrate(connections[0])
        await index_runs.start_run(connections[0], "run-dead", "full", Shard(0, 4))
        await planned_owner(connections[0], "run-dead", Shard(0, 4), listed)  # its run then failed
        await index_runs.start_run(connections[0], "run-racing", "full", Shard(0, 4))
        # Each shard saw a different tree (files came and went while they listed): one plan wins.
        owners = await asyncio.gather(*(planned_owner(conn, "run-racing", Shard(i, 4), listed[i:])
                                        for i, conn in enumerate(connections)))
        assert len({tuple(sorted(owner.plan.items())) for owner in owners}) == 1
        assert all(sum(owner.owns(c.path) for owner in owners) == 1 for c in listed)
        assert await read_plan(connections[0], "run-racing", 4) == owners[0].plan
        assert await read_plan(connections[0], "run-dead", 4) is None
    finally:
        for conn in connections:
            await conn.close()
