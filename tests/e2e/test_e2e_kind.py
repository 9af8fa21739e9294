"""On a real cluster: an MCP client indexes a mounted repository through the gateway, the operator runs
the Job, the resources report it, search finds the code, and the project can be deleted."""
from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest

from kind_support import NAMESPACE, RELEASE, KindCluster

pytestmark = pytest.mark.e2e

REPOSITORY = "/workspace/polyglot"  # tests/fixtures/polyglot, mounted by kind-config.yaml
FINISHED = {"completed", "failed", "cancelled"}


async def call(client, tool: str, **arguments) -> dict:
    return (await client.call_tool(tool, arguments)).data


def mcp_client(cluster: KindCluster, token: str):
    from fastmcp import Client
    from fastmcp.client.auth import BearerAuth
    from fastmcp.client.transports import StreamableHttpTransport

    return Client(StreamableHttpTransport(cluster.mcp_url, auth=BearerAuth(token)), timeout=120)


def project_named(cluster: KindCluster, project_id: str) -> dict:
    items = cluster.get_json("cbp", "-n", NAMESPACE)["items"]
    matches = [item for item in items if item["spec"]["projectId"] == project_id]
    assert len(matches) == 1, f"expected one CodebaseProject for {project_id!r}, found {len(matches)}"
    return matches[0]


def runs_of(cluster: KindCluster, project_name: str) -> list[dict]:
    items = cluster.get_json("ir", "-n", NAMESPACE)["items"]
    return [item for item in items if item["spec"]["projectRef"]["name"] == project_name]


def test_helm_test_passes(kind_cluster):
    result = kind_cluster.helm("test", RELEASE, "--namespace", NAMESPACE, "--logs", timeout=300)
    assert "OK:" in result.stdout


def test_gateway_refuses_requests_without_the_token(kind_cluster):
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "e2e", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(kind_cluster.mcp_url, json=body, headers=headers, timeout=30).status_code == 401
    wrong = httpx.post(kind_cluster.mcp_url, json=body, timeout=30,
                       headers={**headers, "Authorization": "Bearer not-the-token-0123456789"})
    assert wrong.status_code == 401


async def test_background_indexing_of_a_new_project_then_search_then_delete(kind_cluster):
    project_id = f"e2e-polyglot-{secrets.token_hex(4)}"
    async with mcp_client(kind_cluster, kind_cluster.token) as client:
        started = await call(client, "start_indexing_background", repo_path=REPOSITORY, project_id=project_id)
        assert started["status"] == "pending" and started["project_id"] == project_id, started

        deadline = time.monotonic() + 900
        status = await call(client, "get_indexing_status", job_id=started["job_id"], project_id=project_id)
        while status["status"] not in FINISHED:
            assert time.monotonic() < deadline, f"not finished after 15 minutes: {status}"
            await asyncio.sleep(3)
            status = await call(client, "get_indexing_status", job_id=started["job_id"], project_id=project_id)
        assert status["status"] == "completed", status
        assert status["files_indexed"] > 0 and status["chunks_created"] > 0, status

        found = await call(client, "search_code", query="refuse to add stock over the warehouse capacity",
                           project_id=project_id, limit=5)
        assert any(result["file_path"].endswith("backend/inventory.py") for result in found["results"]), found
        projects = await call(client, "list_projects")
        assert project_id in str(projects)

    # The resources tell the same story as the tools.
    project = project_named(kind_cluster, project_id)
    name = project["metadata"]["name"]
    kind_cluster.kubectl("wait", "--for=condition=Ready", f"cbp/{name}", "-n", NAMESPACE, "--timeout=60s")
    (run,) = runs_of(kind_cluster, name)
    kind_cluster.kubectl("wait", "--for=condition=Succeeded", f"ir/{run['metadata']['name']}", "-n", NAMESPACE,
                         "--timeout=60s")
    run = kind_cluster.get_json(f"ir/{run['metadata']['name']}", "-n", NAMESPACE)
    assert run["status"]["summary"]["chunksCreated"] == status["chunks_created"]
    secret_name = project["status"]["database"]["secretName"]
    kind_cluster.kubectl("get", "secret", secret_name, "-n", NAMESPACE)

    # Deleting the project removes it, and its credentials Secret with it (owner reference).
    kind_cluster.kubectl("delete", f"cbp/{name}", "-n", NAMESPACE, "--wait", "--timeout=120s")
    assert not [item for item in kind_cluster.get_json("cbp", "-n", NAMESPACE)["items"]
                if item["spec"]["projectId"] == project_id]
    deadline = time.monotonic() + 120
    while kind_cluster.kubectl("get", "secret", secret_name, "-n", NAMESPACE, check=False).returncode == 0:
        assert time.monotonic() < deadline, f"Secret {secret_name} outlived its project"
        await asyncio.sleep(2)
