"""Item 8 (local part): a credential in a repository URL or path never comes back from the local
gateway: not in a tool's error, a job's status or error message, nor in the run's log file."""
from __future__ import annotations

import shutil

import pytest
from fastmcp.exceptions import ToolError

from tests.gateway.conftest import stdio_client, wait_for_job, write_repo

GITHUB_TOKEN = "ghp_" + "R3dact3dT0kenR3dact3dT0kenR3dact3d12"  # the shape, not a real token
GIT_URL = f"https://alice:{GITHUB_TOKEN}@github.com/acme/private.git"


@pytest.mark.slow
async def test_a_git_url_with_a_token_given_as_repo_path_is_refused_without_the_token(postgres_url):
    async with stdio_client() as gateway:
        messages = []
        for tool in ("index_repository", "start_indexing_background"):
            with pytest.raises(ToolError) as refused:
                await gateway.call_tool(tool, {"repo_path": GIT_URL, "project_id": "redaction"})
            messages.append(str(refused.value))
    for message in messages:
        assert GITHUB_TOKEN not in message
        assert "repo_path" in message and "github.com/acme/private.git" in message  # still says what was wrong


@pytest.mark.slow
async def test_a_failed_run_reports_its_path_error_without_the_token(postgres_url, session_home, tmp_path):
    # A folder named like a token, removed before the indexer reaches it: the run fails on the path.
    repo = write_repo(tmp_path / GITHUB_TOKEN, {"a.py": "def a():\n    return 1\n"})
    async with stdio_client() as gateway:
        job = (await gateway.call_tool("start_indexing_background",
                                       {"repo_path": str(repo), "project_id": "redaction-run"})).data
        shutil.rmtree(repo)
        status = await wait_for_job(gateway, job["job_id"])
        listed = (await gateway.call_tool("list_indexing_jobs", {"project_id": "redaction-run"})).data

    assert status["status"] == "failed" and "does not exist" in status["error_message"]
    shown = [status["error_message"], status["status_message"],
             *(j["error_message"] or "" for j in listed["jobs"])]
    assert not any(GITHUB_TOKEN in text for text in shown), shown
    log = (session_home / "logs" / f"{job['job_id']}.log").read_text()
    assert "does not exist" in log and GITHUB_TOKEN not in log


LOGGING_PROCESS = f"""
import logging, sys
from codebase_indexer.log_redaction import redact_logs
logging.basicConfig(stream=sys.stderr)
redact_logs()
library = logging.getLogger("fastmcp")  # like fastmcp: its own handler, no propagation to the root
library.propagate = False
library.addHandler(logging.StreamHandler(sys.stderr))
try:
    raise RuntimeError("git clone {GIT_URL} failed")
except RuntimeError:
    logging.getLogger("fastmcp.server.server").error("Error calling tool %r", "index_repository", exc_info=True)
logging.getLogger("codebase_gateway").warning("run failed: %s", "{GIT_URL}")
"""


def test_log_records_of_any_logger_are_redacted_tracebacks_included():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", LOGGING_PROCESS], capture_output=True, text=True, timeout=60)
    assert "Error calling tool 'index_repository'" in result.stderr and "RuntimeError: git clone" in result.stderr
    assert "run failed: https://alice:***@github.com" in result.stderr
    assert GITHUB_TOKEN not in result.stderr
