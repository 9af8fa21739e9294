"""Runs the operator starts by itself: the manual trigger (`kubectl annotate cbp NAME codebase.mcp.dev/refresh=now`)."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from codebase_indexer import contract
from codebase_operator import refresh
from codebase_operator.specs import InvalidSpec
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


@pytest.fixture
def operator_config(operator_config):
    """The operator of these tests checks for due refreshes often and honours intervals of a second."""
    return dataclasses.replace(operator_config, refresh_check_interval=0.3, min_refresh_interval=1.0)


def test_refresh_intervals_parse_and_bad_ones_are_refused():
    assert refresh.parse_interval("15m") == 900 and refresh.parse_interval("1h30m") == 5400
    assert refresh.refresh_interval({"refresh": {"interval": "5s"}}, minimum=60) == 60
    assert refresh.refresh_interval({}, minimum=60) is None
    for bad in ("", "15", "m", "0s", "1d", "-5m", 15, None, "9999h"):
        with pytest.raises(InvalidSpec, match="spec.refresh.interval"):
            refresh.parse_interval(bad)


async def interval_runs(cluster, project):
    return sorted((run for run in await cluster.client.list(RUNS, NS)
                   if run["spec"]["projectRef"]["name"] == project),
                  key=lambda run: run["metadata"]["creationTimestamp"] + run["metadata"]["name"])


@pytest.mark.slow
async def test_refresh_interval_starts_runs_after_the_last_one_and_never_beside_an_unfinished_one(
        k8s_cluster, codebase_operator, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "tick", unique_project_id, repo, refresh={"interval": "2s"})
    # Never indexed: the first run starts at once. No kubelet here, so its Job never runs: while the
    # run is unfinished, no other one starts.
    first = (await eventually(lambda: interval_runs(k8s_cluster, "tick"), timeout=10, interval=0.2,
                              message="the first scheduled run"))[0]
    name = first["metadata"]["name"]
    assert first["metadata"]["labels"][contract.TRIGGER_LABEL] == "interval"
    await until_condition(k8s_cluster, RUNS, name, "Succeeded", "Unknown", "Pending")
    await asyncio.sleep(2.5)
    assert len(await interval_runs(k8s_cluster, "tick")) == 1
    assert (await get(k8s_cluster, PROJECTS, "tick"))["status"].get("nextRefreshTime")

    await k8s_cluster.client.patch(RUNS, NS, name, {"spec": {"cancel": True}})
    await until_condition(k8s_cluster, RUNS, name, "Succeeded", "False", "Cancelled")
    ended = (await get(k8s_cluster, PROJECTS, "tick"))["status"]["lastRun"]["completionTime"]
    # An interval after the last run ended (failed runs too: a failing project is not retried in a loop).
    runs = await eventually(lambda: _two_or_more(k8s_cluster, "tick"), timeout=15, interval=0.2,
                            message="a second scheduled run")
    assert runs[1]["metadata"]["creationTimestamp"] >= ended
    assert (await get(k8s_cluster, PROJECTS, "tick"))["status"]["nextRefreshTime"] > ended


def test_next_refresh_counts_from_the_later_of_the_last_success_and_the_last_run():
    status = {"lastIndexedTime": "2026-12-01T10:00:00Z", "lastRun": {"completionTime": "2026-12-01T10:05:00Z"}}
    assert refresh.next_refresh(status, 900).isoformat() == "2026-12-01T10:20:00+00:00"
    assert refresh.next_refresh({"lastIndexedTime": "2026-12-01T10:00:00Z"}, 60).isoformat() == \
        "2026-12-01T10:01:00+00:00"
    assert refresh.next_refresh({}, 60) is None


async def _two_or_more(cluster, project):
    runs = await interval_runs(cluster, project)
    return runs if len(runs) >= 2 else None
