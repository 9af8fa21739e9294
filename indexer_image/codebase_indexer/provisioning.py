"""Create (and drop) a project's database: its owner role, the vector extension, the schema.

Used by the operator's project reconcile step and by the local control plane.
Every step is idempotent, so a retry or a restart finishes what was started.
"""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from .identifiers import database_name, normalize_project_id, owner_role_name, quote_ident
from .postgres import database_url
from .schema import migrate


@dataclass(frozen=True)
class ProjectDatabase:
    project_id: str
    database_name: str
    owner_role: str
    url: str  # connection URL of the project database (admin credentials unless owner ones given)


async def ensure_project_database(admin_url: str, project_id: str, *,
                                  owner_password: str | None = None) -> ProjectDatabase:
    """Create the project's role and database if missing, enable pgvector, migrate the schema.

    With `owner_password`, the owner role can log in with it and the returned URL
    uses those credentials; otherwise it uses the admin's.
    """
    pid = normalize_project_id(project_id)
    dbname, role = database_name(pid), owner_role_name(pid)
    admin = await asyncpg.connect(admin_url)
    try:
        await _ensure_role(admin, role, owner_password)
        await _ensure_database(admin, dbname, role)
    finally:
        await admin.close()
    admin_project_url = database_url(admin_url, dbname)
    conn = await asyncpg.connect(admin_project_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute(f"SET ROLE {quote_ident(role)}")
        await migrate(conn)
        await conn.execute(
            "INSERT INTO project_meta (key, value) VALUES ('project_id', to_jsonb($1::text)) "
            "ON CONFLICT (key) DO NOTHING",
            pid,
        )
        await conn.execute("RESET ROLE")
    finally:
        await conn.close()
    url = (database_url(admin_url, dbname, user=role, password=owner_password)
           if owner_password is not None else admin_project_url)
    return ProjectDatabase(pid, dbname, role, url)


async def _ensure_role(admin: asyncpg.Connection, role: str, password: str | None) -> None:
    # format() quotes server-side: %I an identifier, %L a literal. Nothing is spliced here.
    exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    if password is None:
        statement = await admin.fetchval(f"SELECT format('{verb} ROLE %I NOLOGIN', $1::text)", role) \
            if not exists else None
    else:
        statement = await admin.fetchval(
            f"SELECT format('{verb} ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", role, password
        )
    if statement:
        try:
            await admin.execute(statement)
        except asyncpg.DuplicateObjectError:  # created concurrently
            pass
    await _grant_role_to_current_user(admin, role)


async def _grant_role_to_current_user(admin: asyncpg.Connection, role: str) -> None:
    """Let the admin act as the owner (SET ROLE, CREATE DATABASE ... OWNER) when not a superuser."""
    is_superuser = await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not is_superuser:
        await admin.execute(f"GRANT {quote_ident(role)} TO CURRENT_USER")


async def _ensure_database(admin: asyncpg.Connection, dbname: str, owner: str) -> None:
    if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
        return
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(dbname)} OWNER {quote_ident(owner)}")
    except asyncpg.DuplicateDatabaseError:  # created concurrently
        pass


async def project_database_exists(admin_url: str, project_id: str) -> bool:
    admin = await asyncpg.connect(admin_url)
    try:
        return bool(await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", database_name(project_id)))
    finally:
        await admin.close()


async def drop_project_database(admin_url: str, project_id: str) -> bool:
    """Drop the project's database and owner role; False when there was nothing to drop."""
    dbname, role = database_name(project_id), owner_role_name(project_id)
    admin = await asyncpg.connect(admin_url)
    try:
        existed = bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname))
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(dbname)} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {quote_ident(role)}")
        return existed
    finally:
        await admin.close()
