"""The same tools on the kubernetes control plane: the gateway creates CodebaseProject and
IndexingRun resources in an emulated cluster; the real operator and a test kubelet do the work.
The gateways run in process (the server `codebase-mcp serve --control-plane kubernetes` builds):
what is tested is the control plane, not the stdio wire, which tests/gateway/test_local_gateway.py covers."""
from __future__ import annotations

import json
import uuid

import pytest
from fastmcp.exceptions import ToolError

from codebase_indexer.identifiers import kubernetes_name
from codebase_indexer.provisioning import drop_project_database, project_database_exists

from .conftest import wait_for_job, write_config, write_repo

RUNS = "codebase.mcp.dev/v1alpha1/indexingruns"
PROJECTS = "codebase.mcp.dev/v1alpha1/codebaseprojects"
PARSER = '''
def parse_shipping_label(text):
    """Read the carrier, tracking number and destination from a shipping label."""
    carrier, tracking, destination = text.split("|")
    return {"carrier": carrier, "tracking": tracking, "destination": destination}
'''
CLOCK = '''
def format_elapsed_time(seconds):
    """Render a duration in seconds as hours, minutes and seconds."""
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s"
'''

INVOICE = '''
def apply_discount(invoice_total, percent):
    """Reduce an invoice total by a percentage discount."""
    return invoice_total * (1 - percent / 100)
'''


@pytest.fixture
async def created_projects(postgres_url):
    project_ids: list[str] = []
    yield project_ids
    for project_id in project_ids:
        await drop_project_database(postgres_url, project_id, namespace="default")


@pytest.mark.slow
async def test_original_bug_on_kubernetes_resources_all_the_way(
        k8s_cluster, codebase_operator, test_kubelet, workspace_dir, postgres_url, created_projects,
        kubernetes_gateway):
    """Two sessions (two gateways, as two editors would launch) with their own working directories."""
    project, other = f"k8s-never-seen-{uuid.uuid4().hex[:6]}", f"k8s-other-{uuid.uuid4().hex[:6]}"
    created_projects.extend([project, other])
    repo = write_repo(workspace_dir / "shipping", {"labels.py": PARSER, "clock/elapsed.py": CLOCK})
    other_repo = write_repo(workspace_dir / "billing", {"invoice.py": INVOICE})
    write_config(repo, project)
    write_config(other_repo, other)

    async with kubernetes_gateway() as client, kubernetes_gateway() as other_client:
        session = (await client.call_tool("set_working_directory", {"directory": str(repo / "clock")})).data
        assert session["project_info"]["name"] == project
        await other_client.call_tool("set_working_directory", {"directory": str(other_repo)})
        started = (await client.call_tool("start_indexing_background", {"repo_path": str(repo)})).data
        assert started["status"] == "pending" and started["project_id"] == project
        other_started = (await other_client.call_tool("start_indexing_background",
                                                      {"repo_path": str(other_repo)})).data
        assert other_started["project_id"] == other

        run = await k8s_cluster.client.get(RUNS, "default", started["job_id"])
        assert run["spec"]["projectRef"] == {"name": kubernetes_name(project)}
        assert (run["spec"]["mode"], run["spec"]["repoPath"]) == ("Incremental", "shipping")
        declared = await k8s_cluster.client.get(PROJECTS, "default", kubernetes_name(project))
        assert declared["spec"]["projectId"] == project

        status = await wait_for_job(client, started["job_id"], timeout=120)
        assert status["status"] == "completed", status
        assert status["files_indexed"] == 2 and status["chunks_created"] >= 2
        assert await project_database_exists(postgres_url, project, namespace="default")
        assert (await wait_for_job(other_client, other_started["job_id"], timeout=120))["status"] == "completed"

        found = (await client.call_tool("search_code", {"query": "tracking number of a parcel"})).data
        assert found["project_id"] == project and found["results"][0]["symbol"] == "parse_shipping_label"
        isolated = (await other_client.call_tool("search_code", {"query": "tracking number of a parcel"})).data
        assert isolated["project_id"] == other
        assert {r["file_path"] for r in isolated["results"]} == {"invoice.py"}

        listed = {p["name"]: p for p in (await client.call_tool("list_projects", {})).data["projects"]}
        assert listed[project]["ready"] and listed[project]["files"] == 2 and listed[other]["files"] == 1

        notifications = []

        async def on_progress(progress, total, message):
            notifications.append(message)

        again = (await client.call_tool("index_repository", {"repo_path": str(repo)},
                                        progress_handler=on_progress)).data
        assert again["status"] == "completed" and again["files_indexed"] == 0
        assert again["status_message"].startswith("no changes") and notifications

        jobs = (await client.call_tool("list_indexing_jobs", {"project_id": project})).data["jobs"]
        assert [job["job_id"] for job in jobs] == [again["job_id"], started["job_id"]]
        health = json.loads((await client.read_resource("health://status"))[0].text)
        assert health["ok"] and health["control_plane"] == "kubernetes"


async def test_kubernetes_validation(k8s_cluster, tmp_path, kubernetes_gateway):
    """Refused before any resource is created: no operator needed."""
    project = f"k8s-explicit-{uuid.uuid4().hex[:6]}"
    outside = write_repo(tmp_path / "outside", {"x.py": "x = 1\n"})
    async with kubernetes_gateway() as client:
        with pytest.raises(ToolError, match="outside the allowed roots"):
            await client.call_tool("start_indexing_background", {"repo_path": str(outside), "project_id": project})
        with pytest.raises(ToolError, match="unknown job_id"):
            await client.call_tool("get_indexing_status", {"job_id": "no-such-run"})
        with pytest.raises(ToolError, match="unknown job_id"):
            await client.call_tool("cancel_indexing_job", {"job_id": "Not A Name!"})
        with pytest.raises(ToolError, match="has not been indexed"):
            await client.call_tool("search_code", {"query": "anything", "project_id": project})
    assert await k8s_cluster.client.list(RUNS, "default") == []


@pytest.mark.slow
async def test_kubernetes_cancel_then_forced_reindex(
        k8s_cluster, codebase_operator, test_kubelet, workspace_dir, created_projects, kubernetes_gateway):
    project = f"k8s-explicit-{uuid.uuid4().hex[:6]}"
    created_projects.append(project)
    repo = write_repo(workspace_dir / "many", {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(40)})

    async with kubernetes_gateway() as client:
        started = (await client.call_tool("start_indexing_background",
                                          {"repo_path": str(repo), "project_id": project})).data
        cancelled = (await client.call_tool("cancel_indexing_job", {"job_id": started["job_id"]})).data
        if cancelled["status"] not in ("cancelled", "completed", "failed"):
            cancelled = await wait_for_job(client, started["job_id"], timeout=60)
        assert cancelled["status"] == "cancelled"  # within a second of its creation: its Job never ran
        run = await k8s_cluster.client.get(RUNS, "default", started["job_id"])
        assert run["spec"]["cancel"] is True

        final = (await client.call_tool("index_repository", {"repo_path": str(repo), "project_id": project,
                                                              "force_reindex": True})).data
        assert final["status"] == "completed" and final["force_reindex"] and final["files_indexed"] == 40
