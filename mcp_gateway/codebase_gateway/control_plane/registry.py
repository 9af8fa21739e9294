"""The local jobs registry: a small database of its own on the same PostgreSQL server.

Several gateways may share one server (two editor windows, each launching its
own stdio gateway). Each job is owned by the gateway that accepted it; a
gateway proves it is alive with a heartbeat, and jobs of dead gateways are
adopted (pending) or failed (running) by whichever gateway notices first.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import asyncpg

from codebase_indexer.connections import ConnectionBudget, Connector, direct_connection
from codebase_indexer.credentials import redact
from codebase_indexer.postgres import database_url

REGISTRY_DATABASE = "codebase_mcp_registry"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateways (
    instance_id  text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS indexing_jobs (
    job_id           text PRIMARY KEY,
    project_id       text NOT NULL,
    database_name    text NOT NULL,
    repo_path        text NOT NULL,
    force_reindex    boolean NOT NULL,
    state            text NOT NULL,
    status_message   text NOT NULL DEFAULT '',
    error_message    text,
    files_indexed    integer NOT NULL DEFAULT 0,
    chunks_created   integer NOT NULL DEFAULT 0,
    summary          jsonb,
    owner            text NOT NULL,
    process_id       integer,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz
);
CREATE INDEX IF NOT EXISTS indexing_jobs_project ON indexing_jobs (project_id, created_at);
CREATE INDEX IF NOT EXISTS indexing_jobs_state ON indexing_jobs (state);
-- Releases before 0.2 stored the tools' word for a finished run.
UPDATE indexing_jobs SET state = 'succeeded' WHERE state = 'completed';
-- Who asked for the run: 'tool' (an MCP tool call) or 'watch' (files changed under a watch).
ALTER TABLE indexing_jobs ADD COLUMN IF NOT EXISTS trigger text NOT NULL DEFAULT 'tool';
"""

# Finished watch-triggered jobs kept per project; older ones are deleted (every save makes one).
WATCH_JOBS_KEPT = 20


@dataclass(frozen=True)
class GatewayRecord:
    instance_id: str
    hostname: str
    pid: int
    seconds_since_heartbeat: float


async def ensure_registry(admin_url: str, connect: Connector = direct_connection) -> str:
    """Create the registry database and its tables if missing; return its URL."""
    async with connect(admin_url) as admin:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", REGISTRY_DATABASE):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # another gateway created it concurrently
                await admin.execute(f'CREATE DATABASE "{REGISTRY_DATABASE}"')
        # Only the admin (a superuser or the database's owner) reads the jobs: no other role connects.
        await admin.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{REGISTRY_DATABASE}" FROM PUBLIC')
    url = database_url(admin_url, REGISTRY_DATABASE)
    async with connect(url) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7301)")
        await conn.execute(_SCHEMA)
    return url


