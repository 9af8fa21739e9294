"""The periodic re-check of what every project owns: its database, roles and Secrets.

kopf reconciles a project on create, on a spec change and at operator start; without this, a
deleted Secret would stay deleted while the project still says Ready=True, and its runs would
wait for the database forever. One task of the operator lists the projects every
`recheck_interval` seconds and provisions again whatever is missing (runs that find a Secret
missing do the same at once).
"""
from __future__ import annotations

import logging

from . import codebase_projects, sweeps
from .context import Context

log = logging.getLogger(__name__)


async def recheck_forever(ctx: Context) -> None:
    await sweeps.every(lambda: ctx.config.recheck_interval, lambda: recheck_all(ctx), first_wait=True)


async def recheck_all(ctx: Context) -> None:
    await sweeps.sweep_projects(ctx, "periodic re-check", lambda project: codebase_projects.recheck(ctx, project, log))
