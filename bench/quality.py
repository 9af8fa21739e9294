"""Doc comment → function retrieval (the CodeSearchNet method) on third-party code in three languages.

The query is the first sentence of a function's doc comment; the indexed copy of the package has
every doc comment removed (lines blanked, so line numbers stay). A hit is a result of the same
file whose line range overlaps the function's. MRR@10 and Recall@10 per package and per mode,
plus the plain-embedding baseline: the model alone on the chunks' code (no symbol words, no
lexical leg, no ranking rules), cosine nearest first. A second figure indexes the package with
its comments kept, as real repositories are; it never replaces the first.

Indexed corpora are kept between runs (one project database per package and variant, re-indexed
only when the corpus or the indexing code changed) and embeddings are cached on disk, so a run
after a ranking change costs the searches only.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np
from corpora import EXTENSIONS, Package
from doc_comments import STRIPPERS
from pgvector.asyncpg import register_vector

import codebase_indexer
from codebase_indexer.pipeline import index_repository
from codebase_indexer.search import search_code

MODES = ("hybrid", "semantic", "lexical")
K = 10
# Only library code is indexed and queried: not its tests, docs or examples (the docs paraphrase the
# very doc comments the queries come from; leaving tests out halves the embedding time of a run).
SKIPPED_FOLDERS = {"tests", "test", "testing", "docs", "examples", "example", "artwork"}
# The modules whose code decides what an index holds: a change to one re-indexes the corpora.
INDEXING_MODULES = ("chunking.py", "lexical.py", "store.py", "pipeline.py", "schema.py", "scanning.py",
                    "models.py")


@dataclass(frozen=True)
class Query:
    text: str
    path: str
    start_line: int
    end_line: int


def _library_file(relative: Path) -> bool:
    name = relative.name
    return SKIPPED_FOLDERS.isdisjoint(relative.parts[:-1]) and not name.endswith("_test.go") \
        and not name.startswith(("test_", "conftest."))


def build_corpus(package: Package, root: Path, target: Path, *, keep_comments: bool) -> list[Query]:
    """Copy the package's source files to `target` (doc comments blanked unless kept); its queries."""
    shutil.rmtree(target, ignore_errors=True)
    strip = STRIPPERS[package.language]
    queries: list[Query] = []
    for glob in package.include or EXTENSIONS[package.language]:
        for path in sorted(root.rglob(glob)):
            relative = path.relative_to(root)
            if not _library_file(relative):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            try:
                stripped, documented = strip(text)
            except (SyntaxError, ValueError):
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(text if keep_comments else stripped, encoding="utf-8")
            queries.extend(Query(d.query, relative.as_posix(), d.start_line, d.end_line) for d in documented)
    return queries


def rank_of(query: Query, results: list[dict]) -> int | None:
    for position, result in enumerate(results, start=1):
        if result["file_path"] == query.path and result["start_line"] <= query.end_line \
                and result["end_line"] >= query.start_line:
            return position
    return None


def scores(ranks: list[int | None], k: int = K) -> dict:
    n = len(ranks) or 1
    return {
        "mrr": sum(1 / r for r in ranks if r and r <= k) / n,
        "recall": sum(1 for r in ranks if r and r <= k) / n,
    }


