"""Periodic tasks that visit every live CodebaseProject: the re-check of what it owns and its refresh."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from codebase_indexer.postgres import redact

from . import kube
from .context import Context

log = logging.getLogger(__name__)
Visit = Callable[[dict[str, Any]], Awaitable[None]]


async def every(seconds: Callable[[], float], sweep: Callable[[], Awaitable[None]], *, first_wait: bool) -> None:
    """Run `sweep` forever, `seconds()` apart (waiting first when `first_wait`)."""
    if not first_wait:
        await sweep()
    while True:
        await asyncio.sleep(seconds())
        await sweep()


async def sweep_projects(ctx: Context, purpose: str, visit: Visit,
                         wanted: Callable[[dict[str, Any]], bool] = lambda project: True) -> None:
    """`visit` each project not being deleted that is `wanted`; one failure never stops the others,
    and an API that cannot be reached now is tried again on the next sweep."""
    try:
        listed = await kube.list_in_namespaces(ctx.api, kube.CodebaseProject, ctx.namespaces)
    except Exception as exc:
        log.warning(f"cannot list CodebaseProjects for the {purpose}: {redact(str(exc))}")
        return
    for project in listed:
        if (project.get("metadata") or {}).get("deletionTimestamp") or not wanted(project):
            continue
        try:
            await visit(project)
        except Exception as exc:
            log.warning(f"{purpose} of project {project['metadata'].get('name')} failed: {redact(str(exc))}")
