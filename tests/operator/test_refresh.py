"""Runs the operator starts by itself: the manual trigger (`kubectl annotate cbp NAME codebase.mcp.dev/refresh=now`)."""
from __future__ import annotations

from codebase_indexer import contract
from codebase_operator import refresh
from tests.operator import test_operator_scenarios as scenarios
from tests.operator.test_operator_scenarios import NS, events_of, get, ready_project, until_condition
from tests.support.k8s import eventually
from tests.support.resources import PROJECTS, RUNS, run_manifest

repo, drop_databases = scenarios.repo, scenarios.drop_databases


async def runs_of(cluster, project):
    return sorted(run["metadata"]["name"] for run in await cluster.client.list(RUNS, NS)
                  if run["spec"]["projectRef"]["name"] == project)


async def annotate(cluster, project, value="now"):
    await cluster.client.patch(PROJECTS, NS, project, {"metadata": {"annotations": {
        contract.REFRESH_ANNOTATION: value}}})


async def annotation_removed(cluster, project):
    annotations = ((await get(cluster, PROJECTS, project))["metadata"].get("annotations") or {})
    return contract.REFRESH_ANNOTATION not in annotations


def test_refresh_run_names_are_valid_and_stable_per_request():
    long_name = "a" * 50 + "-" + "b" * 12
    name = refresh.run_name(long_name, "uid-1", "manual\0" + "7")
    assert len(name) <= 63 and name == refresh.run_name(long_name, "uid-1", "manual\0" + "7")
    assert "--" not in name.replace("-refresh-", "") and name[0].isalnum() and name[-1].isalnum()
    assert name != refresh.run_name(long_name, "uid-1", "manual\0" + "8")
    assert name != refresh.run_name(long_name, "uid-2", "manual\0" + "7")


async def test_refresh_annotation_starts_one_run_and_an_unfinished_run_absorbs_the_next(
        k8s_cluster, codebase_operator, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "fresh", unique_project_id, repo)
    assert await runs_of(k8s_cluster, "fresh") == []

    await annotate(k8s_cluster, "fresh")
    created = await eventually(lambda: runs_of(k8s_cluster, "fresh"), timeout=15, interval=0.2,
                               message="a run created by the refresh annotation")
    assert len(created) == 1
    await eventually(lambda: annotation_removed(k8s_cluster, "fresh"), timeout=10, interval=0.2,
                     message="the refresh annotation removed (acknowledged)")
    run = await get(k8s_cluster, RUNS, created[0])
    assert run["metadata"]["labels"][contract.PROJECT_LABEL] == "fresh"
    assert run["metadata"]["labels"][contract.TRIGGER_LABEL] == "manual"
    project_uid = (await get(k8s_cluster, PROJECTS, "fresh"))["metadata"]["uid"]
    assert run["metadata"]["ownerReferences"][0]["uid"] == project_uid
    # No kubelet here: its Job never runs, so the run stays unfinished (Pending) and absorbs the next request.
    await until_condition(k8s_cluster, RUNS, created[0], "Succeeded", "Unknown", "Pending")

    await annotate(k8s_cluster, "fresh", "again")
    await eventually(lambda: annotation_removed(k8s_cluster, "fresh"), timeout=10, interval=0.2,
                     message="the second refresh annotation removed")
    assert await runs_of(k8s_cluster, "fresh") == created
    assert ("RefreshRequested", "Normal") in await events_of(k8s_cluster, "fresh")


async def test_refresh_annotation_is_absorbed_by_a_run_the_gateway_created(
        k8s_cluster, codebase_operator, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "busy", unique_project_id, repo)
    await k8s_cluster.client.create(RUNS, NS, run_manifest("by-hand", "busy"))
    await until_condition(k8s_cluster, RUNS, "by-hand", "Succeeded", "Unknown", "Pending")

    await annotate(k8s_cluster, "busy")
    await eventually(lambda: annotation_removed(k8s_cluster, "busy"), timeout=10, interval=0.2,
                     message="the refresh annotation removed")
    assert await runs_of(k8s_cluster, "busy") == ["by-hand"]
