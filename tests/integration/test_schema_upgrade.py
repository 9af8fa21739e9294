"""A project database of an earlier schema version upgrades in place on its next run."""
from __future__ import annotations

import asyncpg
import pytest

from codebase_indexer.grep import grep_code
from codebase_indexer.pipeline import index_repository
from codebase_indexer.postgres import database_url
from codebase_indexer.provisioning import ensure_project_database
from codebase_indexer.schema import LATEST_VERSION
from codebase_indexer.symbols import find_symbol

from .conftest import write_tree

pytestmark = pytest.mark.slow  # each test indexes a repository (the real model) or drives a gateway

REPO = {
    "app/service.py": "class Service:\n    def start(self):\n        return 'started'\n",
    "app/util.py": "def helper():\n    return 42\n",
}


async def _downgrade_to_version_3(admin_url: str, database: str) -> None:
    """What a database indexed before grep and symbols looks like: no pg_trgm, lines or symbols (nor
    the shard tables of version 6, nor the file times of version 7, nor the shard plans of version 8,
    nor the name vectors of version 9)."""
    conn = await asyncpg.connect(database_url(admin_url, database))
    try:
        await conn.execute("ALTER TABLE chunks DROP COLUMN name_embedding")
        await conn.execute("DROP TABLE lines, symbols, index_run_shards, index_run_gone, "
                           "index_run_plan_files, index_run_plans")
        await conn.execute("ALTER TABLE index_runs DROP COLUMN shard_count")
        await conn.execute("ALTER TABLE files DROP COLUMN mtime_ns")
        await conn.execute("DROP EXTENSION pg_trgm")
        await conn.execute("DELETE FROM schema_migrations WHERE version >= 4")
    finally:
        await conn.close()


async def test_a_version_3_database_upgrades_on_its_next_run_as_its_owner(
        postgres_url, embedder, unique_project_id, tmp_path):
    # The indexer connects as the project's owner role, which is no superuser (as in a Job).
    project = await ensure_project_database(postgres_url, unique_project_id, owner_password="owner-pass-1")
    repo = write_tree(tmp_path / "repo", REPO)
    await index_repository(project.url, repo, project_id=unique_project_id, embedder=embedder)
    await _downgrade_to_version_3(postgres_url, project.database_name)

    summary = await index_repository(project.url, repo, project_id=unique_project_id, embedder=embedder)

    # Every file is read again for its lines and symbols, and nothing is embedded again.
    assert summary.files_indexed == 2 and summary.files_unchanged == 0
    assert summary.embeddings_computed == 0 and summary.embeddings_cached > 0
    conn = await asyncpg.connect(project.url)
    try:
        assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == LATEST_VERSION
        assert await conn.fetchval("SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'pg_trgm'") \
            == project.owner_role
        assert await conn.fetchval("SELECT count(*) FROM lines") == 5
    finally:
        await conn.close()
    # The read-only role reads the new tables: grep and find_symbol work as it.
    found = await grep_code(project.reader_url, "return", project_id=unique_project_id, database_name="d")
    assert {(m["file_path"], m["line"], m["symbol"]) for m in found["matches"]} == {
        ("app/service.py", 3, "Service.start"), ("app/util.py", 2, "helper")}
    symbols = await find_symbol(project.reader_url, "Service.start", project_id=unique_project_id, database_name="d")
    assert [(s["qualified_name"], s["kind"], s["start_line"]) for s in symbols["symbols"]] == [
        ("Service.start", "method", 2)]


async def test_lines_and_symbols_go_with_their_file(project, tmp_path):
    repo = write_tree(tmp_path / "repo", REPO)
    await project.index(repo)
    (repo / "app" / "util.py").unlink()
    await project.index(repo)
    conn = await asyncpg.connect(project.database.url)
    try:
        paths = {r["path"] for r in await conn.fetch(
            "SELECT DISTINCT f.path FROM files f JOIN lines l ON l.file_id = f.id "
            "UNION SELECT f.path FROM files f JOIN symbols s ON s.file_id = f.id")}
        assert paths == {"app/service.py"}
        assert await conn.fetchval("SELECT count(*) FROM symbols") == 2
        assert await conn.fetchval("SELECT count(*) FROM lines") == 3
    finally:
        await conn.close()
