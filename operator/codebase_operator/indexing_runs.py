"""Reconcile an IndexingRun: wait for the database, take the project's turn, run the Job, report back.

At most one run per project is active. The project's `status.activeRun` is the
lock: a run claims it with a JSON patch that tests the project's resourceVersion,
so two operator workers (or two replicas) can never both win; the oldest
unfinished run is first in line.

Progress is read from the project database (`index_runs`, written by the indexer
about once a second) and copied into `status.progress` while the Job runs. That
keeps the indexer's ServiceAccount free of any Kubernetes permission: it only
talks to its own database, with the owner role from the project's Secret.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, NoReturn, cast

import kopf

from codebase_indexer.git_access import COMMIT
from codebase_indexer.identifiers import database_name
from codebase_indexer.index_runs import read_run
from codebase_indexer.outcomes import SUCCEEDED
from codebase_indexer.postgres import database_url, redact

from . import codebase_projects, conditions, git_remote, jobs, kube, metrics, run_history, transitions
from .bodies import namespace_of
from .config import OperatorConfig
from .context import Context
from .secret_refs import check_secret_references
from .specs import InvalidSpec, Source, check_embedding_url, check_git_url, check_run_spec, run_source
from .waits import Waiting

_CLAIM_ATTEMPTS = 5
Logger = logging.Logger | kopf.Logger


async def start(ctx: Context, body: kopf.Body, patch: kopf.Patch, retry: int, logger: Logger) -> None:
    """Bring a new run to Running: checks, database wait, queue, Job. Retried by kopf until then."""
    status = dict(body.status)
    if transitions.is_finished(status) or status.get("jobName"):
        return  # finished, or the timer is watching its Job
    name, namespace = body.metadata.name, namespace_of(body)
    try:
        project_name = check_run_spec(name, body.spec)
    except InvalidSpec as exc:
        _enter(body, patch, status, transitions.invalid_spec(str(exc)))
        return
    if body.spec.get("cancel"):
        _enter(body, patch, status, transitions.cancelled("cancelled before it started"))
        await _prune_history(ctx, body, patch, status, await release(ctx, namespace, project_name, name), logger)
        return

    project = await kube.get(ctx.api, kube.CodebaseProject, namespace, project_name)
    if project is None:
        _wait(ctx, body, patch, status, retry,
              transitions.waiting_for_database(project_name, "the project does not exist yet"))
    project_status = project.get("status") or {}
    if not conditions.is_true(project_status.get("conditions"), transitions.DATABASE_READY):
        detail = conditions.find(project_status.get("conditions"), transitions.DATABASE_READY)
        _wait(ctx, body, patch, status, retry, transitions.waiting_for_database(
            project_name, detail["message"] if detail else "it is not provisioned yet"))

    secret = jobs.secret_name(project_name)
    if await kube.get(ctx.api, kube.Secret, namespace, secret) is None:
        await _restore_project(ctx, project, logger)
        if await kube.get(ctx.api, kube.Secret, namespace, secret) is None:
            _wait(ctx, body, patch, status, retry, transitions.waiting_for_database(
                project_name, f"its Secret {secret} is missing (the project's reconcile creates it)"))

    try:
        source = run_source(body.spec, project["spec"])
        check_source_policy(source, project["spec"], ctx.config)
        await check_secret_references(ctx, namespace, project["spec"], source)
        manifest = jobs.build_job(body, project, source, ctx.config)
    except InvalidSpec as exc:
        _enter(body, patch, status, transitions.invalid_spec(str(exc)))
        await _prune_history(ctx, body, patch, status, await release(ctx, namespace, project_name, name), logger)
        return

    blocker = await claim(ctx, project, body)
    if blocker is not None:
        _wait(ctx, body, patch, status, retry, transitions.queued(project_name, blocker))

    job_name = manifest["metadata"]["name"]
    # A Job made before an operator restart already holds its slot (and its pinned commit).
    if await kube.get(ctx.api, kube.Job, namespace, job_name) is None:
        pinned = await pin_commit(ctx, namespace, source, manifest["spec"]["completions"], logger)
        if pinned is not source:
            manifest = jobs.build_job(body, project, pinned, ctx.config)
        await _create_job(ctx, body, patch, status, manifest, logger)
    _enter(body, patch, status, transitions.pending(job_name), jobName=job_name,
           runId=body.metadata.uid, startTime=status.get("startTime") or conditions.now_rfc3339())


def check_source_policy(source: Source, project_spec: Mapping[str, Any], config: OperatorConfig) -> None:
    """What this operator lets a project use, checked at every run (the operator's flags may have changed)."""
    if source.git_url is not None:
        check_git_url(source.git_url, allow_plaintext=config.allow_plaintext_git)
    embedding = project_spec.get("embedding") or {}
    if embedding.get("provider") not in (None, "local"):
        check_embedding_url(embedding.get("url"), config.allowed_embedding_urls)


async def pin_commit(ctx: Context, namespace: str, source: Source, shards: int, logger: Logger) -> Source:
    """The source with its ref's commit, asked of the remote now, when several shards will clone it:
    each shard clones the ref itself, and a branch that moved while they start would give them
    different trees. When the remote cannot say, the shards clone the ref as it is then (a warning)."""
    if source.git_url is None or shards < 2 or (source.git_ref and COMMIT.fullmatch(source.git_ref)):
        return source
    try:
        credentials = await git_remote.source_credentials(ctx, namespace, source)
        commit = await git_remote.remote_commit(source, credentials)
    except git_remote.RemoteCheckFailed as exc:
        logger.warning(f"the shards clone {source.git_ref or 'HEAD'} each, unpinned: {exc}")
        return source
    return dataclasses.replace(source, git_commit=commit)


async def _create_job(ctx: Context, body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any],
                      manifest: Mapping[str, Any], logger: Logger) -> None:
    """Create the run's Job within the cluster-wide ceiling; wait while none is free."""
    namespace, job_name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    async with ctx.job_slots:
        active = await active_jobs(ctx, namespace)
        if active >= ctx.config.max_active_jobs:
            _wait(ctx, body, patch, status, 0, transitions.waiting_for_slot(active, ctx.config.max_active_jobs),
                  delay=ctx.config.poll_interval)
        _, created = await kube.create(ctx.api, kube.Job, manifest)
    if created:
        logger.info(f"created Job {job_name}")


