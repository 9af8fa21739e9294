"""Item 18b: every name a CodebaseProject may have can be referred to by an IndexingRun.

Before: a project named `team.alpha` was accepted and provisioned, but the run's
`projectRef.name` pattern (a DNS label) refused every run of it: the project could never be indexed.
"""
from __future__ import annotations

import pytest

from codebase_operator.specs import InvalidSpec, check_project_spec, check_run_spec
from tests.security.operator_support import *  # noqa: F401,F403
from tests.security.operator_support import PROJECTS, RUNS, jobs_of, ready_project, until_condition
from tests.support.crds import validate
from tests.support.k8s import ApiError
from tests.support.resources import project_manifest, run_manifest

NAMES = ["alpha", "team.alpha", "a.b.c", "x" * 63, "0lead", "Team", "team_alpha", "-team", "team.", "a..b",
         "x" * 64, "team/alpha"]


@pytest.mark.parametrize("name", NAMES)
def test_the_two_schemas_and_the_operator_agree_on_project_names(name):
    project = project_manifest(name, "some project", path="repo")
    run = run_manifest("run", name)
    project_ok = not validate(project) and _api_server_accepts_name(name)
    run_ok = not validate(run)
    assert project_ok == run_ok, (name, validate(project), validate(run))
    assert _operator_accepts(lambda: check_project_spec(name, project["spec"], "default")) == project_ok
    assert _operator_accepts(lambda: check_run_spec("run", run["spec"])) == run_ok


def _api_server_accepts_name(name):
    """What a real API server requires of a custom resource's name (a DNS subdomain), besides the CRD."""
    from tests.support.api_rules import name_errors
    return not name_errors("CodebaseProject", name)


def _operator_accepts(check):
    try:
        check()
        return True
    except InvalidSpec:
        return False


@pytest.mark.slow
async def test_a_project_with_a_dot_in_its_name_gets_its_runs(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "team.alpha", unique_project_id, path=repo)
    test_kubelet.hold("team-alpha-nightly")  # the Job is what matters here, not another indexing
    await k8s_cluster.client.create(RUNS, "default", run_manifest("team-alpha-nightly", "team.alpha", mode="Full"))
    run = await until_condition(k8s_cluster, RUNS, "team-alpha-nightly", "Succeeded", "Unknown", "Pending")
    (job,) = await jobs_of(k8s_cluster, "team-alpha-nightly")
    assert run["status"]["jobName"] == job["metadata"]["name"]
    assert job["metadata"]["labels"]["codebase.mcp.dev/project"] == "team.alpha"
    env = {var["name"]: var for var in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CODEBASE_MCP_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "team.alpha-db"
    await k8s_cluster.client.patch(RUNS, "default", "team-alpha-nightly", {"spec": {"cancel": True}})
    await until_condition(k8s_cluster, RUNS, "team-alpha-nightly", "Succeeded", "False", "Cancelled")


async def test_a_name_no_api_server_accepts_is_refused_at_admission(k8s_cluster):
    with pytest.raises(ApiError) as refused:
        await k8s_cluster.client.create(PROJECTS, "default", project_manifest("Team_Alpha", "x", path="repo"))
    assert refused.value.status == 422 and "RFC 1123" in str(refused.value)
