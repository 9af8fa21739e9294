"""Item 14: a run that crashes after its last commit, before the whole-run steps (deleting gone
files, refreshing the lexeme statistics, the run summary), no longer leaves the project broken:
the next run sees the marker the crashed run left and re-does those steps."""
from __future__ import annotations

import pytest

from codebase_indexer import index_runs, store
from tests.integration.conftest import Project, write_tree

PARSER = "def parse_shipping_manifest(text):\n    return [line.split(',') for line in text.splitlines()]\n"


class SimulatedCrash(Exception):
    """The process dies between the last batch commit and the whole-run steps."""


async def test_the_next_run_repairs_what_a_crash_after_the_last_commit_left(project: Project, tmp_path,
                                                                           monkeypatch):
    repo = write_tree(tmp_path / "repo", {"manifest.py": PARSER, "old.py": "def obsolete_helper():\n    pass\n"})
    await project.index(repo)
    (repo / "old.py").unlink()
    (repo / "notes.py").write_text("def reconcile_customs_declaration(form):\n    return form\n")

    async def crash(_conn):
        raise SimulatedCrash("killed after the last commit")

    with monkeypatch.context() as patch:
        patch.setattr(store, "refresh_lexeme_stats", crash)
        with pytest.raises(SimulatedCrash):
            await project.index(repo)
    broken = await project.search("reconcile customs declaration", mode="lexical")
    assert broken["results"] == []  # what users saw: the new file is stored but lexical search misses it

    repaired = await project.index(repo)
    assert repaired.files_indexed == 0 and repaired.files_unchanged == 2  # nothing left to write...
    found = await project.search("reconcile customs declaration", mode="lexical")
    assert [r["file_path"] for r in found["results"]][:1] == ["notes.py"]  # ...yet lexical search works
    assert (await project.search("obsolete helper", mode="lexical"))["results"] == []
    conn = await store.connect(project.database.url)
    try:
        assert not await index_runs.whole_run_steps_pending(conn)
    finally:
        await conn.close()