class Registry:
    """Every query on the jobs registry, over one small pool."""

    POOL_SIZE = 2

    def __init__(self, pool: asyncpg.Pool, instance_id: str, budget: ConnectionBudget) -> None:
        self._pool = pool
        self._budget = budget
        self.instance_id = instance_id

    @classmethod
    async def open(cls, url: str, instance_id: str, budget: ConnectionBudget) -> Registry:
        pool = await budget.open_dedicated_pool(url, cls.POOL_SIZE, init=_init_connection)
        return cls(pool, instance_id, budget)

    async def close(self) -> None:
        await self._budget.close_dedicated_pool(self._pool)

    async def ping(self) -> bool:
        return await self._pool.fetchval("SELECT true")

    async def database_and_role_exist(self, database: str, role: str) -> tuple[bool, bool]:
        """Whether the server has this database and this role (shared catalogs: any database can tell)."""
        row = await self._pool.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS database, "
            "EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) AS role", database, role)
        return row["database"], row["role"]

    # --- gateways ---

    async def heartbeat(self, hostname: str, pid: int) -> None:
        await self._pool.execute(
            "INSERT INTO gateways (instance_id, hostname, pid) VALUES ($1, $2, $3) "
            "ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()",
            self.instance_id, hostname, pid,
        )

    async def forget_gateway(self) -> None:
        await self._pool.execute("DELETE FROM gateways WHERE instance_id = $1", self.instance_id)

    async def gateways(self) -> list[GatewayRecord]:
        rows = await self._pool.fetch(
            "SELECT instance_id, hostname, pid, "
            "extract(epoch FROM now() - heartbeat_at)::float8 AS age FROM gateways"
        )
        return [GatewayRecord(r["instance_id"], r["hostname"], r["pid"], r["age"]) for r in rows]

    # --- jobs ---

    async def insert_job(self, *, job_id: str, project_id: str, database_name: str, repo_path: str,
                         force_reindex: bool, status_message: str, trigger: str = "tool") -> dict:
        return dict(await self._pool.fetchrow(
            "INSERT INTO indexing_jobs (job_id, project_id, database_name, repo_path, force_reindex, "
            "state, status_message, owner, trigger) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8) "
            "RETURNING *",
            job_id, project_id, database_name, repo_path, force_reindex, status_message,
            self.instance_id, trigger,
        ))

    async def indexed_repositories(self) -> list[tuple[str, str]]:
        """(project id, repository folder) of each project's latest completed run, most recent first."""
        rows = await self._pool.fetch(
            "SELECT project_id, repo_path FROM ("
            " SELECT DISTINCT ON (project_id) project_id, repo_path, completed_at FROM indexing_jobs"
            " WHERE state = 'succeeded' ORDER BY project_id, completed_at DESC, job_id"
            ") latest ORDER BY completed_at DESC, project_id")
        return [(r["project_id"], r["repo_path"]) for r in rows]

    async def indexed_repository(self, project_id: str) -> str | None:
        """The folder of the project's latest succeeded run."""
        return await self._pool.fetchval(
            "SELECT repo_path FROM indexing_jobs WHERE project_id = $1 AND state = 'succeeded' "
            "ORDER BY completed_at DESC, job_id LIMIT 1", project_id)

    async def project_run_state(self, project_id: str) -> str | None:
        """'running' if a run of the project is active, else 'pending' if one is queued, else None."""
        return await self._pool.fetchval(
            "SELECT state FROM indexing_jobs WHERE project_id = $1 AND state IN ('pending', 'running') "
            "ORDER BY state = 'running' DESC LIMIT 1", project_id)

    async def prune_watch_jobs(self, project_id: str, keep: int = WATCH_JOBS_KEPT) -> int:
        """Delete the project's finished watch-triggered jobs but the newest `keep`."""
        result = await self._pool.execute(
            "DELETE FROM indexing_jobs WHERE job_id IN ("
            " SELECT job_id FROM indexing_jobs WHERE project_id = $1 AND trigger = 'watch'"
            " AND state IN ('succeeded', 'failed', 'cancelled')"
            " ORDER BY completed_at DESC, job_id DESC OFFSET $2)", project_id, keep)
        return int(result.split()[-1])

    async def job(self, job_id: str) -> dict | None:
        row = await self._pool.fetchrow(f"SELECT {_JOB_COLUMNS} FROM indexing_jobs j WHERE job_id = $1", job_id)
        return dict(row) if row is not None else None

    async def jobs(self, *, project_id: str | None, state: str | None, limit: int) -> list[dict]:
        rows = await self._pool.fetch(
            f"SELECT {_JOB_COLUMNS} FROM indexing_jobs j WHERE ($1::text IS NULL OR project_id = $1) "
            "AND ($2::text IS NULL OR state = $2) ORDER BY created_at DESC, job_id LIMIT $3",
            project_id, state, limit,
        )
        return [dict(r) for r in rows]

    async def claim_startable(self, max_running: int) -> list[dict]:
        """Mark this gateway's oldest pending jobs running, one per idle project, while fewer than
        `max_running` of its jobs run; return them."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7302)")
            rows = await conn.fetch(
                "UPDATE indexing_jobs SET state = 'running', started_at = now(), "
                "status_message = 'preparing the project database' "
                "WHERE job_id IN ("
                "  SELECT job_id FROM ("
                "    SELECT DISTINCT ON (project_id) job_id, created_at FROM indexing_jobs j"
                "    WHERE owner = $1 AND state = 'pending' AND NOT EXISTS ("
                "      SELECT 1 FROM indexing_jobs r WHERE r.project_id = j.project_id"
                "      AND r.state = 'running')"
                "    ORDER BY project_id, created_at, job_id"
                "  ) oldest_of_each_project ORDER BY created_at, job_id"
                "  LIMIT greatest(0, $2 - (SELECT count(*) FROM indexing_jobs"
                "                          WHERE owner = $1 AND state = 'running'))"
                ") RETURNING *",
                self.instance_id, max_running,
            )
            return [dict(r) for r in rows]

    async def set_running(self, job_id: str, *, process_id: int, status_message: str) -> None:
        await self._pool.execute(
            "UPDATE indexing_jobs SET process_id = $2, status_message = $3 "
            "WHERE job_id = $1 AND state = 'running'",
            job_id, process_id, status_message,
        )

    async def finish(self, job_id: str, state: str, *, status_message: str,
                     error_message: str | None = None, summary: dict | None = None) -> None:
        await self._pool.execute(
            "UPDATE indexing_jobs SET state = $2, status_message = $3, error_message = $4, "
            "summary = $5::jsonb, files_indexed = $6, chunks_created = $7, completed_at = now() "
            "WHERE job_id = $1 AND state IN ('pending', 'running')",
            job_id, state, redact(status_message), redact(error_message) if error_message else None,
            summary,
            int((summary or {}).get("files_indexed", 0)), int((summary or {}).get("chunks_created", 0)),
        )

    async def request_cancel(self, job_id: str) -> None:
        await self._pool.execute(
            "UPDATE indexing_jobs SET cancel_requested = true, status_message = 'cancelling' "
            "WHERE job_id = $1 AND state = 'running'", job_id)

    async def cancel_requested(self) -> list[dict]:
        """This gateway's running jobs whose cancellation was asked (possibly through another gateway)."""
        return await self._pool.fetch(
            "SELECT job_id FROM indexing_jobs WHERE owner = $1 AND state = 'running' AND cancel_requested",
            self.instance_id,
        )

    async def owners_without_gateway(self) -> list[str]:
        """Owners of unfinished jobs that no longer have a gateway row at all."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT owner FROM indexing_jobs WHERE state IN ('pending', 'running') "
            "AND owner NOT IN (SELECT instance_id FROM gateways)")
        return [r["owner"] for r in rows]

    async def adopt_pending(self, dead_owners: list[str]) -> list[str]:
        rows = await self._pool.fetch(
            "UPDATE indexing_jobs SET owner = $1 WHERE state = 'pending' AND owner = ANY($2::text[]) "
            "RETURNING job_id", self.instance_id, dead_owners)
        return [r["job_id"] for r in rows]

    async def fail_running(self, dead_owners: list[str], message: str) -> list[dict]:
        return await self._pool.fetch(
            "UPDATE indexing_jobs SET state = 'failed', status_message = 'failed', error_message = $2, "
            "completed_at = now() WHERE state = 'running' AND owner = ANY($1::text[]) "
            "RETURNING job_id, process_id, owner", dead_owners, redact(message))

    async def forget_gateways(self, instance_ids: list[str]) -> None:
        await self._pool.execute("DELETE FROM gateways WHERE instance_id = ANY($1::text[])", instance_ids)

    async def counts_by_state(self) -> dict[str, int]:
        rows = await self._pool.fetch("SELECT state, count(*) AS n FROM indexing_jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}


# A pending job's place in its gateway's queue (1 = starts next when a slot frees).
_JOB_COLUMNS = (
    "j.*, CASE WHEN j.state = 'pending' THEN ("
    " SELECT count(*) FROM indexing_jobs q WHERE q.state = 'pending' AND q.owner = j.owner"
    " AND (q.created_at, q.job_id) <= (j.created_at, j.job_id)) END AS queue_position"
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
