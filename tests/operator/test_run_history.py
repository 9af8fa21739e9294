"""spec.runHistory: a project keeps its newest finished runs (3 succeeded and 1 failed by default)."""
from __future__ import annotations

import pytest

from codebase_operator import run_history
from codebase_operator.specs import InvalidSpec
from tests.operator import test_operator_scenarios as scenarios
from tests.operator.test_operator_scenarios import NS, ready_project, until_condition
from tests.support.k8s import eventually
from tests.support.resources import RUNS, run_manifest

# The scenarios' fixtures: a tiny repository in the workspace, and its project database dropped afterwards.
repo, drop_databases = scenarios.repo, scenarios.drop_databases


def finished_run(name: str, project: str, succeeded: bool | None, completed: str | None) -> dict:
    """A run as the operator leaves it: Succeeded=True|False with its completionTime (None: still active)."""
    run = run_manifest(name, project)
    if succeeded is None:
        run["status"] = {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running",
                                         "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}
        return run
    run["status"] = {"conditions": [{"type": "Succeeded", "status": "True" if succeeded else "False",
                                     "reason": "Succeeded" if succeeded else "Failed", "message": "",
                                     "lastTransitionTime": completed}],
                     "completionTime": completed}
    return run


def test_expired_keeps_the_newest_of_each_outcome_and_never_an_active_run():
    runs = [finished_run(f"s{i}", "p", True, f"2026-12-01T00:0{i}:00Z") for i in range(5)]
    runs += [finished_run(f"f{i}", "p", False, f"2026-12-01T01:0{i}:00Z") for i in range(3)]
    runs += [finished_run("active", "p", None, None), finished_run("other", "q", True, "2026-11-01T00:00:00Z")]
    assert run_history.expired(runs, "p", 3, 1) == ["s0", "s1", "f0", "f1"]
    assert run_history.expired(runs, "p", 0, 0) == ["s0", "s1", "s2", "s3", "s4", "f0", "f1", "f2"]
    assert run_history.expired(runs, "q", 0, 0) == ["other"]


def test_the_run_that_just_finished_is_never_taken_for_an_older_one():
    """Runs refused within one second (InvalidSpec: no completionTime, one-second timestamps) tie on
    time; the one whose end is being written is still the newest, and the older one goes."""
    older, newest = (finished_run(name, "p", False, "2026-12-01T02:00:00Z") for name in ("owner-creds", "missing"))
    for run in (older, newest):
        del run["status"]["completionTime"]
    assert run_history.expired([older, newest], "p", 3, 1, newest="missing") == ["owner-creds"]


def test_limits_default_to_three_and_one_and_refuse_bad_values():
    assert run_history.limits({}) == (3, 1)
    assert run_history.limits({"runHistory": {"succeeded": 0, "failed": 5}}) == (0, 5)
    for bad in ({"succeeded": -1}, {"failed": 101}, {"succeeded": "3"}, {"failed": True}, []):
        with pytest.raises(InvalidSpec, match="runHistory"):
            run_history.limits({"runHistory": bad})


@pytest.mark.slow
async def test_finished_runs_beyond_the_history_limits_are_deleted_oldest_first(
        k8s_cluster, codebase_operator, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "hist", unique_project_id, repo)
    # An earlier history, written while the operator is stopped (the status as it would have left it).
    await codebase_operator.astop()
    history = [finished_run(f"ok-{i}", "hist", True, f"2026-12-01T00:0{i}:00Z") for i in range(4)]
    history += [finished_run("bad-0", "hist", False, "2026-12-01T00:05:00Z"),
                finished_run("ok-other", "someone-else", True, "2026-11-01T00:00:00Z")]
    for run in history:
        await k8s_cluster.client.create(RUNS, NS, {key: value for key, value in run.items() if key != "status"})
        await k8s_cluster.client.patch(RUNS, NS, run["metadata"]["name"], {"status": run["status"]},
                                       subresource="status")
    await codebase_operator.astart()

    # A run cancelled before it starts finishes (failed) at once: its end prunes the project's history.
    await k8s_cluster.client.create(RUNS, NS, run_manifest("stopped", "hist", cancel=True))
    await until_condition(k8s_cluster, RUNS, "stopped", "Succeeded", "False", "Cancelled")

    async def remaining():
        names = {run["metadata"]["name"] for run in await k8s_cluster.client.list(RUNS, NS)}
        return names if names == {"ok-1", "ok-2", "ok-3", "stopped", "ok-other"} else None
    await eventually(remaining, timeout=15, interval=0.2,
                     message="3 succeeded + 1 failed runs of the project kept, another project's untouched")
