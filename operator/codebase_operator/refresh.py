"""Runs the operator starts on its own: on request (`kubectl annotate cbp NAME codebase.mcp.dev/refresh=now`).

A request is absorbed by a run of the project that is not finished yet: that run indexes the
tree as it is when it starts, or is about to. Run names derive from the project's uid and the
request, so a handler that runs twice for one request creates one run.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from codebase_indexer import contract

from . import API_VERSION, kube, transitions
from .specs import MAX_NAME_LENGTH

Logger = logging.Logger | kopf.Logger
_SUFFIX = "-refresh-"


def run_name(project_name: str, project_uid: str, request: str) -> str:
    """A valid resource name, the same for the same project and request."""
    digest = hashlib.sha256(f"{project_uid}\0{request}".encode()).hexdigest()[:10]
    prefix = project_name[:MAX_NAME_LENGTH - len(_SUFFIX) - len(digest)].rstrip("-.")
    return f"{prefix}{_SUFFIX}{digest}"


def run_manifest(project: Mapping[str, Any], name: str, trigger: str) -> dict[str, Any]:
    meta = project["metadata"]
    return {
        "apiVersion": API_VERSION, "kind": contract.RUN_KIND,
        "metadata": {
            "name": name, "namespace": meta["namespace"],
            "labels": {contract.PROJECT_LABEL: meta["name"], contract.TRIGGER_LABEL: trigger},
            # Deleted with its project (garbage collection); not a controller reference.
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": contract.PROJECT_KIND,
                                 "name": meta["name"], "uid": meta["uid"]}],
        },
        "spec": {"projectRef": {"name": meta["name"]}, "mode": "Incremental"},
    }


def unfinished_runs(runs: list[dict[str, Any]], project_name: str) -> list[str]:
    """The project's runs that are active or waiting (not finished, not cancelled, not being deleted)."""
    return sorted(run["metadata"]["name"] for run in runs
                  if ((run.get("spec") or {}).get("projectRef") or {}).get("name") == project_name
                  and not transitions.is_finished(run.get("status"))
                  and not (run.get("spec") or {}).get("cancel")
                  and not run["metadata"].get("deletionTimestamp"))


async def request_run(api: Any, project: Mapping[str, Any], request: str, trigger: str,
                      logger: Logger) -> tuple[str, bool]:
    """Create a run of the project unless one is not finished yet: (run name, created)."""
    meta = project["metadata"]
    pending = unfinished_runs(await kube.list_all(api, kube.IndexingRun, meta["namespace"]), meta["name"])
    if pending:
        return pending[0], False
    name = run_name(meta["name"], meta["uid"], request)
    _, created = await kube.create(api, kube.IndexingRun, run_manifest(project, name, trigger))
    if created:
        logger.info(f"created IndexingRun {name} ({trigger})")
    return name, created


async def on_refresh_annotation(api: Any, body: kopf.Body, logger: Logger) -> None:
    """The manual trigger: one run (or the unfinished one absorbs it); then the annotation is removed.

    Removed only while it still has the value seen here, so a newer request is not lost: its own
    watch event handles it.
    """
    value = (body.metadata.annotations or {}).get(contract.REFRESH_ANNOTATION)
    if value is None or body.metadata.get("deletionTimestamp"):
        return
    request = f"manual\0{body.metadata.get('resourceVersion', '')}\0{value}"
    name, created = await request_run(api, body, request, "manual", logger)
    message = (f"refresh requested: created run {name}" if created
               else f"refresh requested: run {name} is not finished yet and absorbs it")
    kopf.event(body, type="Normal", reason="RefreshRequested", message=message)
    pointer = "/metadata/annotations/" + contract.REFRESH_ANNOTATION.replace("~", "~0").replace("/", "~1")
    # Changed meanwhile (a newer request, or removed already): that change's own event handles it.
    with contextlib.suppress(kube.Conflict):
        await kube.json_patch(api, kube.CodebaseProject, body.metadata.namespace or "", body.metadata.name or "",
                              [{"op": "test", "path": pointer, "value": value}, {"op": "remove", "path": pointer}])
