"""Docstring→function retrieval (the CodeSearchNet method) on a real third-party library.

The query is the first sentence of a function's docstring; the indexed copy of
the library has every docstring removed (its lines blanked, so line numbers stay).
Only the library's Python files are indexed: its prose docs paraphrase the very
docstrings the queries come from, which would measure the docs, not the code.
A hit is a result chunk of the same file whose symbol is the function's qualified name.
"""
from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from codebase_indexer import search as search_module
from codebase_indexer.pipeline import index_repository
from codebase_indexer.scanning import ScanOptions
from codebase_indexer.search import search_code

MIN_QUERY_WORDS = 4
SKIPPED_FOLDERS = {"tests", "test", "docs", "examples", "artwork"}


@dataclass(frozen=True)
class Query:
    text: str
    path: str
    symbol: str


def first_sentence(docstring: str) -> str:
    paragraph = docstring.strip().split("\n\n")[0]
    sentence = re.split(r"(?<=[.!?])\s", " ".join(paragraph.split()), maxsplit=1)[0]
    return sentence.strip()


def _definitions(tree: ast.Module):
    """(qualified name, node) of module functions, classes' methods and nested classes' methods."""
    def walk(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + node.name, node
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body, f"{prefix}{node.name}.")
    yield from walk(tree.body, "")


def strip_docstrings(source: str) -> tuple[str, list[tuple[str, str]]]:
    """The source with docstrings blanked (a `pass` keeps bodies valid), and (symbol, query) pairs."""
    tree = ast.parse(source)
    lines = source.splitlines()
    pairs: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            continue
        doc = ast.get_docstring(node)
        if not doc or not node.body or not isinstance(node.body[0], ast.Expr):
            continue
        expr = node.body[0]
        indent = " " * expr.col_offset
        lines[expr.lineno - 1] = f"{indent}pass"
        for number in range(expr.lineno, expr.end_lineno):
            lines[number] = ""
    for symbol, node in _definitions(tree):
        doc = ast.get_docstring(node)
        if doc:
            text = first_sentence(doc)
            if len(text.split()) >= MIN_QUERY_WORDS:
                pairs.append((symbol, text))
    return "\n".join(lines) + "\n", pairs


def build_benchmark(library: Path, target: Path) -> list[Query]:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(library, target)
    queries: list[Query] = []
    for path in sorted(target.rglob("*.py")):
        relative = path.relative_to(target).as_posix()
        try:
            stripped, pairs = strip_docstrings(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        path.write_text(stripped, encoding="utf-8")
        if SKIPPED_FOLDERS.isdisjoint(path.relative_to(target).parts):
            queries.extend(Query(text, relative, symbol) for symbol, text in pairs)
    return queries


def rank_of(query: Query, results: list[dict]) -> int | None:
    for position, result in enumerate(results, start=1):
        if result["file_path"] == query.path and result["symbol"] == query.symbol:
            return position
    return None


def scores(ranks: list[int | None], k: int = 10) -> dict:
    n = len(ranks)
    return {
        "mrr": sum(1 / r for r in ranks if r and r <= k) / n,
        "recall": sum(1 for r in ranks if r and r <= k) / n,
    }


async def evaluate_retrieval(library: Path, embedder, fresh_project) -> dict:
    target = library.parent / f"{library.name}-no-docstrings"
    queries = build_benchmark(library, target)
    project = await fresh_project("bench-quality")
    await index_repository(project.url, target, project_id=project.project_id, embedder=embedder,
                           scan_options=ScanOptions(include=("*.py",)))
    ranks: dict[str, list[int | None]] = {"hybrid": [], "semantic": [], "lexical": []}
    for query in queries:
        for mode in ranks:
            result = await search_code(project.url, embedder, query.text, project_id=project.project_id,
                                       database_name=project.database_name, limit=10, mode=mode)
            ranks[mode].append(rank_of(query, result["results"]))
    return {
        "corpus": f"{library.name} (docstrings removed)",
        "queries": len(queries),
        "query_texts": [q.text for q in queries],
        "modes": {mode: scores(r) for mode, r in ranks.items()},
        "weights": await _weight_grid(project, embedder, queries),
    }


async def _weight_grid(project, embedder, queries: list[Query]) -> list:
    """Hybrid MRR@10 for other fusion weights, from the same candidate lists production fuses."""
    candidates = max(10 * 4, 40)
    lists = []
    for query in queries:
        semantic = await search_code(project.url, embedder, query.text, project_id=project.project_id,
                                     database_name=project.database_name, limit=min(candidates, 50),
                                     mode="semantic")
        lexical = await search_code(project.url, embedder, query.text, project_id=project.project_id,
                                    database_name=project.database_name, limit=min(candidates, 50),
                                    mode="lexical")
        lists.append((query, semantic["results"][:candidates], lexical["results"][:candidates]))
    grid = []
    for rrf_k in (5, 20, 60):
        for lexical_weight in (0.3, 0.5, 1.0):
            ranks = []
            for query, semantic, lexical in lists:
                by_id = {r["chunk_id"]: r for r in semantic + lexical}
                fused = search_module.fused_scores([
                    ([r["chunk_id"] for r in semantic], search_module.SEMANTIC_WEIGHT),
                    ([r["chunk_id"] for r in lexical], lexical_weight),
                ], k=rrf_k)
                ordered = [by_id[i] for i in sorted(fused, key=lambda i: -fused[i])[:10]]
                ranks.append(rank_of(query, ordered))
            grid.append(((rrf_k, lexical_weight), scores(ranks)["mrr"]))
    return grid
