"""Reconcile a CodebaseProject: its Secrets, then its database (roles, database, pgvector, schema).

The database is a reconcile step of the project, never a side effect of indexing:
runs wait for `DatabaseReady=True` before they start a Job.

A database belongs to exactly one CodebaseProject. Its name derives from the namespace and
the projectId, and the owning resource's uid is recorded in the database (and on its roles);
a second claimant gets `Ready=False`, reason `Conflict`, and nothing of the first one's is
changed. What a project owns (database, roles, Secrets) is re-checked periodically and
whenever a run finds something missing, so a deleted Secret comes back.
"""
from __future__ import annotations

import base64
import dataclasses
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg
import kopf

from codebase_indexer.identifiers import normalize_project_id, owner_secret_name, project_names, reader_secret_name
from codebase_indexer.postgres import database_url, redact
from codebase_indexer.provisioning import (
    DatabaseClaimed,
    DatabaseOwner,
    DropOutcome,
    check_claim,
    database_claim,
    drop_project_database,
    ensure_project_database,
)

from . import jobs, kube, transitions
from .bodies import namespace_of
from .cadence import refresh_cadence
from .context import Context
from .specs import InvalidSpec, check_project_spec

DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class SecretConflict(Exception):
    """A Secret with the project's Secret name exists and was not made by the operator for it."""


@dataclasses.dataclass(frozen=True)
class Provisioned:
    database: str
    secret_name: str
    reader_secret_name: str


