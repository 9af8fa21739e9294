"""The indexer as the Job runs it: a process configured by environment, with a JSON result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import write_tree


def run_indexer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codebase_indexer", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


@pytest.mark.slow
async def test_indexer_process_indexes_and_writes_the_termination_message(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {"app.py": "def main():\n    print('hi')\n"})
    message = tmp_path / "termination-log"
    result = run_indexer({
        "CODEBASE_MCP_DATABASE_URL": project.database.url,
        "CODEBASE_MCP_PROJECT_ID": project.database.project_id,
        "CODEBASE_MCP_SOURCE_PATH": str(repo),
        "CODEBASE_MCP_RUN_ID": "job-run-1",
        "CODEBASE_MCP_TERMINATION_MESSAGE_PATH": str(message),
    })
    assert result.returncode == 0, result.stderr
    last_line = json.loads(result.stdout.strip().splitlines()[-1])
    assert last_line["ok"] is True and last_line["summary"]["files_indexed"] == 1
    assert json.loads(message.read_text()) == last_line
    found = await project.search("print greeting in main")
    assert found["results"][0]["file_path"] == "app.py"


async def test_missing_source_fails_with_reason(project, tmp_path):
    message = tmp_path / "termination-log"
    result = run_indexer({
        "CODEBASE_MCP_DATABASE_URL": project.database.url,
        "CODEBASE_MCP_PROJECT_ID": project.database.project_id,
        "CODEBASE_MCP_SOURCE_PATH": str(tmp_path / "missing"),
        "CODEBASE_MCP_TERMINATION_MESSAGE_PATH": str(message),
    })
    assert result.returncode == 1
    outcome = json.loads(message.read_text())
    assert outcome["ok"] is False and outcome["reason"] == "SourceNotFound"
    assert "does not exist" in outcome["message"]


@pytest.mark.parametrize("env, expected", [
    ({}, "no database"),
    ({"CODEBASE_MCP_DATABASE_URL": "postgresql://x@/y"}, "no project"),
    ({"CODEBASE_MCP_DATABASE_URL": "postgresql://x@/y", "CODEBASE_MCP_PROJECT_ID": "p"}, "exactly one source"),
])
@pytest.mark.slow
def test_missing_configuration_is_a_usage_error(env, expected):
    names = ("CODEBASE_MCP_DATABASE_URL", "CODEBASE_MCP_PROJECT_ID", "CODEBASE_MCP_SOURCE_PATH", "CODEBASE_MCP_GIT_URL")
    clean = dict.fromkeys(names, "")
    result = run_indexer({**clean, **env})
    assert result.returncode == 2
    assert expected in json.loads(result.stdout.strip().splitlines()[-1])["message"]


@pytest.mark.slow
async def test_unreachable_database_is_reported(tmp_path):
    result = run_indexer({
        "CODEBASE_MCP_DATABASE_URL": f"postgresql://nobody@/nodb?host={tmp_path}",
        "CODEBASE_MCP_PROJECT_ID": "p",
        "CODEBASE_MCP_SOURCE_PATH": str(tmp_path),
    })
    assert result.returncode == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["reason"] == "DatabaseError"


@pytest.mark.slow
def test_git_source_is_cloned_without_a_shell(project, tmp_path):
    origin = write_tree(tmp_path / "origin", {"lib.py": "def clone_me():\n    return 42\n"})
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin)], check=True)
    subprocess.run(["git", "-C", str(origin), "add", "."], check=True)
    subprocess.run(["git", "-C", str(origin), "-c", "user.email=t@t", "-c", "user.name=t",
                    "commit", "-qm", "init"], check=True)
    result = run_indexer({
        "CODEBASE_MCP_DATABASE_URL": project.database.url,
        "CODEBASE_MCP_PROJECT_ID": project.database.project_id,
        "CODEBASE_MCP_SOURCE_PATH": "",
        "CODEBASE_MCP_GIT_URL": f"file://{origin}",
        "CODEBASE_MCP_GIT_REF": "main",
        "CODEBASE_MCP_WORK_DIR": str(tmp_path),
    })
    assert result.returncode == 0, result.stdout + result.stderr
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    assert reported["summary"]["files_indexed"] == 1
    # The commit it indexed, for the operator's status.lastIndexedCommit.
    assert reported["commit"] == subprocess.run(["git", "-C", str(origin), "rev-parse", "HEAD"], check=True,
                                                capture_output=True, text=True).stdout.strip()


def _git(origin: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(origin), "-c", "user.email=t@t", "-c", "user.name=t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_a_pinned_commit_is_checked_out_although_the_ref_moved_on(tmp_path):
    """The shards of one run clone the ref each; the operator pins the commit so that a branch moving
    while the pods start cannot give shards different trees."""
    from codebase_indexer.indexer_main import GitCloneError, _cloned, _head_commit
    from codebase_indexer.settings import IndexerSettings

    origin = write_tree(tmp_path / "origin", {"lib.py": "VERSION = 'pinned'\n"})
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin)], check=True)
    _git(origin, "add", ".")
    _git(origin, "commit", "-qm", "pinned")
    pinned = _git(origin, "rev-parse", "HEAD")
    (origin / "lib.py").write_text("VERSION = 'moved'\n")
    _git(origin, "commit", "-qam", "moved")

    settings = IndexerSettings(git_url=f"file://{origin}", git_ref="main", git_commit=pinned, work_dir=str(tmp_path))
    checkout, reported = _cloned(settings)
    assert (checkout / "lib.py").read_text() == "VERSION = 'pinned'\n"
    assert _head_commit(checkout) == pinned == reported
    unpinned, moved = _cloned(IndexerSettings(git_url=f"file://{origin}", git_ref="main", work_dir=str(tmp_path)))
    assert (unpinned / "lib.py").read_text() == "VERSION = 'moved'\n"
    assert moved == _git(origin, "rev-parse", "HEAD") != pinned

    missing = "0" * 40
    with pytest.raises(GitCloneError, match=f"(?s)moved past commit {missing}.*not our ref.*start the run again"):
        _cloned(IndexerSettings(git_url=f"file://{origin}", git_ref="main", git_commit=missing,
                                work_dir=str(tmp_path)))


@pytest.mark.parametrize("commit, url", [("main", "file:///r"), ("A" * 40, "file:///r"), ("a" * 39, "file:///r"),
                                         ("--upload-pack=x", "file:///r"), ("a" * 40, None)])
def test_a_pinned_commit_must_be_a_full_id_with_a_git_source(commit, url):
    from codebase_indexer.indexer_main import _usage_problem
    from codebase_indexer.settings import IndexerSettings

    settings = IndexerSettings(database_url="postgresql://x@/y", project_id="p", git_url=url,
                               source_path=None if url else "/src", git_commit=commit)
    assert "--git-commit (CODEBASE_MCP_GIT_COMMIT) must be a full commit id" in (_usage_problem(settings) or "")


def test_git_credentials_reach_git_through_askpass_not_argv(tmp_path, monkeypatch):
    """git asks GIT_ASKPASS for "Username for ..." and "Password for ..."; the secret stays in the environment,
    and the indexer's own secrets (database URL, embedding key) never reach git at all."""
    from codebase_indexer.configuration import load
    from codebase_indexer.indexer_main import _git_environment
    from codebase_indexer.settings import IndexerSettings

    monkeypatch.setenv("CODEBASE_MCP_GIT_USERNAME", "robot")
    monkeypatch.setenv("CODEBASE_MCP_GIT_PASSWORD", "s3cret-token")
    monkeypatch.setenv("CODEBASE_MCP_DATABASE_URL", "postgresql://indexer:db-pass-123@db/p")
    monkeypatch.setenv("CODEBASE_MCP_EMBEDDING_API_KEY", "sk-embedding-key")
    env = _git_environment(tmp_path, load(IndexerSettings))
    askpass = env["GIT_ASKPASS"]
    assert "s3cret-token" not in Path(askpass).read_text()
    assert not [value for value in env.values() if "db-pass-123" in value or "sk-embedding-key" in value]

    def ask(prompt: str) -> str:
        return subprocess.run([askpass, prompt], capture_output=True, text=True, env=env, check=True).stdout

    assert ask("Username for 'https://git.example.com': ") == "robot\n"
    assert ask("Password for 'https://robot@git.example.com': ") == "s3cret-token\n"
