"""Item 11: an indexer child process gets an explicit, minimal environment, never the gateway's
secrets (its bearer token, the admin database URL) or anything else the gateway happened to have."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from codebase_indexer.postgres import database_url
from tests.gateway.conftest import TOKEN, start_http_gateway, stop_http_gateway, wait_for_job, write_repo

CANARY = "CODEBASE_TEST_CANARY_7f3a"


@pytest.mark.slow
async def test_the_indexer_does_not_inherit_the_token_or_other_gateway_variables(postgres_url, gate, tmp_path):
    repo = write_repo(tmp_path / "repo", {f"m{i}.py": f"def env_probe_{i}():\n    return {i}\n" for i in range(4)})
    gateway = start_http_gateway("--allowed-root", str(tmp_path),
                                 env={"CODEBASE_MCP_TOKEN": TOKEN, CANARY: "canary-value",
                                      "AWS_SECRET_ACCESS_KEY": "not-for-children", **gate.env()})
    try:
        async with gateway.client() as client:
            job = (await client.call_tool("start_indexing_background",
                                          {"repo_path": str(repo), "project_id": "env-probe"})).data
            await asyncio.to_thread(gate.wait_for_batches, 1)  # the indexer is alive, held mid-run
            environment = await _indexer_environment(postgres_url, job["job_id"])
            gate.released.set()
            final = await wait_for_job(client, job["job_id"])
    finally:
        stop_http_gateway(gateway)

    assert final["status"] == "completed"  # the minimal environment is enough to index
    names = set(environment)
    assert "CODEBASE_MCP_TOKEN" not in names and CANARY not in names
    assert "AWS_SECRET_ACCESS_KEY" not in names and not names & {"DATABASE_URL", "CODEBASE_MCP_ADMIN_DATABASE_URL"}
    assert not any(TOKEN in value for value in environment.values())
    assert environment["CODEBASE_MCP_RUN_ID"] == job["job_id"] and environment["HF_HUB_OFFLINE"] == "1"
    assert environment["CODEBASE_MCP_EMBEDDING_URL"] == gate.url  # the indexer's own settings do pass
    assert "PATH" in names


async def _indexer_environment(postgres_url: str, job_id: str) -> dict[str, str]:
    """The environment of the job's indexer process, read from /proc while it runs."""
    conn = await asyncpg.connect(database_url(postgres_url, "codebase_mcp_registry"))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pid = await conn.fetchval("SELECT process_id FROM indexing_jobs WHERE job_id = $1", job_id)
            if pid:
                raw = Path(f"/proc/{pid}/environ").read_bytes()
                return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"job {job_id} never started an indexer process")
