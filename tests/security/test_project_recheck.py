"""Issue 14, item 18a: a deleted per-project Secret comes back, and a run waiting for it proceeds.

Before, a project was reconciled only on create, on a spec change and at operator start: a
deleted Secret stayed deleted while the project said Ready=True, and every run waited for its
database forever. Now the operator re-checks what each project owns every
`--recheck-interval` seconds, a run that finds the Secret missing restores it at once, and a
Secret of the project's name that the operator did not make for it is refused, not used.
The real operator against the API emulator, a test kubelet and a real PostgreSQL.
"""
from __future__ import annotations

import base64
import dataclasses

import asyncpg
import pytest

from codebase_indexer.provisioning import drop_project_database
from tests.support.fixtures import *  # noqa: F401,F403 - the emulator tier's fixtures
from tests.support.k8s import OperatorThread, eventually
from tests.support.resources import PROJECTS, RUNS, SECRETS, condition, has_condition, project_manifest, run_manifest

NS = "default"


@pytest.fixture
async def project_id(postgres_url, unique_project_id):
    yield unique_project_id
    await drop_project_database(postgres_url, unique_project_id, namespace=NS)


@pytest.fixture
async def rechecking_operator(operator_config):
    """The operator re-checking every project each second (the default is a minute)."""
    operator = OperatorThread(dataclasses.replace(operator_config, recheck_interval=1.0))
    await operator.astart()
    try:
        yield operator
    finally:
        await operator.astop()


async def ready(cluster, name):
    async def probe():
        project = await cluster.client.get(PROJECTS, NS, name)
        return project if has_condition(project, "Ready", "True") else None
    return await eventually(probe, timeout=60, interval=0.2, message=f"{name} Ready=True")


async def secret_url(cluster, name) -> str | None:
    secret = await cluster.client.get(SECRETS, NS, name)
    return base64.b64decode(secret["data"]["url"]).decode() if secret else None


async def connects(url: str) -> bool:
    conn = await asyncpg.connect(url)
    await conn.close()
    return True


async def test_deleted_secrets_come_back_with_working_credentials(
        k8s_cluster, rechecking_operator, project_id, workspace_dir):
    await k8s_cluster.client.create(PROJECTS, NS, project_manifest("ledger", project_id, path="ledger"))
    project = await ready(k8s_cluster, "ledger")

    for name in ("ledger-db", "ledger-db-reader"):
        await k8s_cluster.client.delete(SECRETS, NS, name)
    for name in ("ledger-db", "ledger-db-reader"):
        url = await eventually(lambda name=name: secret_url(k8s_cluster, name), timeout=30,
                               message=f"Secret {name} recreated")
        assert await connects(url)  # the roles' passwords follow the new Secrets
        secret = await k8s_cluster.client.get(SECRETS, NS, name)
        assert [ref["uid"] for ref in secret["metadata"]["ownerReferences"]] == [project["metadata"]["uid"]]
    assert has_condition(await k8s_cluster.client.get(PROJECTS, NS, "ledger"), "Ready", "True")


@pytest.mark.slow
async def test_a_run_that_finds_the_secret_missing_restores_it_and_proceeds(
        k8s_cluster, codebase_operator, test_kubelet, project_id, workspace_dir):
    (workspace_dir / "ledger").mkdir()
    (workspace_dir / "ledger" / "ledger.py").write_text("def post_entry(book, entry):\n    book.append(entry)\n")
    await k8s_cluster.client.create(PROJECTS, NS, project_manifest("ledger", project_id, path="ledger"))
    await ready(k8s_cluster, "ledger")
    await k8s_cluster.client.delete(SECRETS, NS, "ledger-db")

    # The default re-check (a minute) is far away: the run itself must notice and restore.
    await k8s_cluster.client.create(RUNS, NS, run_manifest("after-delete", "ledger"))

    async def finished():
        run = await k8s_cluster.client.get(RUNS, NS, "after-delete")
        return run if has_condition(run, "Succeeded", "True") else None
    run = await eventually(finished, timeout=90, interval=0.3, message="the run succeeded")
    assert run["status"]["summary"]["filesIndexed"] == 1
    assert await k8s_cluster.client.get(SECRETS, NS, "ledger-db") is not None


async def test_a_secret_the_operator_did_not_make_is_refused_not_used(
        k8s_cluster, rechecking_operator, project_id):
    planted = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "ledger-db", "namespace": NS},
               "data": {"password": base64.b64encode(b"chosen-by-someone-else").decode()}}
    await k8s_cluster.client.create(SECRETS, NS, planted)
    await k8s_cluster.client.create(PROJECTS, NS, project_manifest("ledger", project_id, path="ledger"))

    async def refused():
        project = await k8s_cluster.client.get(PROJECTS, NS, "ledger")
        return project if has_condition(project, "Ready", "False", "Conflict") else None
    project = await eventually(refused, timeout=60, interval=0.2, message="ledger Ready=False Conflict")

    assert "Secret ledger-db" in condition(project, "Ready")["message"]
    secret = await k8s_cluster.client.get(SECRETS, NS, "ledger-db")
    assert secret["data"] == planted["data"] and not secret["metadata"].get("ownerReferences")

    # Once the stray Secret is gone, the periodic re-check provisions the project.
    await k8s_cluster.client.delete(SECRETS, NS, "ledger-db")
    await ready(k8s_cluster, "ledger")
    assert await connects(await secret_url(k8s_cluster, "ledger-db"))
