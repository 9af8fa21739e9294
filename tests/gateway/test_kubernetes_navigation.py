"""grep_code, find_symbol, get_file_outline and read_code on the kubernetes control plane: the
gateway reads the project database the operator provisioned (as its reader Secret says), never the
workspace, which on a cluster it does not mount."""
from __future__ import annotations

import shutil
import uuid

import pytest

from codebase_indexer.provisioning import drop_project_database

from .conftest import wait_for_job, write_repo

SERVICE = '''\
class LabelPrinter:
    """Prints shipping labels."""

    def print_label(self, parcel):
        return f"{parcel.carrier}|{parcel.tracking}"
'''


@pytest.mark.slow
async def test_code_navigation_tools_on_the_kubernetes_plane(
        k8s_cluster, codebase_operator, test_kubelet, workspace_dir, postgres_url, kubernetes_gateway):
    project = f"k8s-nav-{uuid.uuid4().hex[:6]}"
    repo = write_repo(workspace_dir / f"printing-{project}", {"printing/labels.py": SERVICE})
    try:
        async with kubernetes_gateway() as client:
            started = (await client.call_tool("start_indexing_background",
                                              {"repo_path": str(repo), "project_id": project})).data
            assert (await wait_for_job(client, started["job_id"], timeout=120))["status"] == "completed"
            shutil.rmtree(repo)  # what follows reads the index, not the files

            grep = (await client.call_tool("grep_code", {"pattern": r"parcel\.\w+", "regex": True,
                                                         "project_id": project})).data
            assert grep["project_id"] == project and grep["total_count"] == 1
            assert grep["matches"][0] == {
                "file_path": "printing/labels.py", "line": 5, "column": 19,
                "line_text": '        return f"{parcel.carrier}|{parcel.tracking}"',
                "symbol": "LabelPrinter.print_label",
                "stale": None}  # the gateway cannot see a cluster's files: unknown, not fresh
            found = (await client.call_tool("find_symbol", {"name": "LabelPrinter.print_label",
                                                            "project_id": project})).data
            assert [(s["kind"], s["start_line"], s["end_line"]) for s in found["symbols"]] == [("method", 4, 5)]
            outline = (await client.call_tool("get_file_outline", {"file_path": "printing/labels.py",
                                                                   "project_id": project})).data
            assert [(s["name"], [c["name"] for c in s["children"]]) for s in outline["symbols"]] == [
                ("LabelPrinter", ["print_label"])]
            read = (await client.call_tool("read_code", {"file_path": "printing/labels.py", "start_line": 4,
                                                         "project_id": project})).data
            assert read["content"] == SERVICE.splitlines()[3] + "\n" + SERVICE.splitlines()[4]
            assert (read["end_line"], read["truncated"]) == (5, False)
    finally:
        await drop_project_database(postgres_url, project, namespace="default")