def _fingerprint(corpus: Path, embedder) -> str:
    digest = hashlib.sha256(embedder.model_name.encode())
    package_dir = Path(codebase_indexer.__file__).parent
    for name in INDEXING_MODULES:
        digest.update((package_dir / name).read_bytes())
    for path in sorted(corpus.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(corpus).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


async def _indexed_project(corpus: Path, project_id: str, embedder, fresh_project, ensure_project):
    """The project holding this corpus' index: reused when nothing that decides its content changed."""
    marker = corpus.with_name(corpus.name + ".indexed")
    fingerprint = _fingerprint(corpus, embedder)
    project = await ensure_project(project_id)
    if marker.is_file() and marker.read_text() == fingerprint and await _chunk_count(project.url) > 0:
        return project
    project = await fresh_project(project_id)
    await index_repository(project.url, corpus, project_id=project.project_id, embedder=embedder)
    marker.write_text(fingerprint)
    return project


async def _chunk_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM chunks")
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def _indexed_paths(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {row["path"] for row in await conn.fetch("SELECT path FROM files")}
    finally:
        await conn.close()


async def _mode_ranks(project, embedder, queries: list[Query], modes=MODES, **options) -> dict:
    ranks: dict[str, list[int | None]] = {mode: [] for mode in modes}
    for query in queries:
        for mode in modes:
            result = await search_code(project.url, embedder, query.text, project_id=project.project_id,
                                       database_name=project.database_name, limit=K, mode=mode, **options)
            ranks[mode].append(rank_of(query, result["results"]))
    return ranks


async def baseline_ranks(url: str, embedder, queries: list[Query]) -> list[int | None]:
    """The model alone: each chunk's code embedded as it is, queries ranked by cosine."""
    conn = await asyncpg.connect(url)
    await register_vector(conn)
    try:
        rows = await conn.fetch("SELECT f.path, c.start_line, c.end_line, c.content FROM chunks c "
                                "JOIN files f ON f.id = c.file_id ORDER BY c.id")
    finally:
        await conn.close()
    chunks = embedder.embed([row["content"] for row in rows])
    vectors = embedder.embed([q.text for q in queries])
    similarity = vectors @ chunks.T
    ranks = []
    for query, row_scores in zip(queries, similarity, strict=True):
        top = np.argsort(-row_scores)[:K]
        results = [{"file_path": rows[i]["path"], "start_line": rows[i]["start_line"],
                    "end_line": rows[i]["end_line"]} for i in top]
        ranks.append(rank_of(query, results))
    return ranks


async def stripped_project(package: Package, root: Path, work: Path, embedder, fresh_project,
                           ensure_project) -> tuple:
    """The package's index with doc comments removed, and its queries (those of indexed files)."""
    stripped = work / f"{package.name}-stripped"
    queries = build_corpus(package, root, stripped, keep_comments=False)
    project = await _indexed_project(stripped, f"bq-{package.name}", embedder, fresh_project, ensure_project)
    indexed = await _indexed_paths(project.url)
    return project, [q for q in queries if q.path in indexed]


async def evaluate_package(package: Package, root: Path, work: Path, embedder, fresh_project,
                           ensure_project, *, comments_kept: bool = True) -> dict:
    """MRR@10 / Recall@10 per mode and the baseline on the stripped copy; hybrid with comments kept."""
    project, queries = await stripped_project(package, root, work, embedder, fresh_project, ensure_project)
    ranks = await _mode_ranks(project, embedder, queries)
    ranks["baseline"] = await baseline_ranks(project.url, embedder, queries)
    result = {
        "package": package.name,
        "held_out": package.held_out,
        "language": package.language,
        "queries": len(queries),
        "modes": {mode: scores(r) for mode, r in ranks.items()},
        "ranks": {mode: r for mode, r in ranks.items()},
        "query_texts": [q.text for q in queries],
    }
    if comments_kept:
        kept = work / f"{package.name}-kept"
        build_corpus(package, root, kept, keep_comments=True)
        kept_project = await _indexed_project(kept, f"bq-{package.name}-kept", embedder, fresh_project,
                                              ensure_project)
        kept_ranks = await _mode_ranks(kept_project, embedder, queries, modes=("hybrid",))
        result["kept"] = scores(kept_ranks["hybrid"])
    return result


def _mean(results: list[dict], key) -> float:
    values = [key(r) for r in results]
    return sum(values) / len(values) if values else float("nan")


def quality_table(results: list[dict]) -> list[str]:
    columns = (*MODES, "baseline")
    header = f"  {'package':15s} {'split':8s} {'lang':10s} {'n':>4s} " + " ".join(
        f"{c + ' MRR/R@10':>17s}" for c in columns) + f" {'kept hybrid':>17s}"
    lines = ["retrieval quality: doc comment -> function, doc comments removed (MRR@10 / Recall@10)",
             header]

    def row(label: str, split: str, lang: str, n: str, items: list[dict]) -> str:
        cells = [f"{_mean(items, lambda r, c=c: r['modes'][c]['mrr']):.3f} / "
                 f"{_mean(items, lambda r, c=c: r['modes'][c]['recall']):.3f}" for c in columns]
        kept = [r for r in items if "kept" in r]
        kept_cell = (f"{_mean(kept, lambda r: r['kept']['mrr']):.3f} / {_mean(kept, lambda r: r['kept']['recall']):.3f}"
                     if kept else "-")
        return f"  {label:15s} {split:8s} {lang:10s} {n:>4s} " + " ".join(f"{c:>17s}" for c in cells) + \
            f" {kept_cell:>17s}"

    for result in results:
        split = "held-out" if result["held_out"] else "tuning"
        lines.append(row(result["package"], split, result["language"], str(result["queries"]), [result]))
    for label, held_out in (("tuning mean", False), ("held-out mean", True)):
        items = [r for r in results if r["held_out"] is held_out]
        if items:
            lines.append(row(label, "", "", str(sum(r["queries"] for r in items)), items))
    lines += _goal_lines(results)
    return lines


def _goal_lines(results: list[dict]) -> list[str]:
    held_out = [r for r in results if r["held_out"]]
    lines = []
    if held_out:
        mean = _mean(held_out, lambda r: r["modes"]["hybrid"]["mrr"])
        lines.append(f"  goal: held-out mean hybrid MRR@10 >= 0.62: {mean:.3f}")
    below_mode = [r["package"] for r in results
                  if r["modes"]["hybrid"]["mrr"] <= max(r["modes"][m]["mrr"] for m in ("semantic", "lexical"))]
    below_base = [r["package"] for r in held_out if r["modes"]["hybrid"]["mrr"] < r["modes"]["baseline"]["mrr"]]
    lines.append(f"  goal: hybrid above the best single mode everywhere: "
                 f"{'yes' if not below_mode else 'no (' + ', '.join(below_mode) + ')'}")
    if held_out:
        lines.append(f"  goal: no held-out package below its baseline: "
                     f"{'yes' if not below_base else 'no (' + ', '.join(below_base) + ')'}")
    return lines


def save_ranks(results: list[dict], path: Path) -> None:
    """Per-query ranks of this run, to compare two runs query by query."""
    path.write_text(json.dumps({r["package"]: {"queries": r["query_texts"], "ranks": r["ranks"]}
                                for r in results}))
