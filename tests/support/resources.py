"""Manifests and status readers for the codebase.mcp.dev resources, for tests."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codebase_indexer import contract

API_VERSION = contract.API_VERSION
PROJECTS = f"{contract.API_VERSION}/{contract.PROJECTS}"
RUNS = f"{contract.API_VERSION}/{contract.RUNS}"
JOBS = "batch/v1/jobs"
SECRETS = "v1/secrets"
EVENTS = "v1/events"


def project_manifest(name: str, project_id: str, *, path: str | None = None, namespace: str = "default",
                     reclaim_policy: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"projectId": project_id, "source": {"path": path} if path else spec.pop("source")}
    if reclaim_policy:
        body["database"] = {"reclaimPolicy": reclaim_policy}
    body.update(spec)
    return {"apiVersion": API_VERSION, "kind": "CodebaseProject",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def run_manifest(name: str, project: str | None, *, namespace: str = "default", mode: str = "Incremental",
                 **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"mode": mode, **spec}
    if project is not None:
        body["projectRef"] = {"name": project}
    return {"apiVersion": API_VERSION, "kind": "IndexingRun",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def condition(obj: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or ():
        if item.get("type") == type_:
            return item
    return {}


def has_condition(obj: Mapping[str, Any] | None, type_: str, status: str, reason: str | None = None) -> bool:
    found = condition(obj, type_)
    return found.get("status") == status and (reason is None or found.get("reason") == reason)
