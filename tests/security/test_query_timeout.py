"""Issue 14, item 9 (queries): a search that would run for seconds is cut off with a clear error.

Every connection of the gateway carries a statement timeout (`--statement-timeout`, 10 s by
default). The slow search here is a search of a project whose chunks table another session
holds locked (as a long maintenance statement would): before, the call hung for as long as the
lock was held, holding its connection; now it stops after the timeout with a message that says
what happened and what to do, and the gateway keeps serving. A path glob too complex to run
cheaply is refused before any query.
"""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import asyncpg
import pytest
from fastmcp.exceptions import ToolError

from codebase_indexer.postgres import database_url
from codebase_indexer.provisioning import drop_project_database, ensure_project_database
from tests.gateway.conftest import stdio_client

TIMEOUT_SECONDS = 1.0


@pytest.fixture
async def project(postgres_url):
    project_id = f"timeout-{uuid.uuid4().hex[:8]}"
    created = await ensure_project_database(postgres_url, project_id)
    conn = await asyncpg.connect(database_url(postgres_url, created.database_name))
    try:
        file_id = await conn.fetchval(
            "INSERT INTO files (path, extension, language, content_hash, size, content, chunk_count) "
            "VALUES ('audit.py', 'py', 'python', 'h', 30, 'def audit_trail(): pass', 1) RETURNING id")
        await conn.execute(
            "INSERT INTO chunks (file_id, start_line, end_line, symbol, kind, language, content, content_hash, "
            "embedding, search_vector) VALUES ($1, 1, 1, 'audit_trail', 'function', 'python', "
            "'def audit_trail(): pass', 'h', array_fill(0.1::real, ARRAY[384])::vector, "
            "to_tsvector('english', 'audit trail'))", file_id)
        await conn.execute("INSERT INTO lexeme_stats (lexeme, df) "
                           "SELECT word, ndoc FROM ts_stat('SELECT search_vector FROM chunks')")
    finally:
        await conn.close()
    yield created
    await drop_project_database(postgres_url, project_id)


@pytest.mark.slow
async def test_a_search_held_up_for_seconds_is_cut_off_with_a_clear_error(project, postgres_url):
    arguments = {"query": "audit trail", "project_id": project.project_id, "mode": "lexical"}
    async with stdio_client("--statement-timeout", str(TIMEOUT_SECONDS)) as client:
        assert (await client.call_tool("search_code", arguments)).data["total_count"] == 1

        locker = await asyncpg.connect(database_url(postgres_url, project.database_name))
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                with pytest.raises(ToolError) as refused:
                    await client.call_tool("search_code", arguments)
                elapsed = time.monotonic() - started
        finally:
            await locker.close()

        message = str(refused.value)
        assert "statement timeout" in message and f"{TIMEOUT_SECONDS:g} s" in message
        assert "narrow" in message
        assert "asyncpg" not in message and "Traceback" not in message and "QueryCanceled" not in message
        assert elapsed < 8 * TIMEOUT_SECONDS + 5

        # The lock is gone: the same gateway answers again.
        assert (await client.call_tool("search_code", arguments)).data["total_count"] == 1


def test_a_path_glob_too_complex_to_run_cheaply_is_refused(project):
    glob = "**/" * 8 + "*.py"
    result = subprocess.run(
        [sys.executable, "-m", "codebase_gateway.cli", "search", "audit trail", "--project", project.project_id,
         "--mode", "lexical", "--path-glob", glob], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "path_glob is too complex" in result.stderr and "directory filter" in result.stderr
    assert "Traceback" not in result.stderr
