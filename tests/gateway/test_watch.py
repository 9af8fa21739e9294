"""Issue 9, the laptop: `codebase-mcp serve` keeps every indexed repository fresh on its own.

A real gateway subprocess with watching on (a short debounce), a real MCP client, real indexer
children and the real model; the file system events are the kernel's (watchfiles/inotify).
"""
from __future__ import annotations

import asyncio
import shutil
import time
import uuid

import pytest

from .conftest import stdio_client, wait_for_job, write_repo

pytestmark = pytest.mark.slow

WATCHING = {"CODEBASE_MCP_WATCH": "true", "CODEBASE_MCP_WATCH_DEBOUNCE": "0.3"}


def word() -> str:
    """A token no other file of any test holds, so a lexical search finds exactly where it is."""
    return f"zq{uuid.uuid4().hex[:10]}"


def function(name: str, marker: str) -> str:
    return f"def {name}():\n    \"\"\"Return the {marker} marker.\"\"\"\n    return '{marker}'\n"


async def paths_with(client, project: str, token: str) -> set[str]:
    result = (await client.call_tool("search_code", {"query": token, "project_id": project,
                                                     "mode": "lexical", "limit": 20})).data
    return {r["file_path"] for r in result["results"] if token in r["content"]}


async def eventually(check, timeout: float = 60.0):
    """Poll `check` (an async callable) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def project_row(client, project: str) -> dict:
    listing = (await client.call_tool("list_projects", {})).data
    return next(p for p in listing["projects"] if p["name"] == project)


async def indexed(client, repo, project: str) -> None:
    started = (await client.call_tool("start_indexing_background",
                                      {"repo_path": str(repo), "project_id": project})).data
    status = await wait_for_job(client, started["job_id"])
    assert status["status"] == "completed", status


async def watch_state(client, project: str, state: str, timeout: float = 30.0) -> dict:
    async def reached():
        row = await project_row(client, project)
        return row if row["watch"]["state"] == state else None
    row = await eventually(reached, timeout)
    assert row, f"the watch of {project} never reached {state!r}: {(await project_row(client, project))['watch']}"
    return row


@pytest.fixture(scope="module")
async def watching_gateway(postgres_url):
    async with stdio_client(env=WATCHING) as client:
        yield client


async def test_created_modified_renamed_and_deleted_files_follow_the_disk(watching_gateway, tmp_path):
    client, project = watching_gateway, f"watch-{uuid.uuid4().hex[:8]}"
    first, second, third = word(), word(), word()
    repo = write_repo(tmp_path / "repo", {"app.py": function("app", first)})
    await indexed(client, repo, project)
    row = await watch_state(client, project, "watching")
    assert row["watch"]["repo_path"] == str(repo)

    (repo / "created.py").write_text(function("created", second))
    assert await eventually(lambda: paths_with(client, project, second)) == {"created.py"}

    (repo / "app.py").write_text(function("app", third))
    assert await eventually(lambda: paths_with(client, project, third)) == {"app.py"}
    assert await paths_with(client, project, first) == set()  # the old version left with the save

    (repo / "created.py").rename(repo / "renamed.py")
    assert await eventually(lambda: _only(paths_with(client, project, second), {"renamed.py"}))

    (repo / "renamed.py").unlink()
    assert await eventually(lambda: _only(paths_with(client, project, second), set()))
    jobs = (await client.call_tool("list_indexing_jobs", {"project_id": project})).data["jobs"]
    assert {job["trigger"] for job in jobs} == {"tool", "watch"}


async def _only(found, expected: set[str]) -> bool:
    return await found == expected
