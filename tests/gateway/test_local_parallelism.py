"""Issue 10 on the local control plane: `codebase-mcp serve --parallelism N` runs each run as N indexer
processes (the shards a Kubernetes run of parallelism N has) and the index is the one a single process
builds; a real MCP client over stdio."""
from __future__ import annotations

import uuid

import asyncpg
import pytest

from codebase_gateway.serve_command import main as serve_main
from codebase_indexer.identifiers import database_name
from codebase_indexer.postgres import database_url

from .conftest import stdio_client, write_repo

FILES = {f"svc/worker_{i}.py": f"def process_shipment_batch_{i}(batch):\n    return len(batch) + {i}\n"
         for i in range(6)}


@pytest.mark.slow
async def test_a_run_of_two_shards_indexes_every_file_once(postgres_url, tmp_path):
    project = f"local-shards-{uuid.uuid4().hex[:8]}"
    repo = write_repo(tmp_path / "repo", FILES)
    async with stdio_client("--parallelism", "2") as client:
        health = (await client.read_resource("health://status"))[0].text
        assert '"parallelism": 2' in health or '"parallelism":2' in health
        done = (await client.call_tool("index_repository", {"repo_path": str(repo), "project_id": project})).data
        found = (await client.call_tool("search_code", {"query": "process shipment batch", "project_id": project,
                                                        "limit": 10})).data
    assert done["status"] == "completed", done
    assert done["summary"]["files_indexed"] == len(FILES) and not done["summary"]["partial"]
    assert {r["file_path"] for r in found["results"]} == set(FILES)
    conn = await asyncpg.connect(database_url(postgres_url, database_name(project)))
    try:
        shards = await conn.fetch("SELECT shard_index, shard_count, state FROM index_run_shards WHERE run_id = $1 "
                                  "ORDER BY shard_index", done["job_id"])
        paths = [r["path"] for r in await conn.fetch("SELECT path FROM files ORDER BY path")]
    finally:
        await conn.close()
    assert [tuple(r) for r in shards] == [(i, 2, "succeeded") for i in range(2)]
    assert paths == sorted(FILES)


def test_parallelism_out_of_range_is_refused_before_serving(capsys):
    assert serve_main(["--parallelism", "65"]) == 2
    error = capsys.readouterr().err
    assert "--parallelism" in error and "from 1 to 64" in error
