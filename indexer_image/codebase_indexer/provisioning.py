"""Create (and drop) a project's database: its owner and reader roles, pgvector, the schema, privileges.

Used by the operator's project reconcile step and by the local control plane.
Every step is idempotent, so a retry or a restart finishes what was started.

Who may touch what:
- CONNECT (and TEMPORARY) on a project database is revoked from PUBLIC: only its owner role,
  its reader role and the admin connect, so one project's role never reaches another's data.
- The reader role may SELECT the project's tables and nothing else; searches use it.
- On Kubernetes a database belongs to exactly one CodebaseProject: the resource's uid is
  recorded in a comment on the database and on its roles. A second claimant is refused
  (DatabaseClaimed), and neither its password nor its reclaim policy ever reach them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
from enum import Enum
from typing import Literal

import asyncpg

from .connections import Connector, direct_connection
from .identifiers import ProjectNames, normalize_project_id, project_names, quote_ident
from .postgres import database_url
from .schema import migrate

_OWNER_KEY = "codebase-mcp-owner"


@dataclasses.dataclass(frozen=True)
class DatabaseOwner:
    """The resource a project database belongs to (a CodebaseProject), as recorded in the database."""
    namespace: str
    name: str
    uid: str

    def comment(self) -> str:
        return json.dumps({_OWNER_KEY: dataclasses.asdict(self)}, sort_keys=True)

    @classmethod
    def parse(cls, comment: str | None) -> DatabaseOwner | None:
        try:
            recorded = json.loads(comment or "")[_OWNER_KEY]
            return cls(str(recorded["namespace"]), str(recorded["name"]), str(recorded["uid"]))
        except (ValueError, TypeError, KeyError):
            return None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} (uid {self.uid})"


class DatabaseClaimed(Exception):
    """The database or one of its roles belongs to another resource, or to no resource we created."""

    def __init__(self, what: str, recorded: DatabaseOwner | None) -> None:
        self.what = what
        self.recorded = recorded
        holder = f"belongs to CodebaseProject {recorded}" if recorded else "was not created by codebase-mcp for it"
        super().__init__(f"{what} {holder}")


class DropOutcome(Enum):
    DROPPED = "dropped"
    ABSENT = "absent"
    NOT_OWNED = "not-owned"

    def __bool__(self) -> bool:  # "was something dropped?"
        return self is DropOutcome.DROPPED


@dataclasses.dataclass(frozen=True)
class ProjectDatabase:
    project_id: str
    database_name: str
    owner_role: str
    reader_role: str
    url: str  # connection URL of the project database (admin credentials unless owner ones given)
    reader_url: str  # the same database as the read-only role


async def ensure_project_database(admin_url: str, project_id: str, *, namespace: str | None = None,
                                  owner: DatabaseOwner | None = None, owner_password: str | None = None,
                                  reader_password: str | None = None,
                                  take_over_from: DatabaseOwner | None = None,
                                  connect: Connector = direct_connection) -> ProjectDatabase:
    """Create the project's roles and database if missing, enable pgvector and pg_trgm, migrate, set privileges.

    With `owner_password`, the owner role can log in with it and the returned URL uses those
    credentials; otherwise it uses the admin's. Without `reader_password` (locally), the reader's
    is `local_reader_password`. With `owner` (Kubernetes), the database and
    roles must be unclaimed or recorded as this owner's (or `take_over_from`'s, whose resource
    is gone): anything else raises DatabaseClaimed before a single thing is changed.
    """
    pid = normalize_project_id(project_id)
    names = project_names(pid, namespace)
    if reader_password is None and owner is None:
        reader_password = local_reader_password(admin_url, names.database)
    async with connect(admin_url) as admin:
        await admin.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", names.database)
        if owner is not None:
            await _check_claim(admin, names, owner, take_over_from)
        await _ensure_role(admin, names.owner_role, owner_password, owner, login=owner_password is not None)
        await _ensure_role(admin, names.reader_role, reader_password, owner, login=True)
        await _ensure_database(admin, names.database, names.owner_role)
        if owner is not None:
            await _execute_formatted(admin, "COMMENT ON DATABASE %I IS %L", names.database, owner.comment())
        await _restrict_connect(admin, names)
        admin_project_url = database_url(admin_url, names.database)
        # Still under the lock: two provisioners of one project (a gateway's tool call beside its
        # supervisor, the CLI beside a gateway) would race CREATE EXTENSION and the grants.
        async with connect(admin_project_url) as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # grep_code's trigram index
            await conn.execute(f"SET ROLE {quote_ident(names.owner_role)}")
            await migrate(conn)
            await conn.execute(
                "INSERT INTO project_meta (key, value) VALUES ('project_id', to_jsonb($1::text)) "
                "ON CONFLICT (key) DO NOTHING",
                pid,
            )
            await _grant_reading(conn, names)
            await conn.execute("RESET ROLE")
    url = (database_url(admin_url, names.database, user=names.owner_role, password=owner_password)
           if owner_password is not None else admin_project_url)
    reader_url = database_url(admin_url, names.database, user=names.reader_role, password=reader_password)
    return ProjectDatabase(pid, names.database, names.owner_role, names.reader_role, url, reader_url)


async def check_claim(admin_url: str, project_id: str, *, namespace: str, owner: DatabaseOwner,
                      take_over_from: DatabaseOwner | None = None,
                      connect: Connector = direct_connection) -> None:
    """Raise DatabaseClaimed unless the database and roles are free or `owner`'s (read only)."""
    async with connect(admin_url) as admin:
        await _check_claim(admin, project_names(project_id, namespace), owner, take_over_from)


