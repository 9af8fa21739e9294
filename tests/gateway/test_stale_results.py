"""Issue 9: every search_code result says whether its file changed on disk after it was indexed."""
from __future__ import annotations

import os
import uuid

import pytest

from .conftest import wait_for_job, write_repo


async def results_by_path(client, project: str, token: str) -> dict[str, dict]:
    found = (await client.call_tool("search_code", {"query": token, "project_id": project,
                                                    "mode": "lexical", "limit": 10})).data
    return {r["file_path"]: r for r in found["results"]}


@pytest.mark.slow  # a gateway process and two index runs through the real model
async def test_results_say_stale_when_their_file_changed_after_indexing(stdio_gateway, tmp_path):
    client, project, token = stdio_gateway, f"stale-{uuid.uuid4().hex[:8]}", f"zq{uuid.uuid4().hex[:10]}"
    text = f"def {token}_a():\n    return 1\n"
    repo = write_repo(tmp_path / "repo", {"a.py": text, "b.py": f"def {token}_b():\n    return 2\n",
                                          "c.py": f"def {token}_c():\n    return 3\n"})

    async def index() -> None:
        job = (await client.call_tool("start_indexing_background",
                                      {"repo_path": str(repo), "project_id": project})).data
        assert (await wait_for_job(client, job["job_id"]))["status"] == "completed"

    await index()
    assert {path: r["stale"] for path, r in (await results_by_path(client, project, token)).items()} == \
        {"a.py": False, "b.py": False, "c.py": False}

    (repo / "b.py").write_text(f"def {token}_b():\n    return 22\n")  # edited, not re-indexed
    (repo / "c.py").unlink()  # gone
    stat = (repo / "a.py").stat()
    os.utime(repo / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched only
    assert {path: r["stale"] for path, r in (await results_by_path(client, project, token)).items()} == \
        {"a.py": True, "b.py": True, "c.py": True}

    await index()  # the touched file's content is unchanged: the run records its new time
    assert {path: r["stale"] for path, r in (await results_by_path(client, project, token)).items()} == \
        {"a.py": False, "b.py": False}

    edited = f"def {token}_a():\n    return 11\n"
    (repo / "a.py").write_text(edited)
    matches = (await client.call_tool("grep_code", {"pattern": f"{token}_", "project_id": project})).data["matches"]
    assert {m["file_path"]: m["stale"] for m in matches} == {"a.py": True, "b.py": False}
