"""Helpers for data-plane tests: a project database per test and small repositories built on disk."""
from __future__ import annotations

from pathlib import Path

import pytest

from codebase_indexer.pipeline import index_repository
from codebase_indexer.provisioning import ensure_project_database
from codebase_indexer.search import search_code
from tests.repo_files import write_tree  # noqa: F401 - re-exported for the tests here


class Project:
    """One provisioned project database and the operations tests run on it."""

    def __init__(self, database, embedder) -> None:
        self.database = database
        self.embedder = embedder

    async def index(self, repo: Path, **kwargs):
        return await index_repository(self.database.url, repo, project_id=self.database.project_id,
                                      embedder=self.embedder, **kwargs)

    async def search(self, query: str, **kwargs) -> dict:
        return await search_code(self.database.url, self.embedder, query,
                                 project_id=self.database.project_id,
                                 database_name=self.database.database_name, **kwargs)


@pytest.fixture
async def project(postgres_url, embedder, unique_project_id) -> Project:
    return Project(await ensure_project_database(postgres_url, unique_project_id), embedder)


@pytest.fixture
async def other_project(postgres_url, embedder) -> Project:
    import uuid

    return Project(await ensure_project_database(postgres_url, f"other-{uuid.uuid4().hex[:8]}"), embedder)
