"""Item 10: two indexers on one project (the CLI's indexer beside a gateway, two gateways) take
turns on the project's write lock instead of deleting each other's files; a second run waits, or
fails with "project X is being indexed by run R"; a killed indexer's run is marked failed.

The first run is held in its write phase by an embedding server that answers only when the test
lets it (`embedding_gate`), so the overlap is certain rather than a matter of timing.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid

import asyncpg
import pytest

from codebase_indexer.index_runs import read_run
from codebase_indexer.provisioning import ensure_project_database
from tests.gateway.conftest import SERVE, gateway_env, registry_job, wait_for_job, write_repo

FILES = {f"pkg/mod{i}.py": f"def lock_probe_{i}(value):\n    return value * {i}\n" for i in range(12)}


async def start_indexer(url: str, project_id: str, repo, run_id: str, env: dict[str, str]):
    """`python -m codebase_indexer`, as the CLI's Job or a gateway would run it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codebase_indexer", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env, "CODEBASE_MCP_DATABASE_URL": url, "CODEBASE_MCP_PROJECT_ID": project_id,
             "CODEBASE_MCP_SOURCE_PATH": str(repo), "CODEBASE_MCP_RUN_ID": run_id})


async def result_of(process) -> dict:
    out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    return json.loads(out.decode().strip().splitlines()[-1])


async def index_state(url: str) -> dict:
    conn = await asyncpg.connect(url)
    try:
        return {
            "paths": sorted(r["path"] for r in await conn.fetch("SELECT path FROM files")),
            "chunk_rows": await conn.fetchval("SELECT count(*) FROM chunks"),
            "chunk_counts": await conn.fetchval("SELECT coalesce(sum(chunk_count), 0) FROM files"),
            "runs": [dict(r) for r in await conn.fetch(
                "SELECT run_id, state, error, started_at, finished_at FROM index_runs ORDER BY started_at")],
        }
    finally:
        await conn.close()


@pytest.mark.slow
async def test_a_second_run_waits_for_the_first_and_the_index_stays_whole(postgres_url, gate, tmp_path):
    project = await ensure_project_database(postgres_url, f"lock-wait-{uuid.uuid4().hex[:8]}")
    repo = write_repo(tmp_path / "repo", FILES)
    first = await start_indexer(project.url, project.project_id, repo, "run-first", gate.env())
    await asyncio.to_thread(gate.wait_for_batches, 1)
    second = await start_indexer(project.url, project.project_id, repo, "run-second",
                                 gate.env(CODEBASE_MCP_LOCK_WAIT_SECONDS="120"))
    await asyncio.sleep(4)  # time enough for the second to start and reach the lock
    assert second.returncode is None  # waiting, not failed and not writing
    assert [r["run_id"] for r in (await index_state(project.url))["runs"]] == ["run-first"]

    gate.released.set()
    results = [await result_of(first), await result_of(second)]
    assert [r["ok"] for r in results] == [True, True], results
    assert results[0]["summary"]["files_indexed"] == len(FILES)
    assert results[1]["summary"]["files_unchanged"] == len(FILES)  # it ran after, on the finished index

    state = await index_state(project.url)
    assert state["paths"] == sorted(FILES) and state["chunk_rows"] == state["chunk_counts"] == len(FILES)
    first_run, second_run = state["runs"]
    assert first_run["finished_at"] <= second_run["started_at"]  # one after the other, never together


@pytest.mark.slow
async def test_a_second_run_through_the_gateway_fails_naming_the_run_that_holds_the_project(
        postgres_url, gate, tmp_path):
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    project = await ensure_project_database(postgres_url, f"lock-busy-{uuid.uuid4().hex[:8]}")
    repo = write_repo(tmp_path / "repo", FILES)
    cli_run = await start_indexer(project.url, project.project_id, repo, "run-from-the-cli", gate.env())
    await asyncio.to_thread(gate.wait_for_batches, 1)

    env = gateway_env(gate.env(CODEBASE_MCP_LOCK_WAIT_SECONDS="0"))
    transport = StdioTransport(command=SERVE[0], args=SERVE[1:], env=env, keep_alive=False)
    async with Client(transport, timeout=180) as gateway:
        refused = (await gateway.call_tool("index_repository", {"repo_path": str(repo),
                                                                "project_id": project.project_id})).data
        gate.released.set()
        assert (await result_of(cli_run))["ok"] is True
        after = (await gateway.call_tool("index_repository", {"repo_path": str(repo),
                                                              "project_id": project.project_id})).data

    assert refused["status"] == "failed"
    assert (f"project {project.project_id!r} is being indexed by run run-from-the-cli"
            in refused["error_message"]), refused["error_message"]
    assert after["status"] == "completed" and after["summary"]["files_unchanged"] == len(FILES)
    state = await index_state(project.url)
    assert state["paths"] == sorted(FILES) and state["chunk_rows"] == len(FILES)


@pytest.mark.slow
async def test_a_killed_indexer_is_marked_failed_not_running_forever(postgres_url, gate, tmp_path):
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    project = await ensure_project_database(postgres_url, f"lock-kill-{uuid.uuid4().hex[:8]}")
    repo = write_repo(tmp_path / "repo", FILES)

    # An indexer started by hand (the CLI's way), killed in its write phase: nobody supervises it.
    orphan = await start_indexer(project.url, project.project_id, repo, "run-killed", gate.env())
    await asyncio.to_thread(gate.wait_for_batches, 1)
    orphan.send_signal(signal.SIGKILL)
    await orphan.wait()
    left = await read_run(project.url, "run-killed")
    assert left["state"] == "failed" and "killed" in left["error"]

    # An indexer of the gateway, killed: its job fails at once, saying how it ended.
    transport = StdioTransport(command=SERVE[0], args=SERVE[1:], env=gateway_env(gate.env()),
                               keep_alive=False)
    async with Client(transport, timeout=180) as gateway:
        job = (await gateway.call_tool("start_indexing_background",
                                       {"repo_path": str(repo), "project_id": project.project_id})).data
        await asyncio.to_thread(gate.wait_for_batches, 2)  # the orphan's batch, then this one
        pid = (await registry_job(postgres_url, job["job_id"]))["process_id"]
        os.kill(pid, signal.SIGKILL)
        status = await wait_for_job(gateway, job["job_id"], timeout=60)
        assert status["status"] == "failed" and "SIGKILL" in status["error_message"]

        gate.released.set()
        again = (await gateway.call_tool("index_repository", {"repo_path": str(repo),
                                                              "project_id": project.project_id})).data
    assert again["status"] == "completed"
    runs = {r["run_id"]: r["state"] for r in (await index_state(project.url))["runs"]}
    assert runs["run-killed"] == "failed" and runs[job["job_id"]] == "failed"  # recorded, not only reported
    assert runs[again["job_id"]] == "succeeded"



async def test_concurrent_provisioning_of_one_project_succeeds(postgres_url):
    """A gateway's tool call and its supervisor (or the CLI beside a gateway) provision one project at
    once: every caller gets the database, none fails with UniqueViolation or 'tuple concurrently updated'."""
    for _ in range(3):
        project_id = f"lock-provision-{uuid.uuid4().hex[:8]}"
        results = await asyncio.gather(*(ensure_project_database(postgres_url, project_id) for _ in range(4)),
                                       return_exceptions=True)
        assert [type(r).__name__ for r in results if isinstance(r, BaseException)] == [], results
        assert len({r.database_name for r in results}) == 1