def owner_of(project: Mapping[str, Any]) -> DatabaseOwner:
    meta = project["metadata"]
    return DatabaseOwner(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


async def reconcile(ctx: Context, body: kopf.Body, patch: kopf.Patch, retry: int,
                    logger: logging.Logger | kopf.Logger) -> None:
    """Create what the project needs; idempotent, so restarts and re-runs finish what was started."""
    state, fields, failure = await _provisioned_state(ctx, body, retry)
    _set_state(body, patch, dict(body.status), state, body.metadata.get("generation"), **fields)
    if failure is not None:
        raise failure
    logger.info(state.message)


async def recheck(ctx: Context, project: Mapping[str, Any], logger: logging.Logger) -> None:
    """The periodic check of a listed project: provision again when anything it owns is missing."""
    status = project.get("status") or {}
    reason = transitions.reason_of(status, transitions.DATABASE_READY)
    if reason == "InvalidSpec" or (reason == "DatabaseReady" and await intact(ctx, project)):
        return
    meta = project["metadata"]
    logger.info(f"project {meta['namespace']}/{meta['name']}: something it owns is missing or not ready; "
                "provisioning again")
    state, fields, failure = await _provisioned_state(ctx, project, retry=0)
    update = transitions.project_status(status, state, generation=meta.get("generation"), **fields)
    ops = ([{"op": "add", "path": f"/status/{key}", "value": value} for key, value in update.items()]
           if "status" in project else [{"op": "add", "path": "/status", "value": update}])
    await kube.json_patch(ctx.api, kube.CodebaseProject, meta["namespace"], meta["name"], ops,
                          subresource="status")
    if failure is not None:
        logger.warning(f"project {meta['namespace']}/{meta['name']}: {failure}")


async def _provisioned_state(ctx: Context, project: Mapping[str, Any], retry: int
                             ) -> tuple[transitions.State, dict[str, Any], Exception | None]:
    """Provision, and say how it went: the state, the status fields, the error for kopf (or None)."""
    try:
        provisioned = await provision(ctx, project)
    except InvalidSpec as exc:
        return transitions.invalid_spec(str(exc)), {}, kopf.PermanentError(str(exc))
    except (DatabaseClaimed, SecretConflict) as exc:
        message = f"{exc}; give this project another projectId, or delete the other one"
        # Permanent for this handler; the periodic re-check tries again, and wins once the other is gone.
        return transitions.conflict(message), {}, kopf.PermanentError(message)
    except DATABASE_ERRORS as exc:
        message = f"cannot provision the database: {redact(str(exc))}"
        return (transitions.provisioning_failed(message), {},
                kopf.TemporaryError(message, delay=ctx.config.backoff(retry)))
    fields = {"database_name": provisioned.database, "secret_name": provisioned.secret_name}
    return transitions.database_ready(provisioned.database), fields, None


async def intact(ctx: Context, project: Mapping[str, Any]) -> bool:
    """Whether the project's Secrets, database and roles all exist (no change made)."""
    namespace, name = project["metadata"]["namespace"], project["metadata"]["name"]
    for secret_name in (owner_secret_name(name), reader_secret_name(name)):
        if await kube.get(ctx.api, kube.Secret, namespace, secret_name) is None:
            return False
    try:
        claim = await database_claim(ctx.config.admin_database_url,
                                     project_names(project["spec"]["projectId"], namespace))
    except (*DATABASE_ERRORS, ValueError):
        return False
    return claim.database_exists and claim.roles_exist and claim.owner == owner_of(project)


async def provision(ctx: Context, project: Mapping[str, Any]) -> Provisioned:
    """Secrets and database of a project. Raises InvalidSpec, DatabaseClaimed, SecretConflict or a database error.

    The claim is checked before any Secret is written, so a refused claimant receives nothing.
    """
    meta, spec, status = project["metadata"], project["spec"], project.get("status") or {}
    name, namespace = meta["name"], meta["namespace"]
    dbname = check_project_spec(name, spec, namespace, allow_plaintext_git=ctx.config.allow_plaintext_git)
    refresh_cadence(spec, ctx.config.min_refresh_interval)
    recorded = (status.get("database") or {}).get("name")
    if recorded and recorded != dbname:
        raise InvalidSpec(f"spec.projectId is immutable: this project's database is {recorded}; "
                          f"restore the projectId or create a new project")
    project_id = normalize_project_id(spec["projectId"])
    names = project_names(project_id, namespace)
    owner = owner_of(project)
    admin_url = ctx.config.admin_database_url
    take_over_from = await _claim(ctx, admin_url, project_id, owner)
    owner_password = await ensure_secret(ctx, project, owner_secret_name(name),
                                         lambda password: secret_data(admin_url, names.database,
                                                                      names.owner_role, password))
    reader_password = await ensure_secret(ctx, project, reader_secret_name(name),
                                          lambda password: secret_data(admin_url, names.database,
                                                                       names.reader_role, password))
    await ensure_project_database(admin_url, project_id, namespace=namespace, owner=owner,
                                  owner_password=owner_password, reader_password=reader_password,
                                  take_over_from=take_over_from)
    return Provisioned(dbname, owner_secret_name(name), reader_secret_name(name))


async def _claim(ctx: Context, admin_url: str, project_id: str, owner: DatabaseOwner) -> DatabaseOwner | None:
    """Check the claim before anything is written. None when the database and roles are free or
    ours; the recorded owner when that resource is gone (a Retained database of a deleted project
    is taken over); DatabaseClaimed when another resource holds them, or nobody we know of."""
    names = project_names(project_id, owner.namespace)
    recorded = (await database_claim(admin_url, names)).owner
    if recorded is None or recorded.uid == owner.uid:
        await check_claim(admin_url, project_id, namespace=owner.namespace, owner=owner)
        return None
    holder = await kube.get(ctx.api, kube.CodebaseProject, recorded.namespace, recorded.name)
    if holder is not None and holder["metadata"].get("uid") == recorded.uid:
        raise DatabaseClaimed(f"database {names.database}", recorded)
    await check_claim(admin_url, project_id, namespace=owner.namespace, owner=owner, take_over_from=recorded)
    return recorded


async def ensure_secret(ctx: Context, project: Mapping[str, Any], secret_name: str, data_for) -> str:
    """Create the Secret (owned by the project) if missing, or adopt the operator's own; return its password.

    The password is generated once and then read back from the Secret, so a restart never
    rotates it under a running indexer. A Secret of that name that the operator did not make
    for this project is refused (SecretConflict), never read or rewritten.
    """
    namespace, name = project["metadata"]["namespace"], project["metadata"]["name"]
    existing = await kube.get(ctx.api, kube.Secret, namespace, secret_name)
    if existing is not None:
        return await _reuse_secret(ctx, project, existing, data_for)
    password = secrets.token_urlsafe(24)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name,
            "namespace": namespace,
            "labels": _secret_labels(name),
            "ownerReferences": [jobs.owner_reference(project, "CodebaseProject")],
        },
        "data": data_for(password),
    }
    created, was_created = await kube.create(ctx.api, kube.Secret, manifest)
    if not was_created:  # created concurrently: use the winner's, if it is ours
        return await _reuse_secret(ctx, project, created, data_for)
    return password


