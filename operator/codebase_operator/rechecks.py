"""The periodic re-check of what every project owns: its database, roles and Secrets.

kopf reconciles a project on create, on a spec change and at operator start; without this, a
deleted Secret would stay deleted while the project still says Ready=True, and its runs would
wait for the database forever. One task of the operator lists the projects every
`recheck_interval` seconds and provisions again whatever is missing (runs that find a Secret
missing do the same at once).
"""
from __future__ import annotations

import asyncio
import logging

from codebase_indexer.postgres import redact

from . import codebase_projects, kube
from .context import Context

log = logging.getLogger(__name__)


async def recheck_forever(ctx: Context) -> None:
    while True:
        await asyncio.sleep(ctx.config.recheck_interval)
        await recheck_all(ctx)


async def recheck_all(ctx: Context) -> None:
    try:
        listed = await kube.list_in_namespaces(ctx.api, kube.CodebaseProject, ctx.namespaces)
    except Exception as exc:  # the API is unreachable for now: the next round tries again
        log.warning(f"cannot list CodebaseProjects for the periodic re-check: {redact(str(exc))}")
        return
    for project in listed:
        if (project.get("metadata") or {}).get("deletionTimestamp"):
            continue
        try:
            await codebase_projects.recheck(ctx, project, log)
        except Exception as exc:  # one broken project must not stop the others' re-checks
            log.warning(f"re-check of project {project['metadata'].get('name')} failed: {redact(str(exc))}")
