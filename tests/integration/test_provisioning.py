import asyncpg
import pytest

from codebase_indexer.identifiers import database_name
from codebase_indexer.provisioning import (
    drop_project_database,
    ensure_project_database,
    project_database_exists,
)

HOSTILE_IDS = [
    "robert'); DROP TABLE students;--",
    'quote"in"name',
    "semi;colon",
    "x" * 200,
    "café-日本語-проект",
    "../../etc/passwd",
]


async def test_new_project_gets_database_with_vector_and_schema(postgres_url, unique_project_id):
    project = await ensure_project_database(postgres_url, unique_project_id)
    assert project.database_name == database_name(unique_project_id)
    conn = await asyncpg.connect(project.url)
    try:
        assert await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert {"files", "chunks", "embedding_cache", "index_runs", "project_meta"} <= tables
        owner = await conn.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'chunks'")
        assert owner == project.owner_role
    finally:
        await conn.close()


async def test_provisioning_is_idempotent(postgres_url, unique_project_id):
    first = await ensure_project_database(postgres_url, unique_project_id)
    second = await ensure_project_database(postgres_url, unique_project_id)
    assert first == second


@pytest.mark.parametrize("project_id", HOSTILE_IDS)
async def test_hostile_project_ids_are_provisioned_safely(postgres_url, project_id):
    project = await ensure_project_database(postgres_url, project_id)
    assert project.database_name.startswith("cb_proj_") and len(project.database_name) <= 63
    assert await project_database_exists(postgres_url, project_id)
    assert await drop_project_database(postgres_url, project_id)
    assert not await project_database_exists(postgres_url, project_id)


async def test_owner_password_gives_owner_credentials(postgres_url, unique_project_id):
    project = await ensure_project_database(postgres_url, unique_project_id, owner_password="s3cr'et")
    conn = await asyncpg.connect(project.url)
    try:
        assert await conn.fetchval("SELECT current_user") == project.owner_role
    finally:
        await conn.close()