def local_reader_password(admin_url: str, dbname: str) -> str:
    """The reader role's password without a cluster: derived from the admin URL, so every local
    process that holds it (gateways, the CLI) agrees, and no one else can work it out."""
    return hmac.new(admin_url.encode(), f"reader:{dbname}".encode(), hashlib.sha256).hexdigest()


async def _check_claim(admin: asyncpg.Connection, names: ProjectNames, owner: DatabaseOwner,
                       take_over_from: DatabaseOwner | None) -> None:
    accepted = {owner.uid} | ({take_over_from.uid} if take_over_from else set())
    database = await admin.fetchrow(
        "SELECT shobj_description(d.oid, 'pg_database') AS comment, r.rolname AS owner "
        "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1", names.database)
    for role in (names.owner_role, names.reader_role):
        recorded = await _role_owner(admin, role)
        if recorded is not False and (recorded is None or recorded.uid not in accepted):
            raise DatabaseClaimed(f"role {role}", recorded)
    if database is None:
        return
    recorded = DatabaseOwner.parse(database["comment"])
    if recorded is not None and recorded.uid in accepted:
        return
    # No record: ours only when a run of ours stopped between CREATE DATABASE and its COMMENT,
    # which the owner role (created and recorded in one transaction, checked above) proves.
    if recorded is None and database["owner"] == names.owner_role and \
            await _role_owner(admin, names.owner_role) not in (False, None):
        return
    raise DatabaseClaimed(f"database {names.database}", recorded)


async def _role_owner(admin: asyncpg.Connection, role: str) -> DatabaseOwner | None | Literal[False]:
    """False when the role does not exist; else the resource recorded on it (None: nobody)."""
    row = await admin.fetchrow(
        "SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1", role)
    return False if row is None else DatabaseOwner.parse(row["comment"])


async def _ensure_role(admin: asyncpg.Connection, role: str, password: str | None,
                       owner: DatabaseOwner | None, *, login: bool) -> None:
    """Create the role (recording its owner in the same transaction) or set its password."""
    exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    attributes = "LOGIN PASSWORD %L" if password is not None else ("LOGIN" if login else "NOLOGIN")
    values = [role, password] if password is not None else [role]
    if exists:
        if password is not None:
            await _execute_formatted(admin, f"ALTER ROLE %I {attributes}", *values)
        if owner is not None:  # checked before: ours, or taken over from a resource that is gone
            await _execute_formatted(admin, "COMMENT ON ROLE %I IS %L", role, owner.comment())
    else:
        try:
            async with admin.transaction():
                await _execute_formatted(admin, f"CREATE ROLE %I {attributes}", *values)
                if owner is not None:
                    await _execute_formatted(admin, "COMMENT ON ROLE %I IS %L", role, owner.comment())
        except asyncpg.DuplicateObjectError:  # created concurrently (another gateway)
            pass
    await _grant_role_to_current_user(admin, role)


