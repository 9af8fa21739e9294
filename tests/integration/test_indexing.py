"""Indexing a repository into a project database: chunks, incremental runs, skips, progress."""
from __future__ import annotations

import asyncpg
import pytest

from codebase_indexer.index_runs import read_run
from codebase_indexer.pipeline import IndexingCancelled, SourceNotFound

from .conftest import write_tree

PYTHON_SERVICE = '''\
import json


class InvoiceStore:
    """Keeps invoices in memory."""

    def __init__(self):
        self.invoices = {}

    def add_invoice(self, number, amount):
        self.invoices[number] = amount

    def total_amount(self):
        return sum(self.invoices.values())


def parse_invoice_json(text):
    data = json.loads(text)
    return data["number"], data["amount"]
'''


async def chunk_rows(project, path: str):
    conn = await asyncpg.connect(project.database.url)
    try:
        return await conn.fetch(
            "SELECT c.symbol, c.kind, c.start_line, c.end_line, c.content FROM chunks c "
            "JOIN files f ON f.id = c.file_id WHERE f.path = $1 ORDER BY c.start_line", path)
    finally:
        await conn.close()


@pytest.mark.slow
async def test_polyglot_repository_is_chunked_by_symbol(project, polyglot_repo):
    summary = await project.index(polyglot_repo)
    assert summary.files_indexed >= 11 and summary.chunks_created > summary.files_indexed
    conn = await asyncpg.connect(project.database.url)
    try:
        languages = {r["language"] for r in await conn.fetch("SELECT DISTINCT language FROM chunks")}
        symbols = {r["symbol"] for r in await conn.fetch("SELECT symbol FROM chunks WHERE symbol IS NOT NULL")}
    finally:
        await conn.close()
    assert {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp",
            "ruby", "csharp", "markdown"} <= languages
    assert any("." in s for s in symbols), "methods carry qualified names such as Class.method"


async def test_chunk_line_ranges_match_the_file(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {"billing/invoices.py": PYTHON_SERVICE})
    await project.index(repo)
    rows = {r["symbol"]: r for r in await chunk_rows(project, "billing/invoices.py")}
    lines = PYTHON_SERVICE.splitlines()
    method = rows["InvoiceStore.add_invoice"]
    assert (method["start_line"], method["end_line"]) == (10, 11)
    assert method["content"] == "\n".join(lines[9:11])
    assert (rows["parse_invoice_json"]["start_line"], rows["parse_invoice_json"]["end_line"]) == (17, 19)
    assert "self.invoices[number] = amount" not in rows["InvoiceStore"]["content"]


async def test_incremental_reindex_touches_only_what_changed(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {
        "a.py": "def alpha():\n    return 1\n",
        "b.py": "def beta():\n    return 2\n",
        "c.py": "def gamma():\n    return 3\n",
        "d.py": "def delta():\n    return 4\n",
    })
    first = await project.index(repo)
    assert (first.files_indexed, first.files_unchanged) == (4, 0)

    unchanged = await project.index(repo)
    assert (unchanged.files_indexed, unchanged.files_unchanged, unchanged.embeddings_computed) == (0, 4, 0)

    (repo / "a.py").write_text("def alpha():\n    return 'changed'\n")
    (repo / "b.py").unlink()
    (repo / "c.py").rename(repo / "renamed_c.py")
    second = await project.index(repo)
    assert second.files_indexed == 2  # a.py changed, renamed_c.py new
    assert second.files_unchanged == 1  # d.py
    assert second.files_deleted == 2  # b.py, c.py
    assert second.embeddings_cached >= 1, "a renamed file's chunks come from the embedding cache"
    paths = {r["file_path"] for r in (await project.search("function", limit=50))["results"]}
    assert paths == {"a.py", "d.py", "renamed_c.py"}
    assert await chunk_rows(project, "b.py") == []
    assert "changed" in (await chunk_rows(project, "a.py"))[0]["content"]


async def test_full_reindex_redoes_every_file(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {"a.py": "def alpha():\n    return 1\n"})
    await project.index(repo)
    again = await project.index(repo, full=True)
    assert again.mode == "full" and again.files_indexed == 1 and again.files_unchanged == 0
    assert again.embeddings_computed == 0 and again.embeddings_cached >= 1


async def test_skips_are_counted_by_reason(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {
        "src/app.py": "def app():\n    pass\n",
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
        "data.bin": b"abc\x00def" * 10,
        "big.txt": "x" * 2048,
        "node_modules/lib/index.js": "module.exports = 1;\n",
        "generated/out.py": "x = 1\n",
        ".gitignore": "generated/\n",
        "legacy.py": "name = 'caf\xe9'\n".encode("latin-1"),
    })
    (repo / "etc-link").symlink_to("/etc")
    (repo / "loop").symlink_to(repo)
    from codebase_indexer.scanning import ScanOptions

    summary = await project.index(repo, scan_options=ScanOptions(max_file_size=1024))
    assert summary.skipped_by_reason.get("binary") == 2
    assert summary.skipped_by_reason.get("too_large") == 1
    assert summary.skipped_by_reason.get("ignored") == 1
    assert summary.skipped_by_reason.get("default_excluded") == 1
    assert sum(summary.skipped_by_reason.values()) == summary.files_skipped >= 6
    indexed = {r["file_path"] for r in (await project.search("name", limit=50))["results"]}
    assert indexed <= {"src/app.py", "legacy.py", ".gitignore"}
    assert "café" in (await chunk_rows(project, "legacy.py"))[0]["content"]


async def test_progress_and_summary_are_recorded_in_the_run(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(5)})
    seen = []
    await project.index(repo, run_id="run-progress", on_progress=seen.append)
    assert seen and seen[-1].files_done == seen[-1].files_total == 5
    run = await read_run(project.database.url, "run-progress")
    assert run["state"] == "succeeded" and run["files_done"] == 5
    assert run["summary"]["files_indexed"] == 5 and run["finished_at"] is not None


async def test_cancelled_run_is_recorded_and_raises(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {"a.py": "def a():\n    pass\n"})
    with pytest.raises(IndexingCancelled):
        await project.index(repo, run_id="run-cancel", should_cancel=lambda: True)
    assert (await read_run(project.database.url, "run-cancel"))["state"] == "cancelled"


@pytest.mark.parametrize("bad_source", ["relative/path", "/does/not/exist"])
async def test_bad_source_fails_with_a_clear_error(project, bad_source):
    with pytest.raises(SourceNotFound, match="source path"):
        await project.index(bad_source)


async def test_another_model_is_refused(project, tmp_path, embedder):
    repo = write_tree(tmp_path / "repo", {"a.py": "def a():\n    pass\n"})
    await project.index(repo)

    class RenamedModel:
        model_name = "another-model"
        dimensions = embedder.dimensions

        def embed(self, texts):
            return embedder.embed(texts)

    from codebase_indexer.pipeline import ModelMismatch
    from codebase_indexer.search import SearchError, search_code

    project.embedder = RenamedModel()
    with pytest.raises(ModelMismatch, match="all-MiniLM-L6-v2"):
        await project.index(repo)
    with pytest.raises(SearchError, match="indexed with embedding model"):
        await search_code(project.database.url, RenamedModel(), "a", project_id="x", database_name="y")
