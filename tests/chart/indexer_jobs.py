"""The indexer Job the real operator would create, configured by the rendered chart.

The operator's own argument parser reads the rendered operator container's args and environment (the admin
URL file replaced by a local placeholder, as the kubelet would have mounted it), and `jobs.build_job` builds
the Job of one run. Its pod carries exactly the labels and security settings the operator gives indexers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from chart_support import one

PLACEHOLDER_ADMIN_URL = "postgresql://admin:pw@db.example:5432/postgres?sslmode=require"


def operator_config(manifests: list[dict]) -> Any:
    from codebase_operator import command

    (container,) = one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    environment = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    with tempfile.TemporaryDirectory() as folder, mock.patch.dict(os.environ, environment):
        os.environ.pop("CODEBASE_MCP_ADMIN_DATABASE_URL", None)  # the test session's; restored on exit
        url_file = Path(folder) / "url"
        url_file.write_text(PLACEHOLDER_ADMIN_URL)
        arguments = [f"--admin-database-url-file={url_file}" if arg.startswith("--admin-database-url-file=")
                     else arg for arg in container["args"]]
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)  # defaults come from the environment, read here
        return command.config_from_args(parser.parse_args(arguments))


def indexer_job(manifests: list[dict], namespace: str, *, project: str = "demo",
                source: dict | None = None) -> dict:
    """The Job of a run of `project` (a path under the workspace unless `source` says otherwise)."""
    from codebase_operator import jobs
    from codebase_operator.specs import run_source

    project_body = {"apiVersion": "codebase.mcp.dev/v1alpha1", "kind": "CodebaseProject",
                    "metadata": {"name": project, "namespace": namespace, "uid": f"uid-{project}"},
                    "spec": {"projectId": project, "source": source or {"path": project}}}
    run = {"apiVersion": "codebase.mcp.dev/v1alpha1", "kind": "IndexingRun",
           "metadata": {"name": f"{project}-1", "namespace": namespace, "uid": f"uid-{project}-1"},
           "spec": {"projectRef": {"name": project}, "mode": "Full"}}
    return jobs.build_job(run, project_body, run_source(run["spec"], project_body["spec"]),
                          operator_config(manifests))