async def _reuse_secret(ctx: Context, project: Mapping[str, Any], existing: Mapping[str, Any], data_for) -> str:
    meta = existing.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = project["metadata"]["name"]
    data = existing.get("data") or {}
    if labels.get("app.kubernetes.io/managed-by") != jobs.MANAGED_BY or labels.get(jobs.PROJECT_LABEL) != name \
            or "password" not in data:
        raise SecretConflict(f"Secret {meta.get('name')} exists and was not created by the operator for "
                             f"this project; delete or rename it")
    password = base64.b64decode(data["password"]).decode()
    ops: list[dict[str, Any]] = []
    expected = data_for(password)
    if data != expected:
        ops.append({"op": "replace", "path": "/data", "value": expected})
    ours = jobs.owner_reference(project, "CodebaseProject")
    if not any(ref.get("uid") == ours["uid"] for ref in meta.get("ownerReferences") or ()):
        # An earlier project of this name left it (garbage collection pending): it is ours now.
        ops.append({"op": "add", "path": "/metadata/ownerReferences", "value": [ours]})
    if ops:
        await kube.json_patch(ctx.api, kube.Secret, meta["namespace"], meta["name"], ops)
    return password


def _secret_labels(project_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "codebase-mcp",
            "app.kubernetes.io/managed-by": jobs.MANAGED_BY,
            jobs.PROJECT_LABEL: project_name}


def secret_data(admin_url: str, dbname: str, role: str, password: str) -> dict[str, str]:
    """A Secret's keys: one role's credentials and the project database URL as that role."""
    values = {
        "username": role,
        "password": password,
        "database": dbname,
        jobs.DATABASE_URL_KEY: database_url(admin_url, dbname, user=role, password=password),
    }
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


async def drop(ctx: Context, body: kopf.Body, retry: int, logger: logging.Logger | kopf.Logger) -> None:
    """reclaimPolicy Delete: drop the project's database and roles, if they are this project's."""
    project_id, namespace = body.spec.get("projectId", ""), namespace_of(body)
    try:
        dbname = project_names(project_id, namespace).database
    except ValueError:
        return  # an invalid project never had a database
    try:
        outcome = await drop_project_database(ctx.config.admin_database_url, project_id, namespace=namespace,
                                              owner=owner_of(body))
    except DATABASE_ERRORS as exc:
        message = f"cannot drop database {dbname}: {redact(str(exc))}"
        kopf.event(body, type="Warning", reason="DropFailed", message=message)
        raise kopf.TemporaryError(message, delay=ctx.config.backoff(retry)) from None
    message = {
        DropOutcome.DROPPED: f"dropped database {dbname}",
        DropOutcome.ABSENT: f"database {dbname} did not exist",
        DropOutcome.NOT_OWNED: f"kept database {dbname}: it belongs to another project",
    }[outcome]
    kopf.event(body, type="Normal", reason="DatabaseDropped" if outcome else "DatabaseKept", message=message)
    logger.info(message)


def _set_state(body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any], state: transitions.State,
               generation: int | None, **fields: Any) -> None:
    if transitions.is_news(status, state, transitions.DATABASE_READY):
        kopf.event(body, type=state.event_type, reason=state.reason, message=state.message)
    patch.status.update(transitions.project_status(status, state, generation=generation, **fields))
