"""Item 8 (operator): credentials never reach a status, a condition or an Event.

Before: a git URL with credentials in it (https://user:password@host/..., https://<token>@host/...)
came back verbatim from the indexer's termination message into `IndexingRun.status.message`, the
`Succeeded` condition and the run's Warning Event, readable by anyone who may read IndexingRuns.
"""
from __future__ import annotations

import json
import sys

import pytest

from codebase_operator import transitions
from tests.security.operator_support import *  # noqa: F401,F403
from tests.security.operator_support import PROJECTS, RUNS, event_messages, ready_project, until_condition
from tests.support.resources import condition, run_manifest

PASSWORD = "s3cr3t-pass-4242"
TOKEN = "ghp_" + "Q7x" * 12  # the shape of a GitHub personal access token
SECRET_URLS = {
    "password": f"https://alice:{PASSWORD}@git.invalid/team/repo.git",
    "token": f"https://{TOKEN}@git.invalid/team/repo.git",
}

# An indexer image that predates its own redaction: it reports the failure with the URL verbatim.
LEAKY_INDEXER = (sys.executable, "-c", (
    "import json, os\n"
    f"message = 'git clone of https://bob:{PASSWORD}@git.example.com/r.git failed (token {TOKEN})'\n"
    "open(os.environ['CODEBASE_MCP_TERMINATION_MESSAGE_PATH'], 'w').write(\n"
    "    json.dumps({'ok': False, 'reason': 'GitCloneError', 'message': message}))\n"
    "raise SystemExit(1)\n"))


async def _assert_nothing_leaks(cluster, run_name, project_name, secrets):
    run = await cluster.client.get(RUNS, "default", run_name)
    project = await cluster.client.get(PROJECTS, "default", project_name)
    published = [json.dumps(run["status"]), json.dumps(project["status"]), *await event_messages(cluster)]
    for text in published:
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into {text!r}"
    return condition(run, "Succeeded")["message"]


@pytest.mark.parametrize("kind", sorted(SECRET_URLS))
@pytest.mark.slow
async def test_a_failed_clone_reports_the_url_without_its_credentials(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, kind):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "cloned", unique_project_id, source={"git": {"url": SECRET_URLS[kind]}})
    await k8s_cluster.client.create(RUNS, "default", run_manifest("clone", "cloned"))
    run = await until_condition(k8s_cluster, RUNS, "clone", "Succeeded", "False", "Failed", timeout=90)
    assert "git.invalid" in run["status"]["message"], run["status"]["message"]  # still says what failed
    message = await _assert_nothing_leaks(k8s_cluster, "clone", "cloned", [PASSWORD, TOKEN])
    assert "***" in message


@pytest.mark.slow
async def test_a_termination_message_with_credentials_is_redacted_when_read_back(
        k8s_cluster, configured_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await configured_operator(indexer_command=LEAKY_INDEXER)
    await ready_project(k8s_cluster, "leaky", unique_project_id, path=repo)
    await k8s_cluster.client.create(RUNS, "default", run_manifest("leak", "leaky"))
    await until_condition(k8s_cluster, RUNS, "leak", "Succeeded", "False", "Failed", timeout=60)
    message = await _assert_nothing_leaks(k8s_cluster, "leak", "leaky", [PASSWORD, TOKEN])
    assert message.startswith("GitCloneError: git clone of https://bob:***@git.example.com/r.git failed")
    assert any("run leak: GitCloneError" in event for event in await event_messages(k8s_cluster))


def test_every_state_is_redacted_whatever_made_it():
    state = transitions.State("False", "Failed", f"clone https://x:{PASSWORD}@h/r.git with {TOKEN}")
    assert PASSWORD not in state.message and TOKEN not in state.message
    assert state.message == "clone https://x:***@h/r.git with ***"