async def _execute_formatted(conn: asyncpg.Connection, template: str, *values: str) -> None:
    # format() quotes server-side: %I an identifier, %L a literal. Nothing is spliced here.
    placeholders = ", ".join(f"${i}::text" for i in range(1, len(values) + 1))
    statement = await conn.fetchval(f"SELECT format('{template}', {placeholders})", *values)
    await conn.execute(statement)


async def _grant_role_to_current_user(admin: asyncpg.Connection, role: str) -> None:
    """Let the admin act as the owner (SET ROLE, CREATE DATABASE ... OWNER) when not a superuser."""
    is_superuser = await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not is_superuser:
        await admin.execute(f"GRANT {quote_ident(role)} TO CURRENT_USER")


async def _ensure_database(admin: asyncpg.Connection, dbname: str, owner: str) -> None:
    if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
        return
    with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # created concurrently
        await admin.execute(f"CREATE DATABASE {quote_ident(dbname)} OWNER {quote_ident(owner)}")


async def _restrict_connect(admin: asyncpg.Connection, names: ProjectNames) -> None:
    database = quote_ident(names.database)
    await admin.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC")
    await admin.execute(f"GRANT CONNECT ON DATABASE {database} TO {quote_ident(names.reader_role)}")


async def _grant_reading(conn: asyncpg.Connection, names: ProjectNames) -> None:
    """As the owner: the reader may read every table, present and future, and change none."""
    reader = quote_ident(names.reader_role)
    await conn.execute(f"GRANT USAGE ON SCHEMA public TO {reader}")
    await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}")
    await conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {reader}")


@dataclasses.dataclass(frozen=True)
class Claim:
    """What the server says about a project's database and roles (read only)."""
    database_exists: bool
    owner: DatabaseOwner | None  # the resource recorded on the database
    roles_exist: bool


async def database_claim(admin_url: str, names: ProjectNames, connect: Connector = direct_connection) -> Claim:
    async with connect(admin_url) as admin:
        row = await admin.fetchrow(
            "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1",
            names.database)
        roles = await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1::text[])",
                                     [names.owner_role, names.reader_role])
    return Claim(database_exists=row is not None, owner=DatabaseOwner.parse(row["comment"]) if row else None,
                 roles_exist=roles == 2)


async def project_database_exists(admin_url: str, project_id: str, *, namespace: str | None = None) -> bool:
    async with direct_connection(admin_url) as admin:
        return bool(await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", project_names(project_id, namespace).database))


async def drop_project_database(admin_url: str, project_id: str, *, namespace: str | None = None,
                                owner: DatabaseOwner | None = None,
                                connect: Connector = direct_connection) -> DropOutcome:
    """Drop the project's database and roles.

    With `owner`, only what is recorded as that owner's is dropped: a claimant that was refused
    the database can never drop it (NOT_OWNED).
    """
    names = project_names(project_id, namespace)
    async with connect(admin_url) as admin:
        await admin.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", names.database)
        comment = await admin.fetchrow(
            "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1",
            names.database)
        if owner is not None:
            recorded = DatabaseOwner.parse(comment["comment"]) if comment else None
            if comment is not None and (recorded is None or recorded.uid != owner.uid):
                return DropOutcome.NOT_OWNED
            roles = [role for role in (names.owner_role, names.reader_role)
                     if (found := await _role_owner(admin, role)) is not False
                     and found is not None and found.uid == owner.uid]
        else:
            roles = [names.owner_role, names.reader_role]
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(names.database)} WITH (FORCE)")
        for role in roles:
            await admin.execute(f"DROP ROLE IF EXISTS {quote_ident(role)}")
        return DropOutcome.DROPPED if comment is not None else DropOutcome.ABSENT