async def active_jobs(ctx: Context, namespace: str) -> int:
    """Indexer Jobs not finished yet, in every namespace where runs are (`namespace` included).

    Jobs are listed per namespace: the operator may read Jobs only where its Role is bound,
    and runs (which it may list everywhere it watches) only exist where it can start Jobs.
    """
    selector = {"app.kubernetes.io/managed-by": jobs.MANAGED_BY, "app.kubernetes.io/name": jobs.INDEXER_NAME}
    found = [job for scope in sorted(await _namespaces_with_runs(ctx) | {namespace})
             for job in await kube.list_labelled(ctx.api, kube.Job, scope, selector)]
    return sum(1 for job in found
               if jobs.job_state(job).phase == "Active" and not job["metadata"].get("deletionTimestamp"))


async def _namespaces_with_runs(ctx: Context) -> set[str]:
    exact = [scope for scope in ctx.namespaces if not set("*?[") & set(scope)]
    if ctx.namespaces and len(exact) == len(ctx.namespaces):
        return set(exact)
    runs = await kube.list_all(ctx.api, kube.IndexingRun, None)  # cluster-wide, or namespace globs
    return {run["metadata"]["namespace"] for run in runs if not transitions.is_finished(run.get("status"))}


async def watch(ctx: Context, body: kopf.Body, patch: kopf.Patch, logger: Logger) -> None:
    """A running run's periodic check: cancellation, the Job's end, or progress."""
    status = dict(body.status)
    if transitions.is_finished(status):
        return
    namespace = namespace_of(body)
    project_name, job_name = body.spec["projectRef"]["name"], status["jobName"]
    job = await kube.get(ctx.api, kube.Job, namespace, job_name)

    if body.spec.get("cancel"):
        if job is not None:
            await kube.delete(ctx.api, kube.Job, namespace, job_name)
        await _finish(ctx, body, patch, status, transitions.cancelled(f"cancelled: the Job {job_name} was deleted"),
                      summary=None, logger=logger)
        return
    if job is None:
        await _finish(ctx, body, patch, status, transitions.job_lost(job_name), summary=None, logger=logger)
        return

    state = jobs.job_state(job)
    shards = int((job.get("spec") or {}).get("completions") or 1)
    row = await _run_row(ctx, body, project_name)
    current = transitions.progress(row, shards)
    if state.phase == "Active":
        if jobs.has_started(job) and transitions.reason_of(status) != "Running":
            _enter(body, patch, status, transitions.running(job_name))
        if current is not None and current != status.get("progress"):
            patch.status["progress"] = current
        return

    pods = jobs.pods_of_job(await kube.list_labelled(ctx.api, kube.Pod, namespace, {"job-name": job_name}), job)
    report = jobs.final_report(pods, succeeded=state.phase == "Succeeded")
    commit = jobs.report_commit(report) if state.phase == "Succeeded" else None
    if state.phase == "Succeeded" and row and row.get("state") == SUCCEEDED and row.get("summary"):
        report = {"ok": True, "summary": row["summary"]}  # the run's own record, whichever pod spoke last
    if report is None:
        logger.warning(f"Job {job_name} left no report in its Pods' termination messages")
    if current is not None:
        status["progress"] = current
    await _finish(ctx, body, patch, status, transitions.finished(
        state, report, shards=shards, failed_indexes=jobs.failed_indexes(job)),
        summary=transitions.summary(report), logger=logger, commit=commit)


