"""Reconcile a CodebaseProject: its Secret, then its database (role, database, pgvector, schema).

The database is a reconcile step of the project, never a side effect of indexing:
runs wait for `DatabaseReady=True` before they start a Job.
"""
from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg
import kopf

from codebase_indexer.identifiers import database_name, normalize_project_id, owner_role_name
from codebase_indexer.postgres import database_url, redact
from codebase_indexer.provisioning import drop_project_database, ensure_project_database

from . import jobs, kube, transitions
from .context import Context
from .specs import InvalidSpec, check_project_spec

DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def reconcile(ctx: Context, body: kopf.Body, patch: kopf.Patch, retry: int,
                    logger: logging.Logger | kopf.Logger) -> None:
    """Create what the project needs; idempotent, so restarts and re-runs finish what was started."""
    name, generation = body.metadata.name, body.metadata.get("generation")
    status = dict(body.status)
    try:
        dbname = check_project_spec(name, body.spec, allow_plaintext_git=ctx.config.allow_plaintext_git)
        recorded = (status.get("database") or {}).get("name")
        if recorded and recorded != dbname:
            raise InvalidSpec(f"spec.projectId is immutable: this project's database is {recorded}; "
                              f"restore the projectId or create a new project")
    except InvalidSpec as exc:
        _set_state(body, patch, status, transitions.invalid_spec(str(exc)), generation)
        raise kopf.PermanentError(str(exc)) from None
    project_id = normalize_project_id(body.spec["projectId"])
    secret_name = jobs.secret_name(name)
    try:
        password = await ensure_secret(ctx, body, project_id, secret_name)
        await ensure_project_database(ctx.config.admin_database_url, project_id, owner_password=password)
    except DATABASE_ERRORS as exc:
        message = f"cannot provision database {dbname}: {redact(str(exc))}"
        _set_state(body, patch, status, transitions.provisioning_failed(message), generation)
        raise kopf.TemporaryError(message, delay=ctx.config.backoff(retry)) from None
    _set_state(body, patch, status, transitions.database_ready(dbname), generation,
               database_name=dbname, secret_name=secret_name)
    logger.info(f"database {dbname} is ready")


async def ensure_secret(ctx: Context, project: kopf.Body, project_id: str, secret_name: str) -> str:
    """Create the project's Secret (owned by the project) if missing; return the owner role's password.

    The password is generated once and then read back from the Secret, so a restart
    never rotates it under a running indexer.
    """
    namespace = project.metadata.namespace
    existing = await kube.get(ctx.api, kube.Secret, namespace, secret_name)
    if existing is not None:
        data = existing.get("data") or {}
        if "password" in data:
            password = base64.b64decode(data["password"]).decode()
            expected = secret_data(ctx.config.admin_database_url, project_id, password)
            if data != expected:
                await kube.json_patch(ctx.api, kube.Secret, namespace, secret_name,
                                      [{"op": "replace", "path": "/data", "value": expected}])
            return password
    password = secrets.token_urlsafe(24)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "codebase-mcp",
                       "app.kubernetes.io/managed-by": jobs.MANAGED_BY,
                       jobs.PROJECT_LABEL: project.metadata.name},
            "ownerReferences": [jobs.owner_reference(project, "CodebaseProject")],
        },
        "data": secret_data(ctx.config.admin_database_url, project_id, password),
    }
    created, was_created = await kube.create(ctx.api, kube.Secret, manifest)
    if not was_created:  # created concurrently: use the winner's password
        return base64.b64decode(created["data"]["password"]).decode()
    return password


def secret_data(admin_url: str, project_id: str, password: str) -> dict[str, str]:
    """The Secret's keys: the owner role's credentials and the project database URL pods use."""
    dbname, role = database_name(project_id), owner_role_name(project_id)
    values = {
        "username": role,
        "password": password,
        "database": dbname,
        jobs.DATABASE_URL_KEY: database_url(admin_url, dbname, user=role, password=password),
    }
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


async def drop(ctx: Context, body: kopf.Body, retry: int, logger: logging.Logger | kopf.Logger) -> None:
    """reclaimPolicy Delete: drop the project's database and owner role (the Secret goes with its owner)."""
    project_id = body.spec.get("projectId")
    try:
        dbname = database_name(project_id)
    except ValueError:
        return  # an invalid project never had a database
    try:
        dropped = await drop_project_database(ctx.config.admin_database_url, project_id)
    except DATABASE_ERRORS as exc:
        message = f"cannot drop database {dbname}: {redact(str(exc))}"
        kopf.event(body, type="Warning", reason="DropFailed", message=message)
        raise kopf.TemporaryError(message, delay=ctx.config.backoff(retry)) from None
    message = f"dropped database {dbname}" if dropped else f"database {dbname} did not exist"
    kopf.event(body, type="Normal", reason="DatabaseDropped", message=message)
    logger.info(message)


def _set_state(body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any], state: transitions.State,
               generation: int | None, **fields: Any) -> None:
    if transitions.is_news(status, state, transitions.DATABASE_READY):
        kopf.event(body, type=state.event_type, reason=state.reason, message=state.message)
    patch.status.update(transitions.project_status(status, state, generation=generation, **fields))
