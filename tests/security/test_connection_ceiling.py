"""Issue 14, item 4: searching many projects through one gateway must not take every PostgreSQL connection.

Before, the gateway kept one never-closed pool per project database searched: after about 48
projects PostgreSQL answered "too many clients already" to the gateway, the indexers and
everyone else. Now every connection of the gateway counts against `--max-database-connections`
and idle project pools are closed, least recently used first. The test searches 150 projects
through one real gateway (stdio, embedded PostgreSQL), then indexes one more and lists them
all, while sampling pg_stat_activity for the gateway's connections.
"""
from __future__ import annotations

import asyncio
import subprocess
import uuid

import asyncpg
import pytest

from codebase_indexer.connections import GATEWAY_APPLICATION_NAME
from codebase_indexer.postgres import database_url
from codebase_indexer.provisioning import drop_project_database, ensure_project_database
from tests.gateway.conftest import SERVE, gateway_env, stdio_client, wait_for_job, write_repo

PROJECTS = 150
CEILING = 8
PROVISIONING_CONCURRENCY = 6


@pytest.fixture
async def fast_commits(postgres_url):
    """fsync off while 150 databases are created and dropped: a throwaway test server, minutes saved."""
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute("ALTER SYSTEM SET fsync = off")
        await admin.execute("SELECT pg_reload_conf()")
        yield
    finally:
        await admin.execute("ALTER SYSTEM RESET fsync")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.close()


async def _provision_with_one_chunk(admin_url: str, project_id: str) -> None:
    project = await ensure_project_database(admin_url, project_id)
    conn = await asyncpg.connect(database_url(admin_url, project.database_name))
    try:
        file_id = await conn.fetchval(
            "INSERT INTO files (path, extension, language, content_hash, size, content, chunk_count) "
            "VALUES ('ledger.py', 'py', 'python', 'h', 40, $1, 1) RETURNING id", _LEDGER)
        await conn.execute(
            "INSERT INTO chunks (file_id, start_line, end_line, symbol, kind, language, content, content_hash, "
            "embedding, search_vector) VALUES ($1, 1, 2, 'reconcile_ledger', 'function', 'python', $2, 'h', "
            "array_fill(0.1::real, ARRAY[384])::vector, to_tsvector('english', $2))", file_id, _LEDGER)
        await conn.execute("INSERT INTO lexeme_stats (lexeme, df) "
                           "SELECT word, ndoc FROM ts_stat('SELECT search_vector FROM chunks')")
    finally:
        await conn.close()


_LEDGER = "def reconcile_ledger(entries):\n    return sum(entry.amount for entry in entries)\n"


@pytest.fixture
async def many_projects(postgres_url, fast_commits):
    prefix = f"ceiling-{uuid.uuid4().hex[:6]}"
    project_ids = [f"{prefix}-{n:03d}" for n in range(PROJECTS)]
    limit = asyncio.Semaphore(PROVISIONING_CONCURRENCY)

    async def provision(project_id: str) -> None:
        async with limit:
            await _provision_with_one_chunk(postgres_url, project_id)

    async def drop(project_id: str) -> None:
        async with limit:
            await drop_project_database(postgres_url, project_id)

    try:
        await asyncio.gather(*(provision(project_id) for project_id in project_ids))
        yield project_ids
    finally:
        await asyncio.gather(*(drop(project_id) for project_id in project_ids), return_exceptions=True)


class GatewayConnections:
    """Samples pg_stat_activity every few milliseconds; remembers the most gateway connections held.

    A connection the gateway has closed stays in pg_stat_activity until its server process has
    exited, a few milliseconds later (longer on a loaded machine), so a sample may catch a closed
    one beside the one that replaced it. A sample over the ceiling is therefore looked at again a
    second later: only backends still there then were held, not on their way out.
    """

    RECHECK_SECONDS = 1.0

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self.most = 0
        self.samples = 0
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> GatewayConnections:
        self._conn = await asyncpg.connect(self._admin_url)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._conn.close()

    async def _pids(self) -> set[tuple[int, object]]:
        rows = await self._conn.fetch(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = $1", GATEWAY_APPLICATION_NAME)
        return {(row["pid"], row["backend_start"]) for row in rows}

    async def _sample(self) -> None:
        while True:
            seen = await self._pids()
            held = len(seen)
            if held > CEILING:
                await asyncio.sleep(self.RECHECK_SECONDS)
                held = len(seen & await self._pids())
            self.most = max(self.most, held)
            self.samples += 1
            await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_searching_150_projects_stays_under_the_ceiling_and_indexing_still_works(
        many_projects, postgres_url, tmp_path):
    async with GatewayConnections(postgres_url) as seen, \
            stdio_client("--max-database-connections", str(CEILING)) as client:

        async def search(project_id: str) -> dict:
            return (await client.call_tool("search_code", {
                "query": "reconcile the ledger", "project_id": project_id, "mode": "lexical"})).data

        # Eight at a time: concurrent searches of different projects compete for the ceiling.
        for start in range(0, PROJECTS, 8):
            batch = many_projects[start:start + 8]
            for project_id, found in zip(batch, await asyncio.gather(*(search(p) for p in batch)), strict=True):
                assert found["project_id"] == project_id
                assert [r["symbol"] for r in found["results"]] == ["reconcile_ledger"]

        # One more project: indexing (provisioning, the indexer process) and listing still work.
        extra = f"ceiling-extra-{uuid.uuid4().hex[:6]}"
        searched = list(many_projects)
        many_projects.append(extra)  # dropped with the others
        repo = write_repo(tmp_path / "extra", {"ledger.py": _LEDGER})
        started = (await client.call_tool("start_indexing_background",
                                          {"repo_path": str(repo), "project_id": extra})).data
        status = await wait_for_job(client, started["job_id"])
        assert status["status"] == "completed", status
        found = (await client.call_tool("search_code", {"query": "sum of ledger entries", "project_id": extra,
                                                        "mode": "lexical"})).data
        assert found["results"][0]["file_path"] == "ledger.py"

        listed = {p["name"] for p in (await client.call_tool("list_projects", {})).data["projects"]}
        assert set(searched) | {extra} <= listed

    assert seen.samples > 100
    assert 0 < seen.most <= CEILING, f"the gateway held {seen.most} connections; its ceiling is {CEILING}"


@pytest.mark.slow
def test_a_ceiling_below_the_minimum_is_refused_with_a_clear_error(postgres_url):
    result = subprocess.run([*SERVE, "--max-database-connections", "2"], env=gateway_env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--max-database-connections" in result.stderr and "at least 4" in result.stderr