async def _restore_project(ctx: Context, project: Mapping[str, Any], logger: Logger) -> None:
    """Something the project owns is missing (a deleted Secret): provision it again now, not at the next check."""
    try:
        await codebase_projects.provision(ctx, project)
        logger.info(f"restored what project {project['metadata']['name']} was missing")
    except Exception as exc:  # the run keeps waiting; the project's own reconcile reports why
        logger.warning(f"cannot restore project {project['metadata']['name']}: {redact(str(exc))}")


async def claim(ctx: Context, project: Mapping[str, Any], run: kopf.Body) -> str | None:
    """Take the project's turn for `run`; None when taken, else the name of the run ahead of it."""
    namespace, project_name, name = namespace_of(run), project["metadata"]["name"], run.metadata.name
    for _ in range(_CLAIM_ATTEMPTS):
        active = (project.get("status") or {}).get("activeRun")
        if active == name:
            return None
        if active and await _is_live(ctx, namespace, active):
            return active
        ahead = await _first_in_line(ctx, namespace, project_name)
        if ahead is not None and ahead != name:
            return ahead
        try:
            await kube.json_patch(ctx.api, kube.CodebaseProject, namespace, project_name, [
                {"op": "test", "path": "/metadata/resourceVersion",
                 "value": project["metadata"]["resourceVersion"]},
                {"op": "add", "path": "/status/activeRun", "value": name},
            ], subresource="status")
            return None
        except kube.Conflict:
            fresh = await kube.get(ctx.api, kube.CodebaseProject, namespace, project_name)
            if fresh is None:
                return project_name
            project = fresh
    return (project.get("status") or {}).get("activeRun") or project_name


