"""Issue 14, item 7: no cross-database access, and searches run as a read-only role.

Before, every project database granted CONNECT to PUBLIC (any project's role could open any
other project's database), local searches ran as the superuser and Kubernetes searches as the
database owner. Now CONNECT is revoked from PUBLIC on every project database, each project has
a reader role that may only SELECT, the local gateway searches as that role, and on Kubernetes
the operator writes a reader Secret, the only Secret the gateway reads to search.
"""
from __future__ import annotations

import asyncio
import base64
import uuid

import asyncpg
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from codebase_indexer.connections import GATEWAY_APPLICATION_NAME
from codebase_indexer.identifiers import kubernetes_name, project_names
from codebase_indexer.postgres import database_url
from codebase_indexer.provisioning import drop_project_database
from tests.gateway.conftest import SERVE, gateway_env, stdio_client, write_repo
from tests.support.fixtures import *  # noqa: F401,F403 - the emulator tier's fixtures
from tests.support.k8s import eventually
from tests.support.resources import PROJECTS, SECRETS, has_condition, project_manifest

PAYROLL = "def compute_payroll(employees):\n    return sum(e.salary for e in employees)\n"
INVENTORY = "def count_inventory(items):\n    return len(items)\n"


@pytest.fixture
async def local_projects(postgres_url):
    project_ids = [f"priv-a-{uuid.uuid4().hex[:6]}", f"priv-b-{uuid.uuid4().hex[:6]}"]
    yield project_ids
    for project_id in project_ids:
        await drop_project_database(postgres_url, project_id)


async def refused(url: str, statement: str | None = None) -> bool:
    """Whether the server refuses to connect with `url` (or, when given, to run `statement`)."""
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InsufficientPrivilegeError:
        return True
    try:
        if statement is None:
            return False
        try:
            await conn.execute(statement)
        except asyncpg.InsufficientPrivilegeError:
            return True
        return False
    finally:
        await conn.close()


@pytest.mark.slow
async def test_local_searches_run_as_a_reader_that_reaches_only_its_own_database(
        local_projects, postgres_url, tmp_path):
    first, second = local_projects
    payroll = write_repo(tmp_path / "payroll", {"payroll.py": PAYROLL})
    inventory = write_repo(tmp_path / "inventory", {"inventory.py": INVENTORY})
    a, b = project_names(first), project_names(second)

    async with stdio_client() as client:
        for project_id, repo in ((first, payroll), (second, inventory)):
            status = (await client.call_tool("index_repository",
                                             {"repo_path": str(repo), "project_id": project_id})).data
            assert status["status"] == "completed", status
        found = (await client.call_tool("search_code", {"query": "salary totals", "project_id": first})).data
        assert found["results"][0]["symbol"] == "compute_payroll"

        # Hold a search in flight behind a lock, and see who it runs as.
        locker = await asyncpg.connect(database_url(postgres_url, a.database))
        watcher = await asyncpg.connect(postgres_url)
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")
                search = asyncio.create_task(client.call_tool(
                    "search_code", {"query": "salary", "project_id": first, "mode": "lexical"}))

                async def searching_as():
                    return await watcher.fetchval(
                        "SELECT usename FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 "
                        "AND wait_event_type = 'Lock'", a.database, GATEWAY_APPLICATION_NAME)
                user = await eventually(searching_as, timeout=30, interval=0.05, message="a search waiting")
            assert (await search).data["results"][0]["symbol"] == "compute_payroll"
        finally:
            await locker.close()
            await watcher.close()
        assert user == a.reader_role

    reader_a = database_url(postgres_url, a.database, user=a.reader_role)
    assert not await refused(reader_a, "SELECT count(*) FROM chunks")
    assert await refused(reader_a, "DELETE FROM chunks")
    assert await refused(reader_a, "INSERT INTO project_meta (key, value) VALUES ('x', '1')")
    assert await refused(reader_a, "CREATE TABLE stolen (x int)")
    assert await refused(database_url(postgres_url, b.database, user=a.reader_role))
    admin = await asyncpg.connect(postgres_url)
    try:
        for name in (a.database, b.database):
            assert not await admin.fetchval("SELECT has_database_privilege('public', $1, 'CONNECT')", name)
    finally:
        await admin.close()


async def secret_values(cluster, name) -> dict[str, str]:
    secret = await cluster.client.get(SECRETS, "default", name)
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


@pytest.fixture
async def k8s_projects(postgres_url):
    project_ids = [f"priv-k-{uuid.uuid4().hex[:6]}", f"priv-l-{uuid.uuid4().hex[:6]}"]
    yield project_ids
    for project_id in project_ids:
        await drop_project_database(postgres_url, project_id, namespace="default")


@pytest.mark.slow
async def test_kubernetes_reader_secret_is_read_only_and_all_the_gateway_needs(
        k8s_cluster, codebase_operator, workspace_dir, k8s_projects):
    names = [kubernetes_name(project_id) for project_id in k8s_projects]
    for name, project_id in zip(names, k8s_projects, strict=True):
        await k8s_cluster.client.create(PROJECTS, "default", project_manifest(name, project_id, path="repo"))
    for name in names:
        async def ready(name=name):
            project = await k8s_cluster.client.get(PROJECTS, "default", name)
            return has_condition(project, "Ready", "True")
        await eventually(ready, timeout=60, message=f"{name} Ready")

    owner_a, owner_b = [await secret_values(k8s_cluster, f"{name}-db") for name in names]
    reader_a = await secret_values(k8s_cluster, f"{names[0]}-db-reader")
    assert reader_a["username"] == project_names(k8s_projects[0], "default").reader_role
    assert reader_a["database"] == owner_a["database"] and reader_a["password"] != owner_a["password"]
    assert not await refused(reader_a["url"], "SELECT count(*) FROM chunks")
    assert await refused(reader_a["url"], "DELETE FROM files")
    assert await refused(reader_a["url"], "INSERT INTO project_meta (key, value) VALUES ('x', '1')")
    other_database = database_url(owner_b["url"], owner_a["database"])
    assert await refused(other_database)  # project B's owner cannot open project A's database

    # The gateway searches with the reader Secret alone: the owner Secret gone (and the operator
    # stopped, so nothing brings it back), a search still runs.
    await codebase_operator.astop()
    await k8s_cluster.client.delete(SECRETS, "default", f"{names[0]}-db")
    transport = StdioTransport(
        command=SERVE[0], args=[*SERVE[1:], "--control-plane", "kubernetes", "--namespace", "default",
                                "--workspace-root", str(workspace_dir)],
        env=gateway_env({"KUBECONFIG": str(k8s_cluster.kubeconfig)}), keep_alive=False)
    async with Client(transport, timeout=180) as client:
        found = (await client.call_tool("search_code", {"query": "anything", "project_id": k8s_projects[0],
                                                        "mode": "lexical"})).data
    assert found["total_count"] == 0 and found["database_name"] == owner_a["database"]
