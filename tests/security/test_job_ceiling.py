"""Item 9 (operator): a cluster-wide ceiling on active indexer Jobs (--max-active-jobs, default 8).

Before: every IndexingRun of a different project started its Job at once; each Job loads the model
and holds database connections, so a burst of runs could take the cluster's CPU, memory and the
database's connections. Now runs beyond the ceiling wait (Succeeded=Unknown, reason WaitingForSlot,
no Job) and start when a slot frees.
"""
from __future__ import annotations

import asyncio

import pytest

from codebase_operator import command
from tests.security.operator_support import *  # noqa: F401,F403
from tests.security.operator_support import JOBS, RUNS, jobs_of, ready_project, until_condition
from tests.support.k8s import eventually
from tests.support.resources import condition, has_condition, run_manifest

PLACES = [("default", "one"), ("default", "two"), ("team-b", "three")]  # two namespaces: the ceiling is cluster-wide

pytestmark = pytest.mark.usefixtures("operator_environment")


async def _active_jobs(cluster):
    return [job for job in await cluster.client.list(JOBS, None)
            if not any(c.get("type") in ("Complete", "Failed")
                       for c in (job.get("status") or {}).get("conditions") or ())]


@pytest.mark.slow
async def test_runs_beyond_the_ceiling_wait_for_a_slot_and_start_when_one_frees(
        k8s_cluster, configured_operator, test_kubelet, unique_project_id, drop_databases, repo):
    await configured_operator(max_active_jobs=2)
    for namespace, name in PLACES:
        drop_databases.append((f"{unique_project_id}-{name}", namespace))
        await ready_project(k8s_cluster, name, f"{unique_project_id}-{name}", namespace=namespace, path=repo)
        test_kubelet.hold(f"run-{name}")

    # Three runs at once (three projects, so the per-project queue does not order them).
    await asyncio.gather(*(k8s_cluster.client.create(RUNS, namespace, run_manifest(f"run-{name}", name,
                                                                                 namespace=namespace))
                           for namespace, name in PLACES))

    async def two_started_one_waiting():
        runs = {name: await k8s_cluster.client.get(RUNS, namespace, f"run-{name}") for namespace, name in PLACES}
        started = [name for name, run in runs.items() if has_condition(run, "Succeeded", "Unknown", "Pending")]
        waiting = [name for name, run in runs.items() if has_condition(run, "Succeeded", "Unknown", "WaitingForSlot")]
        return (started, waiting) if len(started) == 2 and len(waiting) == 1 else None
    started, (waiting,) = await eventually(two_started_one_waiting, timeout=60, message="two Jobs and one waiting run")
    assert len(await _active_jobs(k8s_cluster)) == 2
    namespace_of = dict((name, namespace) for namespace, name in PLACES)
    waiting_run = await k8s_cluster.client.get(RUNS, namespace_of[waiting], f"run-{waiting}")
    assert condition(waiting_run, "Succeeded")["message"].startswith(
        "waiting for a free indexer slot: 2 of 2 indexer Jobs are active")
    assert "jobName" not in waiting_run["status"]
    await asyncio.sleep(1.5)  # several poll intervals: still no third Job
    assert not await jobs_of(k8s_cluster, f"run-{waiting}", None)

    # One run ends (cancelled: its Job is deleted): the waiting run takes the slot.
    first = started[0]
    await k8s_cluster.client.patch(RUNS, namespace_of[first], f"run-{first}", {"spec": {"cancel": True}})
    await until_condition(k8s_cluster, RUNS, f"run-{first}", "Succeeded", "False", "Cancelled",
                          namespace=namespace_of[first])
    await until_condition(k8s_cluster, RUNS, f"run-{waiting}", "Succeeded", "Unknown", "Pending",
                          namespace=namespace_of[waiting], timeout=30)
    assert len(await _active_jobs(k8s_cluster)) == 2

    for name in [started[1], waiting]:
        await k8s_cluster.client.patch(RUNS, namespace_of[name], f"run-{name}", {"spec": {"cancel": True}})
        await until_condition(k8s_cluster, RUNS, f"run-{name}", "Succeeded", "False", "Cancelled",
                              namespace=namespace_of[name])


def test_the_ceiling_defaults_to_eight_and_is_a_flag(monkeypatch):
    def parse(*argv):
        parser = command.argparse.ArgumentParser()
        command.add_arguments(parser)
        return command.config_from_args(parser.parse_args(["--admin-database-url", "postgresql://a@h/p", *argv]))

    assert parse().max_active_jobs == 8
    assert parse("--max-active-jobs", "3").max_active_jobs == 3
    monkeypatch.setenv("CODEBASE_MCP_MAX_ACTIVE_JOBS", "5")
    assert parse().max_active_jobs == 5
    try:
        parse("--max-active-jobs", "0")
    except ValueError as exc:
        assert "--max-active-jobs must be at least 1" in str(exc)
    else:
        raise AssertionError("a ceiling of 0 would never start a run")



def test_the_chart_values_reach_the_operator_flags(monkeypatch):
    """operator.maxActiveJobs, .allowedEmbeddingUrls and .allowPlaintextGit become the operator's configuration."""
    from tests.chart.chart_support import Helm, fetch_tools_module, one

    helm = Helm(fetch_tools_module().ensure_tools()["helm"])
    operator = one(helm.render("--set", "operator.maxActiveJobs=3", "--set", "operator.allowPlaintextGit=true",
                               "--set", "operator.allowedEmbeddingUrls={https://llm.example/v1,ollama.example:11434}"),
                   "Deployment", "-operator")
    env = {var["name"]: var.get("value") for var in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CODEBASE_MCP_MAX_ACTIVE_JOBS"] == "3"
    assert env["CODEBASE_MCP_ALLOW_PLAINTEXT_GIT"] == "true"
    assert env["CODEBASE_MCP_ALLOWED_EMBEDDING_URLS"] == "https://llm.example/v1,ollama.example:11434"

    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("CODEBASE_MCP_ADMIN_DATABASE_URL", "postgresql://admin@db/postgres")
    parser = command.argparse.ArgumentParser()
    command.add_arguments(parser)  # the defaults come from the environment the chart sets
    config = command.config_from_args(parser.parse_args([]))
    assert config.max_active_jobs == 3 and config.allow_plaintext_git is True
    assert config.allowed_embedding_urls == ("https://llm.example/v1", "ollama.example:11434")

    defaults = one(helm.render(), "Deployment", "-operator")
    env = {var["name"]: var.get("value") for var in defaults["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CODEBASE_MCP_MAX_ACTIVE_JOBS"] == "8" and env["CODEBASE_MCP_ALLOW_PLAINTEXT_GIT"] == "false"
    assert "CODEBASE_MCP_ALLOWED_EMBEDDING_URLS" not in env