async def release(ctx: Context, namespace: str, project_name: str, run_name: str,
                  last_run: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Give the project's turn back (if `run_name` holds it) and record its last run.

    Returns the project as last read (None when it is gone), for the caller's Event.
    """
    project = None
    for _ in range(_CLAIM_ATTEMPTS):
        project = await kube.get(ctx.api, kube.CodebaseProject, namespace, project_name)
        if project is None:
            return None
        ops: list[dict[str, Any]] = []
        if (project.get("status") or {}).get("activeRun") == run_name:
            ops.append({"op": "remove", "path": "/status/activeRun"})
        if last_run is not None:
            ops.append({"op": "add", "path": "/status/lastRun", "value": dict(last_run)})
            if last_run.get("succeeded"):
                ops.append({"op": "add", "path": "/status/lastIndexedTime", "value": last_run["completionTime"]})
                ops += _indexed_commit_ops(project.get("status") or {}, last_run.get("commit"))
        if not ops or "status" not in project:
            return project
        try:
            await kube.json_patch(ctx.api, kube.CodebaseProject, namespace, project_name, [
                {"op": "test", "path": "/metadata/resourceVersion",
                 "value": project["metadata"]["resourceVersion"]}, *ops], subresource="status")
            return project
        except kube.Conflict:
            continue
    return project


def _indexed_commit_ops(status: Mapping[str, Any], commit: str | None) -> list[dict[str, Any]]:
    """Record the commit a successful run indexed; a run without one (a path source) leaves none behind."""
    if commit:
        return [{"op": "add", "path": "/status/lastIndexedCommit", "value": commit},
                {"op": "add", "path": "/status/lastIndexedCommitShort", "value": commit[:12]}]
    return [{"op": "remove", "path": f"/status/{key}"} for key in ("lastIndexedCommit", "lastIndexedCommitShort")
            if key in status]


async def _finish(ctx: Context, body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any],
                  state: transitions.State, *, summary: Mapping[str, Any] | None, logger: Logger,
                  commit: str | None = None) -> None:
    now = conditions.now_rfc3339()
    fields: dict[str, Any] = {"progress": transitions.final_progress(summary, status.get("progress"))}
    if summary:
        fields["summary"] = dict(summary)
    if commit:
        fields["commit"] = commit
    _enter(body, patch, status, state, now=now, **fields)
    metrics.observe_run_end(body.metadata.uid, status, state.reason, now)
    last_run = transitions.last_run(body.metadata.name, now, state.status == "True", summary, commit)
    project = await release(ctx, namespace_of(body), body.spec["projectRef"]["name"], body.metadata.name,
                            last_run)
    if project is not None:
        kopf.event(cast(kopf.Body, project), type=state.event_type,  # kopf reads the raw object's metadata
                   reason=f"Run{state.reason}",
                   message=f"run {body.metadata.name}: {state.message}")
    await _prune_history(ctx, body, patch, status, project, logger)


async def _prune_history(ctx: Context, body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any],
                         project: Mapping[str, Any] | None, logger: Logger) -> None:
    """After this run finished: its project's older finished runs beyond spec.runHistory go."""
    if project is None:
        return
    finished = {"metadata": dict(body.metadata), "spec": dict(body.spec),
                "status": {**status, **dict(patch.get("status") or {})}}
    await run_history.prune(ctx, project, finished, logger)


async def _run_row(ctx: Context, run: kopf.Body, project_name: str) -> dict[str, Any] | None:
    """The run's row in its project database (progress, shards, summary), or None."""
    project = await kube.get(ctx.api, kube.CodebaseProject, namespace_of(run), project_name)
    if project is None:
        return None
    url = database_url(ctx.config.admin_database_url,
                       database_name(project["spec"]["projectId"], namespace_of(run)))
    try:
        return await read_run(url, run.metadata.uid)
    except Exception:  # progress is best-effort; the Job's end is what counts
        return None


async def _is_live(ctx: Context, namespace: str, run_name: str) -> bool:
    run = await kube.get(ctx.api, kube.IndexingRun, namespace, run_name)
    return run is not None and not transitions.is_finished(run.get("status"))


async def _first_in_line(ctx: Context, namespace: str, project_name: str) -> str | None:
    """The oldest unfinished run of the project that can still start (by creation time, then name)."""
    runs = await kube.list_all(ctx.api, kube.IndexingRun, namespace)
    waiting = [run for run in runs
               if (run.get("spec") or {}).get("projectRef", {}).get("name") == project_name
               and not transitions.is_finished(run.get("status"))
               and not (run.get("spec") or {}).get("cancel")
               and not (run.get("metadata") or {}).get("deletionTimestamp")]
    if not waiting:
        return None
    first = min(waiting, key=lambda run: (run["metadata"].get("creationTimestamp") or "", run["metadata"]["name"]))
    return first["metadata"]["name"]


def _enter(body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any], state: transitions.State,
           now: str | None = None, **fields: Any) -> None:
    if transitions.is_news(status, state):
        kopf.event(body, type=state.event_type, reason=state.reason, message=state.message)
    patch.status.update(transitions.run_status(status, state, generation=body.metadata.get("generation"),
                                               now=now, **fields))


def _wait(ctx: Context, body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any], retry: int,
          state: transitions.State, *, delay: float | None = None) -> NoReturn:
    _enter(body, patch, status, state)
    raise Waiting(state.message, delay=ctx.config.backoff(retry) if delay is None else delay)
