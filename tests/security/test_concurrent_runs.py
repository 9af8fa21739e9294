"""Item 9 (local part): a gateway runs at most N indexer processes at once (default 2); later runs
wait as `pending` with their place in the queue, and start in order as slots free."""
from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg

from codebase_indexer.postgres import database_url

from tests.gateway.conftest import stdio_client, wait_for_job, write_repo


async def test_four_runs_through_one_gateway_use_at_most_two_indexers(postgres_url, tmp_path):
    projects = [f"slots-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    repos = [write_repo(tmp_path / p, {f"m{j}.py": f"def slot_{i}_{j}():\n    return {j}\n" for j in range(5)})
             for i, p in enumerate(projects)]
    async with stdio_client() as client:
        jobs = []
        for project, repo in zip(projects, repos):
            jobs.append((await client.call_tool("start_indexing_background",
                                                {"repo_path": str(repo), "project_id": project})).data)
        ids = [job["job_id"] for job in jobs]
        await asyncio.sleep(1.0)
        queued = [(await client.call_tool("get_indexing_status", {"job_id": i})).data for i in ids[2:]]
        listed = {j["job_id"]: j for j in (await client.call_tool("list_indexing_jobs", {})).data["jobs"]}

        gateway_pid = await _gateway_pid(postgres_url, ids[0])
        most_at_once, started_order = await _watch_indexers(client, gateway_pid, ids)
        finals = [await wait_for_job(client, i) for i in ids]

    assert [q["status"] for q in queued] == ["pending", "pending"]
    assert [q["queue_position"] for q in queued] == [1, 2]
    assert "position 1" in queued[0]["status_message"] and "2 run slots" in queued[0]["status_message"]
    assert listed[ids[3]]["queue_position"] == 2
    assert 1 <= most_at_once <= 2
    assert started_order == sorted(started_order)  # queued runs start in the order they were asked for
    assert [f["status"] for f in finals] == ["completed"] * 4
    assert all(f["queue_position"] is None for f in finals)


async def _gateway_pid(postgres_url: str, job_id: str) -> int:
    conn = await asyncpg.connect(database_url(postgres_url, "codebase_mcp_registry"))
    try:
        owner = await conn.fetchval("SELECT owner FROM indexing_jobs WHERE job_id = $1", job_id)
    finally:
        await conn.close()
    return int(owner.split(":")[1])


async def _watch_indexers(client, gateway_pid: int, ids: list[str]) -> tuple[int, list[str]]:
    """Sample the gateway's indexer children until every job finished: the most seen at once, and
    the jobs' start times in the order the jobs were created."""
    most, deadline = 0, time.monotonic() + 240
    while time.monotonic() < deadline:
        most = max(most, len(_indexer_children(gateway_pid)))
        statuses = [(await client.call_tool("get_indexing_status", {"job_id": i})).data for i in ids]
        if all(s["status"] in ("completed", "failed", "cancelled") for s in statuses):
            return most, [s["started_at"] for s in statuses]
        await asyncio.sleep(0.1)
    raise AssertionError("the runs did not finish within 240 s")


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
