"""Keep a project's finished IndexingRuns within `spec.runHistory`, as a CronJob keeps its Jobs.

A refreshing project creates a run every interval; without a limit they pile up. After a run
finishes, the oldest finished runs beyond the limits (succeeded and failed counted apart, by
completion time) are deleted. Active runs are never candidates.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from . import conditions, kube, transitions
from .context import Context
from .specs import InvalidSpec

DEFAULT_SUCCEEDED, DEFAULT_FAILED = 3, 1
MAX_KEPT = 100
Logger = logging.Logger | kopf.Logger


def limits(project_spec: Mapping[str, Any]) -> tuple[int, int]:
    """(succeeded, failed) runs to keep; InvalidSpec for a value the CRD schema should have refused."""
    history = project_spec.get("runHistory")
    if history is None:
        return DEFAULT_SUCCEEDED, DEFAULT_FAILED
    if not isinstance(history, Mapping):
        raise InvalidSpec("spec.runHistory must be an object {succeeded, failed}")
    return (_limit(history, "succeeded", DEFAULT_SUCCEEDED), _limit(history, "failed", DEFAULT_FAILED))


def _limit(history: Mapping[str, Any], key: str, default: int) -> int:
    value = history.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEPT:
        raise InvalidSpec(f"spec.runHistory.{key} must be an integer from 0 to {MAX_KEPT}, not {value!r}")
    return value


def outcome(run: Mapping[str, Any]) -> bool | None:
    """True for a succeeded run, False for a failed (or cancelled) one, None while it is active."""
    condition = conditions.find((run.get("status") or {}).get("conditions"), transitions.SUCCEEDED)
    status = (condition or {}).get("status")
    return {"True": True, "False": False}.get(status or "")


def expired(runs: Iterable[Mapping[str, Any]], project_name: str, keep_succeeded: int,
            keep_failed: int, newest: str | None = None) -> list[str]:
    """Names of the project's finished runs beyond the limits, oldest first. `newest` is the run that
    has just finished: newer than every other whatever their (one-second) timestamps say."""
    finished: dict[bool, list[Mapping[str, Any]]] = {True: [], False: []}
    for run in runs:
        meta = run.get("metadata") or {}
        if ((run.get("spec") or {}).get("projectRef") or {}).get("name") != project_name \
                or meta.get("deletionTimestamp"):
            continue
        result = outcome(run)
        if result is not None:
            finished[result].append(run)
    doomed: list[Mapping[str, Any]] = []
    for result, keep in ((True, keep_succeeded), (False, keep_failed)):
        newest_first = sorted(finished[result], key=lambda run: _finish_order(run, newest), reverse=True)
        doomed.extend(newest_first[keep:])
    return [run["metadata"]["name"] for run in sorted(doomed, key=lambda run: _finish_order(run, newest))]


def _finish_order(run: Mapping[str, Any], newest: str | None) -> tuple[bool, str, str, str]:
    meta, status = run.get("metadata") or {}, run.get("status") or {}
    # A run refused before it started (InvalidSpec) has no completionTime: its condition says when.
    condition = conditions.find(status.get("conditions"), transitions.SUCCEEDED) or {}
    finished_at = status.get("completionTime") or condition.get("lastTransitionTime") or ""
    return (meta.get("name") == newest, finished_at, meta.get("creationTimestamp") or "", meta.get("name") or "")


async def prune(ctx: Context, project: Mapping[str, Any], just_finished: Mapping[str, Any],
                logger: Logger) -> list[str]:
    """Delete the project's expired runs; `just_finished` is the run whose end is being written now
    (its finished status is not stored yet). Returns the deleted names; failures are logged, not raised:
    the next run's end prunes again."""
    namespace, project_name = project["metadata"]["namespace"], project["metadata"]["name"]
    try:
        keep_succeeded, keep_failed = limits(project.get("spec") or {})
    except InvalidSpec as exc:
        logger.warning(f"project {namespace}/{project_name}: not pruning its runs: {exc}")
        return []
    name = just_finished["metadata"]["name"]
    try:
        stored = await kube.list_all(ctx.api, kube.IndexingRun, namespace)
        runs = [run for run in stored if run["metadata"]["name"] != name] + [just_finished]
        doomed = expired(runs, project_name, keep_succeeded, keep_failed, newest=name)
        for doomed_name in doomed:
            await kube.delete(ctx.api, kube.IndexingRun, namespace, doomed_name)
    except kube.API_ERRORS as exc:
        logger.warning(f"project {namespace}/{project_name}: cannot prune its finished runs: {exc}")
        return []
    if doomed:
        logger.info(f"project {namespace}/{project_name}: deleted finished runs beyond spec.runHistory: "
                    f"{', '.join(doomed)}")
    return doomed
