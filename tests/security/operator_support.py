"""Helpers for the security tests of the operator (emulated API server, real operator, real PostgreSQL).

The fixtures come from tests/support/fixtures.py; a test module imports them with
`from tests.security.operator_support import *` (which also brings the RBAC check
of tests/operator: every API call the operator makes must be granted by operator/rbac.yaml).
"""
from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from codebase_indexer.provisioning import drop_project_database
from tests.operator.conftest import operator_stays_within_its_rbac  # noqa: F401 - an autouse fixture
from tests.support.fixtures import codebase_operator, k8s_cluster, operator_config, test_kubelet, workspace_dir
from tests.support.k8s import OperatorThread, eventually
from tests.support.resources import JOBS, PROJECTS, RUNS, SECRETS, has_condition, project_manifest

__all__ = ["operator_stays_within_its_rbac", "k8s_cluster", "workspace_dir", "operator_config", "test_kubelet",
           "codebase_operator", "configured_operator", "drop_databases", "repo", "until_condition",
           "ready_project", "jobs_of", "event_messages", "create_secret", "NS"]

NS = "default"
REPO_FILES = {"billing/invoice.py": "def compute_invoice_total(lines, tax_rate):\n"
                                    "    return sum(line.price for line in lines) * (1 + tax_rate)\n"}


@pytest.fixture
def repo(workspace_dir: Path) -> str:
    """A one-file repository in the workspace; its path relative to the workspace root."""
    for relative, text in REPO_FILES.items():
        path = workspace_dir / "tiny" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return "tiny"


@pytest_asyncio.fixture
async def drop_databases(postgres_url: str) -> AsyncIterator[list[str | tuple[str, str]]]:
    """Project ids (in namespace `default`) or (project id, namespace) whose databases a test leaves."""
    projects: list[str | tuple[str, str]] = []
    yield projects
    for entry in projects:
        project_id, namespace = (entry, NS) if isinstance(entry, str) else entry
        await drop_project_database(postgres_url, project_id, namespace=namespace)


@pytest_asyncio.fixture
async def configured_operator(operator_config) -> AsyncIterator[Any]:
    """Start the real operator with some options changed: `await configured_operator(max_active_jobs=2)`."""
    started: list[OperatorThread] = []

    async def start(**changes: Any) -> OperatorThread:
        operator = OperatorThread(dataclasses.replace(operator_config, **changes))
        await operator.astart()
        started.append(operator)
        return operator

    yield start
    for operator in started:
        await operator.astop()


async def until_condition(cluster, resource: str, name: str, type_: str, status: str, reason: str | None = None,
                          *, namespace: str = NS, timeout: float = 60.0) -> dict[str, Any]:
    async def probe():
        obj = await cluster.client.get(resource, namespace, name)
        return obj if has_condition(obj, type_, status, reason) else None
    try:
        return await eventually(probe, timeout=timeout, message=f"{name} {type_}={status} {reason or ''}")
    except AssertionError as exc:
        obj = await cluster.client.get(resource, namespace, name)
        raise AssertionError(f"{exc}\nlast status: {(obj or {}).get('status')}") from None


async def ready_project(cluster, name: str, project_id: str, *, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    await cluster.client.create(PROJECTS, namespace, project_manifest(name, project_id, namespace=namespace, **spec))
    return await until_condition(cluster, PROJECTS, name, "Ready", "True", namespace=namespace, timeout=30)


async def jobs_of(cluster, run_name: str, namespace: str | None = NS) -> list[dict[str, Any]]:
    return [job for job in await cluster.client.list(JOBS, namespace)
            if job["metadata"].get("labels", {}).get("codebase.mcp.dev/run") == run_name]


async def event_messages(cluster) -> list[str]:
    return [event.get("message") or "" for event in await cluster.client.list("v1/events", None)]


async def create_secret(cluster, name: str, data: dict[str, str], *, labels: dict[str, str] | None = None,
                        namespace: str = NS) -> dict[str, Any]:
    return await cluster.client.create(SECRETS, namespace, {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}})


__all__ += ["RUNS", "JOBS", "PROJECTS", "SECRETS"]
