"""The kopf registry of codebase-operator. Handlers are thin: they unpack kopf's arguments and delegate."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from codebase_indexer import contract

from . import GROUP, VERSION, codebase_projects, indexing_runs, kube, metrics, rechecks, refresh, transitions, waits
from .context import Context

PROJECTS = (GROUP, VERSION, contract.PROJECTS)
RUNS = (GROUP, VERSION, contract.RUNS)
FINALIZER = contract.FINALIZER


def context(memo: kopf.Memo) -> Context:
    return memo["context"]


def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handler progress and the last-handled spec live in our own annotations, not in `status`
    # (whose schema is ours) — kopf's defaults would write `status.kopf`.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = FINALIZER
    # Only the operator's explicit events reach Kubernetes; kopf's own logs stay in the log.
    settings.posting.level = logging.CRITICAL
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    waits.log_expected_waits_at_info()


def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    return kube.connection_info(context(memo).api.config)


@metrics.counted("codebaseproject")
async def reconcile_project(body: kopf.Body, patch: kopf.Patch, retry: int, memo: kopf.Memo,
                            logger: kopf.Logger, **_: Any) -> None:
    await codebase_projects.reconcile(context(memo), body, patch, retry, logger)


@metrics.counted("codebaseproject")
async def refresh_requested(body: kopf.Body, type: str | None, memo: kopf.Memo, logger: kopf.Logger,
                            **_: Any) -> None:
    if type != "DELETED":
        await refresh.on_refresh_annotation(context(memo).api, body, logger)


async def start_rechecks(memo: kopf.Memo, **_: Any) -> None:
    memo["rechecks"] = asyncio.create_task(rechecks.recheck_forever(context(memo)), name="project-rechecks")
    memo["refreshes"] = asyncio.create_task(refresh.refresh_forever(context(memo)), name="project-refreshes")


async def stop_rechecks(memo: kopf.Memo, **_: Any) -> None:
    for key in ("rechecks", "refreshes"):
        task = memo.get(key)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@metrics.counted("codebaseproject")
async def drop_project_database(body: kopf.Body, retry: int, memo: kopf.Memo, logger: kopf.Logger,
                                **_: Any) -> None:
    await codebase_projects.drop(context(memo), body, retry, logger)


@metrics.counted("indexingrun")
async def start_run(body: kopf.Body, patch: kopf.Patch, retry: int, memo: kopf.Memo,
                    logger: kopf.Logger, **_: Any) -> None:
    await indexing_runs.start(context(memo), body, patch, retry, logger)


@metrics.counted("indexingrun")
async def watch_run(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger,
                    **_: Any) -> None:
    await indexing_runs.watch(context(memo), body, patch, logger)


def is_running(status: kopf.Status, **_: Any) -> bool:
    return bool(status.get("jobName")) and not transitions.is_finished(status)


def build_registry(*, poll_interval: float, error_backoff: float) -> kopf.OperatorRegistry:
    """A registry with every handler.

    `poll_interval` paces the checks of running runs; `error_backoff` is the delay
    before a handler that failed unexpectedly (an API or network error) runs again
    (kopf's default is 60 s). Expected waits set their own delays.
    """
    registry = kopf.OperatorRegistry()
    kopf.on.startup(registry=registry)(configure)
    kopf.on.login(registry=registry)(login)

    for decorator in (kopf.on.resume, kopf.on.create):
        decorator(*PROJECTS, backoff=error_backoff, registry=registry)(reconcile_project)
    kopf.on.update(*PROJECTS, field="spec", backoff=error_backoff, registry=registry)(reconcile_project)
    # `kubectl annotate cbp NAME codebase.mcp.dev/refresh=now`; the handler removes the annotation.
    # An event handler: kopf's change detection ignores annotations under its storage prefix (our group).
    kopf.on.event(*PROJECTS, annotations={contract.REFRESH_ANNOTATION: kopf.PRESENT},
                  registry=registry)(refresh_requested)
    # What a project owns is re-checked by one task of the operator, not a kopf timer: a timer
    # would put a finalizer on every project, and a Retained project needs none.
    kopf.on.startup(registry=registry)(start_rechecks)
    kopf.on.cleanup(registry=registry)(stop_rechecks)
    # A finalizer exists only for projects whose database is to be dropped: kopf adds one
    # exactly when a non-optional deletion handler matches, and this one matches only Delete.
    # Retries are bounded: then kopf releases the finalizer, so no project is stuck terminating.
    kopf.on.delete(*PROJECTS, field="spec.database.reclaimPolicy", value="Delete", retries=8,
                   backoff=error_backoff, registry=registry)(drop_project_database)

    for decorator in (kopf.on.resume, kopf.on.create):
        decorator(*RUNS, backoff=error_backoff, registry=registry)(start_run)
    kopf.timer(*RUNS, interval=poll_interval, backoff=poll_interval, when=is_running,
               registry=registry)(watch_run)
    kopf.on.event(*RUNS, registry=registry)(metrics.on_run_event)  # the active-Jobs gauge
    return registry
