"""Issue 14, item 5: a project database belongs to exactly one CodebaseProject.

Before, the database name came from the projectId alone: a CodebaseProject with the same
projectId in another namespace shared the first one's database, reset its role's password,
received a Secret for it, and its `reclaimPolicy: Delete` dropped the first one's data. Now
the name derives from namespace and projectId, the owning resource's uid is recorded in the
database and on its roles, and a second claimant gets Ready=False, reason Conflict, with
nothing of the first one's changed. The real operator against the API emulator and a real
PostgreSQL.
"""
from __future__ import annotations

import base64

import asyncpg
import pytest

from codebase_indexer.identifiers import database_name, owner_role_name, project_names
from codebase_indexer.postgres import database_url
from codebase_indexer.provisioning import drop_project_database
from tests.support.fixtures import *  # noqa: F401,F403 - the emulator tier's fixtures
from tests.support.k8s import eventually
from tests.support.resources import PROJECTS, SECRETS, condition, has_condition, project_manifest

TEAM_A, TEAM_B = "team-a", "team-b"


@pytest.fixture
async def shared_project_id(postgres_url, unique_project_id):
    yield unique_project_id
    for namespace in (TEAM_A, TEAM_B):
        await drop_project_database(postgres_url, unique_project_id, namespace=namespace)


async def until(cluster, namespace, name, status, reason, timeout=60.0):
    async def probe():
        project = await cluster.client.get(PROJECTS, namespace, name)
        return project if has_condition(project, "Ready", status, reason) else None
    return await eventually(probe, timeout=timeout, interval=0.2,
                            message=f"{namespace}/{name} Ready={status} {reason}")


async def secret_values(cluster, namespace, name) -> dict[str, str]:
    secret = await cluster.client.get(SECRETS, namespace, name)
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


async def can_connect(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InsufficientPrivilegeError:
        return False
    await conn.close()
    return True


@pytest.mark.slow
async def test_same_project_id_in_two_namespaces_gets_two_databases(
        k8s_cluster, codebase_operator, shared_project_id):
    await k8s_cluster.client.create(PROJECTS, TEAM_A, project_manifest(
        "shop", shared_project_id, path="shop", namespace=TEAM_A))
    first = await until(k8s_cluster, TEAM_A, "shop", "True", "Ready")
    a_before = await secret_values(k8s_cluster, TEAM_A, "shop-db")

    await k8s_cluster.client.create(PROJECTS, TEAM_B, project_manifest(
        "shop", shared_project_id, path="shop", namespace=TEAM_B, reclaim_policy="Delete"))
    second = await until(k8s_cluster, TEAM_B, "shop", "True", "Ready")
    b = await secret_values(k8s_cluster, TEAM_B, "shop-db")

    assert first["status"]["database"]["name"] == database_name(shared_project_id, TEAM_A)
    assert second["status"]["database"]["name"] == database_name(shared_project_id, TEAM_B)
    assert database_name(shared_project_id, TEAM_A) != database_name(shared_project_id, TEAM_B)
    assert b["username"] == owner_role_name(shared_project_id, TEAM_B) != a_before["username"]
    # The first one's credentials are untouched and still work; the second's reach only its own database.
    assert await secret_values(k8s_cluster, TEAM_A, "shop-db") == a_before
    assert await can_connect(a_before["url"])
    assert not await can_connect(database_url(b["url"], a_before["database"]))

    # Deleting the second (reclaimPolicy Delete) drops its own database, never the first's.
    await k8s_cluster.client.delete(PROJECTS, TEAM_B, "shop")
    await eventually(lambda: _gone(k8s_cluster, TEAM_B, "shop"), timeout=60, message="team-b/shop deleted")
    assert await can_connect(a_before["url"])


async def _gone(cluster, namespace, name):
    return await cluster.client.get(PROJECTS, namespace, name) is None


@pytest.mark.slow
async def test_a_second_claimant_in_the_same_namespace_is_refused_and_cannot_drop_the_data(
        k8s_cluster, codebase_operator, postgres_url, shared_project_id):
    await k8s_cluster.client.create(PROJECTS, TEAM_A, project_manifest(
        "shop", shared_project_id, path="shop", namespace=TEAM_A))
    await until(k8s_cluster, TEAM_A, "shop", "True", "Ready")
    owner = await secret_values(k8s_cluster, TEAM_A, "shop-db")
    conn = await asyncpg.connect(owner["url"])
    try:
        await conn.execute("INSERT INTO project_meta (key, value) VALUES ('canary', '\"alive\"')")
    finally:
        await conn.close()

    await k8s_cluster.client.create(PROJECTS, TEAM_A, project_manifest(
        "shop-copy", shared_project_id, path="shop", namespace=TEAM_A, reclaim_policy="Delete"))
    refused = await until(k8s_cluster, TEAM_A, "shop-copy", "False", "Conflict")

    message = condition(refused, "Ready")["message"]
    assert f"{TEAM_A}/shop" in message and "another projectId" in message
    assert has_condition(refused, "DatabaseReady", "False", "Conflict")
    assert await k8s_cluster.client.get(SECRETS, TEAM_A, "shop-copy-db") is None
    assert await k8s_cluster.client.get(SECRETS, TEAM_A, "shop-copy-db-reader") is None

    await k8s_cluster.client.delete(PROJECTS, TEAM_A, "shop-copy")
    await eventually(lambda: _gone(k8s_cluster, TEAM_A, "shop-copy"), timeout=60, message="shop-copy deleted")
    conn = await asyncpg.connect(owner["url"])  # the first one's password was never reset
    try:
        assert await conn.fetchval("SELECT value #>> '{}' FROM project_meta WHERE key = 'canary'") == "alive"
    finally:
        await conn.close()


@pytest.mark.slow
async def test_a_role_the_operator_did_not_create_is_never_changed(
        k8s_cluster, codebase_operator, postgres_url, shared_project_id):
    squatted = project_names(shared_project_id, TEAM_A).owner_role
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE ROLE "{squatted}" LOGIN PASSWORD \'theirs\'')
        before = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", squatted)

        await k8s_cluster.client.create(PROJECTS, TEAM_A, project_manifest(
            "shop", shared_project_id, path="shop", namespace=TEAM_A))
        refused = await until(k8s_cluster, TEAM_A, "shop", "False", "Conflict")

        assert f"role {squatted}" in condition(refused, "Ready")["message"]
        assert await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", squatted) == before
        assert not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1",
                                        database_name(shared_project_id, TEAM_A))
    finally:
        await admin.execute(f'DROP ROLE IF EXISTS "{squatted}"')
        await admin.close()
