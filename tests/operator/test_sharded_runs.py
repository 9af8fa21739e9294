"""Issue 10 on the emulator tier: a run of parallelism N is one Indexed Job whose N pods (run by the test
kubelet as local `codebase-indexer` processes with JOB_COMPLETION_INDEX set) each index their share;
the run's status adds the shards up, names a shard that failed for good, and cancel stops them all."""
from __future__ import annotations

import asyncpg
import pytest

from codebase_indexer.identifiers import database_name
from codebase_indexer.postgres import database_url
from tests.support.k8s import eventually
from tests.support.resources import JOBS, PROJECTS, RUNS, condition, has_condition, project_manifest, run_manifest

from .test_operator_scenarios import NS, REPO_FILES, drop_databases, get, jobs_of, repo, until_condition  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


async def sharded_project(cluster, name, project_id, path, parallelism, **spec):
    await cluster.client.create(PROJECTS, NS, project_manifest(
        name, project_id, path=path, indexing={"parallelism": parallelism}, **spec))
    return await until_condition(cluster, PROJECTS, name, "Ready", "True", timeout=30)


async def indexed_paths(admin_url, project_id):
    conn = await asyncpg.connect(database_url(admin_url, database_name(project_id, NS)))
    try:
        return sorted(r["path"] for r in await conn.fetch("SELECT path FROM files"))
    finally:
        await conn.close()


async def test_a_sharded_run_survives_a_shard_crash_and_an_operator_restart_with_one_job(
        k8s_cluster, codebase_operator, test_kubelet, postgres_url, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await sharded_project(k8s_cluster, "wide", unique_project_id, repo, parallelism=2)
    test_kubelet.hold("sweep")
    test_kubelet.crash("sweep", 1)  # shard 1's first pod dies as in an OOM kill; only it is retried
    await k8s_cluster.client.create(RUNS, NS, run_manifest("sweep", "wide"))
    await until_condition(k8s_cluster, RUNS, "sweep", "Succeeded", "Unknown", "Pending")
    [job] = await jobs_of(k8s_cluster, "sweep")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["backoffLimitPerIndex"] >= 1 and spec["maxFailedIndexes"] == 0

    await codebase_operator.astop()  # the operator is away while the shards run
    test_kubelet.release("sweep")
    await eventually(lambda: _job_complete(k8s_cluster, "sweep"), timeout=90, message="the Job to complete")
    await codebase_operator.astart()

    run = await until_condition(k8s_cluster, RUNS, "sweep", "Succeeded", "True", timeout=30)
    assert len(await jobs_of(k8s_cluster, "sweep")) == 1
    assert test_kubelet.started.count(job["metadata"]["name"]) == 3  # two shards, one of them twice
    progress = run["status"]["progress"]
    assert progress["shardSummary"] == "2/2 shards" and progress["filesDone"] == len(REPO_FILES)
    assert [(s["index"], s["state"]) for s in progress["shards"]] == [(0, "Succeeded"), (1, "Succeeded")]
    assert sum(s["filesDone"] for s in progress["shards"]) == len(REPO_FILES)
    assert run["status"]["summary"]["filesIndexed"] == len(REPO_FILES)
    assert await indexed_paths(postgres_url, unique_project_id) == sorted(REPO_FILES)


async def test_a_shard_failing_for_good_fails_the_run_naming_it(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await sharded_project(k8s_cluster, "brittle", unique_project_id, repo, parallelism=1,
                          indexerTemplate={"backoffLimit": 1})
    test_kubelet.crash("doomed", 1, times=5)
    await k8s_cluster.client.create(RUNS, NS, run_manifest("doomed", "brittle", parallelism=2))
    run = await until_condition(k8s_cluster, RUNS, "doomed", "Succeeded", "False", timeout=90)
    failed = condition(run, "Succeeded")
    assert failed["reason"] == "Failed" and "shard 1 of 2" in failed["message"], failed
    [job] = await jobs_of(k8s_cluster, "doomed")
    assert job["spec"]["completions"] == 2  # the run's override of the project's 1
    await eventually(lambda: test_kubelet.live.get(job["metadata"]["name"]) == 0, timeout=30,
                     message="every shard's pod to stop")


async def test_cancel_stops_every_shard(k8s_cluster, codebase_operator, test_kubelet, unique_project_id,
                                        drop_databases, repo):
    drop_databases.append(unique_project_id)
    await sharded_project(k8s_cluster, "halt", unique_project_id, repo, parallelism=2)
    await k8s_cluster.client.create(RUNS, NS, run_manifest("stopped", "halt"))
    await until_condition(k8s_cluster, RUNS, "stopped", "Succeeded", "Unknown")
    [job] = await eventually(lambda: jobs_of(k8s_cluster, "stopped"), timeout=30, message="the Job")
    job_name = job["metadata"]["name"]
    await eventually(lambda: test_kubelet.live.get(job_name) == 2, timeout=30, message="both shards running")

    await k8s_cluster.client.patch(RUNS, NS, "stopped", {"spec": {"cancel": True}})
    run = await until_condition(k8s_cluster, RUNS, "stopped", "Succeeded", "False", "Cancelled")
    assert job_name in condition(run, "Succeeded")["message"]
    assert await get(k8s_cluster, JOBS, job_name) is None
    await eventually(lambda: test_kubelet.live.get(job_name) == 0, timeout=30, message="every shard's pod to stop")


async def _job_complete(cluster, run_name):
    jobs = await jobs_of(cluster, run_name)
    return bool(jobs) and has_condition(jobs[0], "Complete", "True")
