"""Item 9 (local part): a gateway runs at most N indexer processes at once (default 2); later runs
wait as `pending` with their place in the queue, and start in order as slots free.

The runs are held in their write phase by `embedding_gate`, so "two are running and two are
queued" is a state the test sees for certain, not a race it may lose."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from codebase_indexer.postgres import database_url
from tests.gateway.conftest import SERVE, gateway_env, wait_for_job, write_repo


@pytest.mark.slow
async def test_four_runs_through_one_gateway_use_at_most_two_indexers(postgres_url, gate, tmp_path):
    projects = [f"slots-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    repos = [write_repo(tmp_path / p, {f"m{j}.py": f"def slot_{i}_{j}():\n    return {j}\n" for j in range(3)})
             for i, p in enumerate(projects)]
    transport = StdioTransport(command=SERVE[0], args=SERVE[1:], env=gateway_env(gate.env()), keep_alive=False)
    async with Client(transport, timeout=180) as client:
        ids = []
        for project, repo in zip(projects, repos, strict=True):
            ids.append((await client.call_tool("start_indexing_background",
                                                {"repo_path": str(repo), "project_id": project})).data["job_id"])
        await asyncio.to_thread(gate.wait_for_batches, 2)
        await asyncio.sleep(1.5)  # time for a third indexer to appear, were the limit not kept
        gateway_pid = await _gateway_pid(postgres_url, ids[0])
        held = len(_indexer_children(gateway_pid))
        statuses = [(await client.call_tool("get_indexing_status", {"job_id": i})).data for i in ids]
        listed = {j["job_id"]: j for j in (await client.call_tool("list_indexing_jobs", {})).data["jobs"]}
        health = json.loads((await client.read_resource("health://status"))[0].text)

        gate.released.set()
        most_at_once = await _most_indexers_until_done(client, gateway_pid, ids)
        finals = [await wait_for_job(client, i) for i in ids]

    assert held == 2 and gate.batches_waiting >= 2
    assert [s["status"] for s in statuses] == ["running", "running", "pending", "pending"]
    assert [s["queue_position"] for s in statuses] == [None, None, 1, 2]
    assert "position 1" in statuses[2]["status_message"] and "2 run slots" in statuses[2]["status_message"]
    assert listed[ids[3]]["queue_position"] == 2
    assert health["max_concurrent_runs"] == 2 and health["active_runs"] == 2
    assert most_at_once <= 2
    assert [f["status"] for f in finals] == ["completed"] * 4
    assert finals[2]["started_at"] <= finals[3]["started_at"]  # the queue is served in order
    assert all(f["queue_position"] is None for f in finals)


async def _gateway_pid(postgres_url: str, job_id: str) -> int:
    conn = await asyncpg.connect(database_url(postgres_url, "codebase_mcp_registry"))
    try:
        owner = await conn.fetchval("SELECT owner FROM indexing_jobs WHERE job_id = $1", job_id)
    finally:
        await conn.close()
    return int(owner.split(":")[1])


async def _most_indexers_until_done(client, gateway_pid: int, ids: list[str]) -> int:
    most, deadline = 0, time.monotonic() + 180
    while time.monotonic() < deadline:
        most = max(most, len(_indexer_children(gateway_pid)))
        jobs = (await client.call_tool("list_indexing_jobs", {})).data["jobs"]
        if all(j["status"] in ("completed", "failed", "cancelled") for j in jobs if j["job_id"] in ids):
            return most
        await asyncio.sleep(0.1)
    raise AssertionError("the runs did not finish within 180 s")


def _indexer_children(parent: int) -> list[int]:
    children = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"codebase_indexer" in cmdline:
            children.append(int(proc.name))
    return children
