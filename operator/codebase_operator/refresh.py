"""Runs the operator starts on its own: on request (`kubectl annotate cbp NAME codebase.mcp.dev/refresh=now`)
and on a schedule (`spec.refresh.interval`).

A request is absorbed by a run of the project that is not finished yet: that run indexes the
tree as it is when it starts, or is about to. Run names derive from the project's uid and the
request, so a handler that runs twice for one request creates one run.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from codebase_indexer import contract

from . import API_VERSION, conditions, events, git_remote, kube, sweeps, transitions
from .cadence import Cadence, parse_interval, refresh_cadence, refresh_interval
from .context import Context
from .specs import MAX_NAME_LENGTH, InvalidSpec, check_git_url, project_source

__all__ = ["parse_interval", "refresh_interval", "refresh_cadence", "next_refresh", "refresh_all",
           "on_refresh_annotation", "refresh_forever", "run_name"]
Logger = logging.Logger | kopf.Logger
log = logging.getLogger(__name__)
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


# spec.refresh: {interval: "15m"} or {schedule: "0 * * * *"}. One task of the operator checks the projects
# that ask for it (a kopf timer would put a finalizer on every project, and a Retained project needs none).

def _time(text: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def next_refresh(status: Mapping[str, Any], cadence: Cadence | float) -> datetime.datetime | None:
    """When the next run is due: the cadence's next time after the last success, the last run's end
    or the last check of a git remote, whichever is latest (a failing project or remote is not
    retried in a loop); None when it never ran (due now)."""
    if not isinstance(cadence, Cadence):
        cadence = Cadence("interval", float(cadence))
    times = [t for t in (_time(status.get("lastIndexedTime")),
                         _time((status.get("lastRun") or {}).get("completionTime")),
                         _time((status.get("remote") or {}).get("checkedTime"))) if t is not None]
    return cadence.after(max(times)) if times else None


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Outcome = tuple[dict[str, Any], transitions.State | None]  # status fields to write, the remote's condition


async def refresh_project(ctx: Context, project: Mapping[str, Any], now: datetime.datetime, logger: Logger) -> None:
    """Start the project's run when it is due and none is unfinished (for a git source, only when the
    remote's commit moved); keep status.nextRefreshTime current."""
    status = project.get("status") or {}
    if transitions.reason_of(status, transitions.DATABASE_READY) != "DatabaseReady":
        return  # not provisioned yet, or refused (an invalid spec.refresh is reported there, once)
    cadence = refresh_cadence(project.get("spec") or {}, ctx.config.min_refresh_interval)
    if cadence is None:
        return
    due = next_refresh(status, cadence)
    fields: dict[str, Any] = {}
    remote_state: transitions.State | None = None
    if due is None or due <= now:
        fields, remote_state = await _refresh_due(ctx, project, cadence.trigger, due, now, logger)
        due = cadence.after(now)  # if this run succeeds now; rewritten after it ends
    if status.get("nextRefreshTime") != _rfc3339(due):
        fields["nextRefreshTime"] = _rfc3339(due)
    if fields or remote_state is not None:
        await _write_status(ctx, project, fields, remote_state)


async def _refresh_due(ctx: Context, project: Mapping[str, Any], trigger: str, due: datetime.datetime | None,
                       now: datetime.datetime, logger: Logger) -> Outcome:
    """A due refresh: nothing while a run is unfinished; a git source asks its remote first."""
    meta, status = project["metadata"], project.get("status") or {}
    if unfinished_runs(await kube.list_all(ctx.api, kube.IndexingRun, meta["namespace"]), meta["name"]):
        return {}, None
    request = f"{trigger}\0{_rfc3339(due) if due else 'first'}"
    source = project_source(project.get("spec") or {})
    if source.git_url is None:
        await request_run(ctx.api, project, request, trigger, logger)
        return {}, None
    what = source.git_ref or "HEAD"
    try:
        check_git_url(source.git_url, allow_plaintext=ctx.config.allow_plaintext_git)  # this operator's policy now
        commit = await git_remote.remote_commit(
            source, await git_remote.source_credentials(ctx, meta["namespace"], source))
    except (git_remote.RemoteCheckFailed, InvalidSpec) as exc:
        # No run: the clone would most likely fail the same way. The next check is an interval away.
        state = transitions.remote_check_failed(f"cannot ask the git remote where {what} is ({exc}); "
                                                f"no run now, the next check is in one refresh interval")
        logger.warning(f"project {meta['namespace']}/{meta['name']}: {state.message}")
        if transitions.is_news(status, state, transitions.REMOTE_CHECKED):
            await kube.create_new(ctx.api, kube.Event,
                                  events.event_manifest(project, state.event_type, state.reason, state.message))
        return {"remote": {**(status.get("remote") or {}), "checkedTime": _rfc3339(now)}}, state
    remote = {"commit": commit, "checkedTime": _rfc3339(now)}
    if commit == status.get("lastIndexedCommit"):
        return {"remote": remote}, transitions.commit_unchanged(what, commit)
    name, _ = await request_run(ctx.api, project, f"{request}\0{commit}", trigger, logger)
    return {"remote": remote}, transitions.commit_moved(what, commit, name)


async def _write_status(ctx: Context, project: Mapping[str, Any], fields: Mapping[str, Any],
                        remote_state: transitions.State | None) -> None:
    """Write the fields (and the remote's condition) onto the project as it is now: the conditions list
    is replaced whole, so the write tests the resourceVersion it read and reads again on a conflict."""
    meta = project["metadata"]
    for _ in range(3):
        fresh = await kube.get(ctx.api, kube.CodebaseProject, meta["namespace"], meta["name"])
        if fresh is None or "status" not in fresh or fresh["metadata"].get("uid") != meta.get("uid"):
            return
        ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion",
                                      "value": fresh["metadata"].get("resourceVersion")}]
        ops += [{"op": "add", "path": f"/status/{key}", "value": value} for key, value in fields.items()]
        if remote_state is not None:
            ops.append({"op": "add", "path": "/status/conditions", "value": conditions.set_condition(
                fresh["status"].get("conditions"), type_=transitions.REMOTE_CHECKED, status=remote_state.status,
                reason=remote_state.reason, message=remote_state.message,
                observed_generation=fresh["metadata"].get("generation"))})
        try:
            await kube.json_patch(ctx.api, kube.CodebaseProject, meta["namespace"], meta["name"], ops,
                                  subresource="status")
            return
        except kube.Conflict:
            continue


async def refresh_forever(ctx: Context) -> None:
    await sweeps.every(lambda: ctx.config.refresh_check_interval, lambda: refresh_all(ctx), first_wait=False)


async def refresh_all(ctx: Context, now: datetime.datetime | None = None) -> None:
    """One sweep: every project with spec.refresh, as of `now` (the current time unless a test gives one)."""
    now = now or datetime.datetime.now(datetime.UTC)
    await sweeps.sweep_projects(ctx, "refresh", lambda project: refresh_project(ctx, project, now, log),
                                wanted=lambda project: bool((project.get("spec") or {}).get("refresh")))
