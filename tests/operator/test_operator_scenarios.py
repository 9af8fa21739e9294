"""The emulator tier: the real operator, in-process, against an emulated API server and real PostgreSQL.

The test kubelet (tests/support/kubelet.py) runs each Job's command — the real
`codebase-indexer` — as a local process. Every test asserts final state.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import importlib.util
from pathlib import Path

import asyncpg
import pytest

from codebase_indexer import index_runs as runs_table
from codebase_indexer.identifiers import database_name, owner_role_name
from codebase_indexer.models import Progress
from codebase_indexer.postgres import database_url
from codebase_indexer.provisioning import drop_project_database, project_database_exists
from tests.support.k8s import ApiError, eventually
from tests.support.resources import (
    EVENTS,
    JOBS,
    PROJECTS,
    RUNS,
    SECRETS,
    condition,
    has_condition,
    project_manifest,
    run_manifest,
)

NS = "default"
CEL_AVAILABLE = importlib.util.find_spec("celpy") is not None  # the emulator then evaluates CEL rules too
REPO_FILES = {
    "billing/invoice.py": (
        "def compute_invoice_total(lines, tax_rate):\n"
        "    \"\"\"Sum the invoice lines and add the tax.\"\"\"\n"
        "    subtotal = sum(line.price * line.quantity for line in lines)\n"
        "    return subtotal * (1 + tax_rate)\n"
    ),
    "web/cart.js": (
        "export function addToCart(cart, item) {\n"
        "  return { ...cart, items: [...cart.items, item] };\n"
        "}\n"
    ),
    "native/checksum.go": (
        "package native\n\n"
        "func Checksum(data []byte) uint32 {\n"
        "\tvar sum uint32\n\tfor _, b := range data {\n\t\tsum = sum*31 + uint32(b)\n\t}\n\treturn sum\n}\n"
    ),
}


def write_repo(root: Path) -> Path:
    for relative, text in REPO_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def repo(workspace_dir: Path) -> str:
    """A tiny repository in the workspace; its path relative to the workspace root."""
    write_repo(workspace_dir / "tiny")
    return "tiny"


@pytest.fixture
async def drop_databases(postgres_url):
    project_ids: list[str] = []
    yield project_ids
    for project_id in project_ids:
        await drop_project_database(postgres_url, project_id, namespace=NS)


async def get(cluster, resource, name):
    return await cluster.client.get(resource, NS, name)


async def until_condition(cluster, resource, name, type_, status, reason=None, timeout=60.0):
    async def probe():
        obj = await get(cluster, resource, name)
        return obj if has_condition(obj, type_, status, reason) else None
    try:
        return await eventually(probe, timeout=timeout, interval=0.2, message=f"{name} {type_}={status} {reason or ''}")
    except AssertionError as exc:
        obj = await get(cluster, resource, name)
        jobs = [(job["metadata"]["name"], job.get("status")) for job in await cluster.client.list(JOBS, NS)]
        pods = [(pod["metadata"]["name"], pod.get("status")) for pod in await cluster.client.list("v1/pods", NS)]
        raise AssertionError(f"{exc}\nlast status: {(obj or {}).get('status')}\njobs: {jobs}\npods: {pods}") from None


async def jobs_of(cluster, run_name):
    return [job for job in await cluster.client.list(JOBS, NS)
            if job["metadata"].get("labels", {}).get("codebase.mcp.dev/run") == run_name]


async def events_of(cluster, name):
    return {(e.get("reason"), e.get("type")) for e in await cluster.client.list(EVENTS, NS)
            if e.get("involvedObject", {}).get("name") == name}


async def ready_project(cluster, name, project_id, path, **spec):
    await cluster.client.create(PROJECTS, NS, project_manifest(name, project_id, path=path, **spec))
    return await until_condition(cluster, PROJECTS, name, "Ready", "True", timeout=30)


async def held_run(cluster, kubelet, name, project):
    """Create a run whose Pod the kubelet holds; return it once its Job exists (Succeeded=Unknown, Pending)."""
    kubelet.hold(name)
    await cluster.client.create(RUNS, NS, run_manifest(name, project))
    return await until_condition(cluster, RUNS, name, "Succeeded", "Unknown", "Pending")


# 1. A new project becomes Ready, with its database, vector extension, owner role and Secret.
async def test_new_project_becomes_ready_with_database_role_and_secret(
        k8s_cluster, codebase_operator, postgres_url, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    project = await ready_project(k8s_cluster, "alpha", unique_project_id, repo)

    dbname = database_name(unique_project_id, NS)
    assert has_condition(project, "DatabaseReady", "True", "DatabaseReady")
    assert project["status"]["database"] == {"name": dbname, "secretName": "alpha-db"}
    assert project["status"]["observedGeneration"] == project["metadata"]["generation"]
    assert await project_database_exists(postgres_url, unique_project_id, namespace=NS)

    secret = await get(k8s_cluster, SECRETS, "alpha-db")
    values = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert values["username"] == owner_role_name(unique_project_id, NS) and values["database"] == dbname
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("CodebaseProject", project["metadata"]["uid"], True)
    # The Secret's URL logs in as the owner role, into the project database, which has pgvector.
    conn = await asyncpg.connect(values["url"])
    try:
        assert await conn.fetchval("SELECT current_user") == owner_role_name(unique_project_id, NS)
        assert await conn.fetchval("SELECT current_database()") == dbname
        assert await conn.fetchval("SELECT extname FROM pg_extension WHERE extname = 'vector'") == "vector"
        assert await conn.fetchval("SELECT count(*) FROM index_runs") == 0
    finally:
        await conn.close()
    assert not project["metadata"].get("finalizers"), "Retain projects carry no finalizer"
    await eventually(lambda: _has_event(k8s_cluster, "alpha", "DatabaseReady"), message="a DatabaseReady event")


async def _has_event(cluster, name, reason):
    return any(r == reason for r, _ in await events_of(cluster, name))


# 2. The original bug, made impossible: a run created before its project waits; no Job until the database is ready.
@pytest.mark.slow
async def test_run_before_project_waits_for_database_then_indexes_searchable_chunks(
        k8s_cluster, codebase_operator, test_kubelet, postgres_url, embedder, unique_project_id,
        drop_databases, repo):
    drop_databases.append(unique_project_id)
    await k8s_cluster.client.create(RUNS, NS, run_manifest("first", "beta", mode="Full"))
    await until_condition(k8s_cluster, RUNS, "first", "Succeeded", "Unknown", "WaitingForDatabase")
    for _ in range(5):  # it keeps waiting, and never creates a Job
        await asyncio.sleep(0.3)
        assert not await jobs_of(k8s_cluster, "first")
        assert has_condition(await get(k8s_cluster, RUNS, "first"), "Succeeded", "Unknown", "WaitingForDatabase")
    assert not await project_database_exists(postgres_url, unique_project_id, namespace=NS)

    await k8s_cluster.client.create(PROJECTS, NS, project_manifest("beta", unique_project_id, path=repo))
    run = await until_condition(k8s_cluster, RUNS, "first", "Succeeded", "True", "Succeeded", timeout=90)

    summary, progress = run["status"]["summary"], run["status"]["progress"]
    assert summary["filesIndexed"] == len(REPO_FILES) and summary["chunksCreated"] >= len(REPO_FILES)
    assert progress == {"filesTotal": summary["filesTotal"], "filesDone": summary["filesTotal"],
                        "chunksDone": summary["chunksCreated"]}
    assert run["status"]["jobName"] == (await jobs_of(k8s_cluster, "first"))[0]["metadata"]["name"]
    assert run["status"]["startTime"] <= run["status"]["completionTime"]
    project = await get(k8s_cluster, PROJECTS, "beta")
    assert "activeRun" not in project["status"]
    assert project["status"]["lastRun"]["name"] == "first" and project["status"]["lastRun"]["succeeded"] is True
    assert project["status"]["lastRun"]["chunks"] == summary["chunksCreated"]
    assert project["status"]["lastIndexedTime"] == project["status"]["lastRun"]["completionTime"]

    from codebase_indexer.search import search_code
    url = database_url(postgres_url, database_name(unique_project_id, NS))
    found = await search_code(url, embedder, "compute the invoice total with tax", project_id=unique_project_id,
                              database_name=database_name(unique_project_id, NS), limit=3)
    assert found["results"][0]["file_path"].endswith("billing/invoice.py")
    reasons = {reason for reason, _ in await events_of(k8s_cluster, "first")}
    assert {"WaitingForDatabase", "Pending", "Running", "Succeeded"} <= reasons


# 3. The indexer fails (bad source): Succeeded=False says why; a retry succeeds once the cause is fixed.
@pytest.mark.slow
async def test_failed_indexing_reports_the_reason_and_a_retry_succeeds(
        k8s_cluster, codebase_operator, test_kubelet, workspace_dir, unique_project_id, drop_databases):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "gamma", unique_project_id, "not-there-yet")
    await k8s_cluster.client.create(RUNS, NS, run_manifest("broken", "gamma"))
    run = await until_condition(k8s_cluster, RUNS, "broken", "Succeeded", "False", timeout=60)
    failed = condition(run, "Succeeded")
    assert failed["reason"] == "Failed" and "SourceNotFound" in failed["message"], failed
    assert run["status"]["message"] == failed["message"]
    project = await get(k8s_cluster, PROJECTS, "gamma")
    assert project["status"]["lastRun"]["succeeded"] is False and "activeRun" not in project["status"]
    assert ("Failed", "Warning") in await events_of(k8s_cluster, "broken")

    write_repo(workspace_dir / "not-there-yet")
    await k8s_cluster.client.create(RUNS, NS, run_manifest("retry", "gamma"))
    run = await until_condition(k8s_cluster, RUNS, "retry", "Succeeded", "True", timeout=90)
    assert run["status"]["summary"]["filesIndexed"] == len(REPO_FILES)
    assert (await get(k8s_cluster, PROJECTS, "gamma"))["status"]["lastRun"]["name"] == "retry"


# 4. The operator stops mid-run and starts again: exactly one Job, and the run completes.
@pytest.mark.slow
async def test_operator_restart_mid_run_keeps_exactly_one_job(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "delta", unique_project_id, repo)
    await held_run(k8s_cluster, test_kubelet, "restart", "delta")

    await codebase_operator.astop()
    test_kubelet.release("restart")
    await eventually(lambda: _job_finished(k8s_cluster, "restart"), timeout=60, message="the Job to finish")
    assert has_condition(await get(k8s_cluster, RUNS, "restart"), "Succeeded", "Unknown", "Pending")

    await codebase_operator.astart()
    await until_condition(k8s_cluster, RUNS, "restart", "Succeeded", "True", timeout=30)
    assert len(await jobs_of(k8s_cluster, "restart")) == 1
    assert test_kubelet.started.count((await jobs_of(k8s_cluster, "restart"))[0]["metadata"]["name"]) == 1


async def _job_finished(cluster, run_name):
    jobs = await jobs_of(cluster, run_name)
    return jobs and any(c["type"] == "Complete" for c in jobs[0].get("status", {}).get("conditions", []))


# 5. Two runs of one project: the second is Queued until the first ends.
@pytest.mark.slow
async def test_second_run_is_queued_until_the_first_ends(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "epsilon", unique_project_id, repo)
    await held_run(k8s_cluster, test_kubelet, "one", "epsilon")
    await k8s_cluster.client.create(RUNS, NS, run_manifest("two", "epsilon"))
    two = await until_condition(k8s_cluster, RUNS, "two", "Succeeded", "Unknown", "Queued")
    assert "one" in condition(two, "Succeeded")["message"]
    assert (await get(k8s_cluster, PROJECTS, "epsilon"))["status"]["activeRun"] == "one"
    await asyncio.sleep(1.0)
    assert not await jobs_of(k8s_cluster, "two")

    test_kubelet.release("one")
    await until_condition(k8s_cluster, RUNS, "one", "Succeeded", "True", timeout=60)
    await until_condition(k8s_cluster, RUNS, "two", "Succeeded", "True", timeout=60)
    one_job, two_job = (await jobs_of(k8s_cluster, "one"))[0], (await jobs_of(k8s_cluster, "two"))[0]
    assert test_kubelet.started == [one_job["metadata"]["name"], two_job["metadata"]["name"]]
    project = await get(k8s_cluster, PROJECTS, "epsilon")
    assert project["status"]["lastRun"]["name"] == "two" and "activeRun" not in project["status"]


# 6. Cancel: the Job is deleted and the reason is Cancelled (a running run and a queued one).
@pytest.mark.slow
async def test_cancel_deletes_the_job_and_reports_cancelled(
        k8s_cluster, codebase_operator, test_kubelet, postgres_url, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "zeta", unique_project_id, repo)
    long_run = await held_run(k8s_cluster, test_kubelet, "long", "zeta")
    # Progress flows from the project database into status.progress while the Job runs
    # (written here the way the indexer writes it: its `index_runs` row, keyed by the run's uid).
    await _write_progress(postgres_url, unique_project_id, long_run["metadata"]["uid"], Progress(40, 12, 57))
    await eventually(lambda: _progress_is(k8s_cluster, "long", {"filesTotal": 40, "filesDone": 12, "chunksDone": 57}),
                     message="status.progress")
    await k8s_cluster.client.create(RUNS, NS, run_manifest("waiting", "zeta"))
    await until_condition(k8s_cluster, RUNS, "waiting", "Succeeded", "Unknown", "Queued")

    await k8s_cluster.client.patch(RUNS, NS, "waiting", {"spec": {"cancel": True}})
    await until_condition(k8s_cluster, RUNS, "waiting", "Succeeded", "False", "Cancelled")
    assert not await jobs_of(k8s_cluster, "waiting")

    job_name = (await jobs_of(k8s_cluster, "long"))[0]["metadata"]["name"]
    await k8s_cluster.client.patch(RUNS, NS, "long", {"spec": {"cancel": True}})
    run = await until_condition(k8s_cluster, RUNS, "long", "Succeeded", "False", "Cancelled")
    assert job_name in condition(run, "Succeeded")["message"]
    assert await get(k8s_cluster, JOBS, job_name) is None
    project = await get(k8s_cluster, PROJECTS, "zeta")
    assert "activeRun" not in project["status"] and project["status"]["lastRun"]["name"] == "long"
    assert ("Cancelled", "Warning") in await events_of(k8s_cluster, "long")


async def _write_progress(admin_url, project_id, run_id, progress):
    conn = await asyncpg.connect(database_url(admin_url, database_name(project_id, NS)))
    try:
        await runs_table.start_run(conn, run_id, "incremental")
        await runs_table.record_progress(conn, run_id, progress)
    finally:
        await conn.close()


async def _progress_is(cluster, name, expected):
    return ((await get(cluster, RUNS, name)) or {}).get("status", {}).get("progress") == expected


# 7. Deleting projects: Retain keeps the database, Delete drops it; neither is stuck terminating.
@pytest.mark.slow
async def test_delete_with_retain_keeps_and_with_delete_drops_the_database(
        k8s_cluster, codebase_operator, postgres_url, unique_project_id, drop_databases, repo):
    kept_id, dropped_id = f"{unique_project_id}-keep", f"{unique_project_id}-drop"
    drop_databases.extend([kept_id, dropped_id])
    await ready_project(k8s_cluster, "kept", kept_id, repo)
    await ready_project(k8s_cluster, "dropped", dropped_id, repo, reclaim_policy="Delete")
    dropped = await eventually(lambda: _with_finalizer(k8s_cluster, "dropped"), message="the Delete finalizer")
    assert dropped["metadata"]["finalizers"] == ["codebase.mcp.dev/finalizer"]
    assert not (await get(k8s_cluster, PROJECTS, "kept"))["metadata"].get("finalizers")

    await k8s_cluster.client.delete(PROJECTS, NS, "kept")
    await k8s_cluster.client.delete(PROJECTS, NS, "dropped")
    for name in ("kept", "dropped"):
        await eventually(functools.partial(_gone, k8s_cluster, name), timeout=30, message=f"{name} to be deleted")
    assert await project_database_exists(postgres_url, kept_id, namespace=NS)
    assert not await project_database_exists(postgres_url, dropped_id, namespace=NS)
    roles = await _roles(postgres_url, [owner_role_name(kept_id, NS), owner_role_name(dropped_id, NS)])
    assert roles == {owner_role_name(kept_id, NS)}


async def _with_finalizer(cluster, name):
    obj = await get(cluster, PROJECTS, name)
    return obj if (obj or {}).get("metadata", {}).get("finalizers") else None


async def _gone(cluster, name):
    return await get(cluster, PROJECTS, name) is None


async def _roles(admin_url, names):
    conn = await asyncpg.connect(admin_url)
    try:
        return {row["rolname"] for row in await conn.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", names)}
    finally:
        await conn.close()


# 8. Invalid resources are rejected at admission (the emulator validates against the CRDs, as the API
#    server does); those that get past it anyway are refused by the operator with InvalidSpec, once,
#    and never retried.
@pytest.mark.parametrize("resource, manifest, rejected_by", [
    (RUNS, run_manifest("orphan", None), "schema"),
    (RUNS, run_manifest("escape", "valid-project", repoPath="../etc"), "cel"),
    (RUNS, run_manifest("bad-ref", "Not_A_Name"), "schema"),
    (PROJECTS, project_manifest("both-sources", "x", source={"path": "a", "git": {"url": "https://e.com/r.git"}}),
     "cel"),
    (PROJECTS, project_manifest("blank-id", "   ", path="a"), "schema"),
    # Valid for the schema, which cannot know the name derived from the projectId:
    (PROJECTS, project_manifest("wrong-db", "x", path="a", database={"name": "cb_proj_other_00000000"}), None),
    (PROJECTS, project_manifest("two-cadences", "x", path="a", refresh={"interval": "5m", "schedule": "0 * * * *"}),
     "cel"),
    (PROJECTS, project_manifest("bad-schedule", "x", path="a", refresh={"schedule": "61 * * * *"}), None),
], ids=["run-without-projectRef", "run-path-escapes-workspace", "run-bad-project-name",
        "project-two-sources", "project-blank-id", "project-foreign-database-name",
        "project-interval-and-schedule", "project-schedule-out-of-range"])
@pytest.mark.slow
async def test_invalid_resources_get_invalid_spec_and_are_not_retried(
        k8s_cluster, codebase_operator, resource, manifest, rejected_by):
    name = manifest["metadata"]["name"]
    if rejected_by == "schema" or (rejected_by == "cel" and CEL_AVAILABLE):
        with pytest.raises(ApiError) as rejected:
            await k8s_cluster.client.create(resource, NS, manifest)
        assert rejected.value.status == 422
        k8s_cluster.emulator.admission = False  # an API server that let it through (no CEL, an older CRD)
    await k8s_cluster.client.create(resource, NS, manifest)
    type_ = "Succeeded" if resource == RUNS else "Ready"
    obj = await until_condition(k8s_cluster, resource, name, type_, "False", "InvalidSpec", timeout=20)
    assert condition(obj, type_)["message"]
    await asyncio.sleep(1.5)  # several poll intervals and backoff delays: nothing more happens
    again = await get(k8s_cluster, resource, name)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert not await jobs_of(k8s_cluster, name)


@pytest.mark.slow
async def test_changing_the_project_id_of_a_ready_project_is_refused(
        k8s_cluster, codebase_operator, unique_project_id, drop_databases, repo, postgres_url):
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "eta", unique_project_id, repo)
    renamed = {"spec": {"projectId": unique_project_id + "-renamed"}}
    if CEL_AVAILABLE:
        with pytest.raises(ApiError, match="projectId is immutable"):
            await k8s_cluster.client.patch(PROJECTS, NS, "eta", renamed)
    k8s_cluster.emulator.admission = False
    await k8s_cluster.client.patch(PROJECTS, NS, "eta", renamed)
    project = await until_condition(k8s_cluster, PROJECTS, "eta", "Ready", "False", "InvalidSpec")
    assert "immutable" in condition(project, "Ready")["message"]
    assert not await project_database_exists(postgres_url, unique_project_id + "-renamed", namespace=NS)
