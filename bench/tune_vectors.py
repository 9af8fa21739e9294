"""Tune what is embedded per chunk, on the tuning packages only: a second, short vector per chunk
(its name words, or its signature) scored by a weighted max with the chunk vector, and the chunk
text prefixed with its file path's words.

Needs the quality section's indexes (run `bench/run_bench.py --sections quality` once first). The
variant texts are built from each index's chunks and symbols and embedded through the bench's
embedding cache; the dense leg is scored exactly (every chunk), its top CANDIDATES joined with the
lexical leg's hits, and ordered by ranking.ranked with DEFAULT_RULES, as search_code does.
--confirm scores the given variants on every package (the held-out ones only judge, never choose).

    python bench/tune_vectors.py                                   # the grid, tuning packages
    python bench/tune_vectors.py --confirm code/name/max/1.0       # one variant (and none) everywhere
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
import numpy as np  # noqa: E402
from corpora import PACKAGES, fetched  # noqa: E402
from embedding_cache import CachedEmbedder  # noqa: E402
from pgvector.asyncpg import register_vector  # noqa: E402
from quality import K, rank_of, scores, stripped_project  # noqa: E402
from run_bench import existing_project, fresh_project  # noqa: E402
from tune_ranking import BENCH_DIR, CANDIDATES  # noqa: E402  (sets the bench's environment)

from codebase_indexer import ranking, search, store  # noqa: E402
from codebase_indexer.embedding import LocalEmbedder  # noqa: E402
from codebase_indexer.lexical import identifier_parts  # noqa: E402
from codebase_indexer.models import Chunk  # noqa: E402


@dataclass(frozen=True)
class ChunkRow:
    id: int
    path: str
    start_line: int
    end_line: int
    symbol: str | None
    kind: str
    content: str
    signature: str | None


def _words(text: str) -> str:
    return " ".join(identifier_parts(text.replace(".", "_")))


def _name_line(c: ChunkRow) -> str:
    return f"{c.kind} {_words(c.symbol or '')}"


def _path_words(path: str) -> str:
    return " ".join(identifier_parts("_".join(PurePosixPath(path).with_suffix("").parts)))


def _chunk(c: ChunkRow) -> Chunk:
    return Chunk(c.start_line, c.end_line, c.symbol, c.kind, "", c.content)


def _signature_text(c: ChunkRow) -> str:
    return store.name_text(_chunk(c), c.signature) or ""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keywords and names every body of its language holds: they say nothing about which code is meant.
CODE_NOISE = frozenset((
    "def", "self", "cls", "class", "return", "if", "elif", "else", "for", "while", "in", "is", "not", "and",
    "or", "import", "from", "as", "with", "try", "except", "finally", "raise", "pass", "break", "continue",
    "lambda", "yield", "none", "true", "false", "async", "await", "function", "var", "let", "const", "new",
    "this", "typeof", "instanceof", "undefined", "null", "func", "err", "nil", "package", "type", "struct",
    "interface", "string", "int", "bool", "byte", "error", "go", "defer", "range", "switch", "case",
    "default", "do", "of", "the", "a", "an", "to", "str", "len", "isinstance", "args", "kwargs", "t",
    "e", "i", "j", "k", "n", "x", "v", "s", "f", "r", "b", "c", "d"))


def _body_words(c: ChunkRow, limit: int) -> str:
    """The distinct words of the chunk's identifiers and strings, in order of first use, without the
    language's keywords: a bag of words a text model can match a description against."""
    seen: dict[str, None] = {}
    for token in _IDENTIFIER.findall(c.content):
        for word in identifier_parts(token):
            if len(word) > 1 and word not in CODE_NOISE and not word.isdigit():
                seen.setdefault(word)
        if len(seen) >= limit:
            break
    return " ".join(list(seen)[:limit])


# What the chunk vector embeds: today's text (store.embedding_text), or with the path's words first.
PRIMARY: dict[str, Callable[[ChunkRow], str]] = {
    "code": lambda c: store.embedding_text(_chunk(c)),
    "path": lambda c: f"{_path_words(c.path)}\n{store.embedding_text(_chunk(c))}",
}
# What the second vector embeds (chunks with a symbol only): "signature" is store.name_text, the default.
CALLABLE_KINDS = frozenset({"function", "method", "constructor"})
SECOND: dict[str, Callable[[ChunkRow], str | None]] = {
    "name": _name_line,
    "signature": _signature_text,
    "path-signature": lambda c: f"{_path_words(c.path)}\n{_signature_text(c)}",
    # The signature text for functions, methods and constructors only (no class or type outlines):
    # fewer name texts to embed.
    "callable-signature": lambda c: _signature_text(c) if c.kind in CALLABLE_KINDS else None,
    # The signature text, then the body's identifier words (at most 16 / 48).
    "signature-words16": lambda c: f"{_signature_text(c)}\n{_body_words(c, 16)}",
    "signature-words48": lambda c: f"{_signature_text(c)}\n{_body_words(c, 48)}",
    # The kind and name words, then the body's identifier words: no code syntax at all.
    "name-words48": lambda c: f"{_name_line(c)}\n{_body_words(c, 48)}",
}
# How the two cosines make the dense score: max(c1, w * c2); for comparison c1 + w * c2 ("sum", a
# chunk without a name vector gets c1) and (c1 + w * c2) / (1 + w) ("mean", without one: c1).
GRID = {"combine": ("max",), "weight": (0.8, 0.9, 0.95, 1.0, 1.05)}
SUMS = (0.25, 0.5)


@dataclass(frozen=True)
class Variant:
    primary: str
    second: str | None = None
    combine: str = "max"
    weight: float = 0.0

    def __str__(self) -> str:
        return self.primary if self.second is None else f"{self.primary}/{self.second}/{self.combine}/{self.weight:g}"

    @classmethod
    def parse(cls, text: str) -> Variant:
        parts = text.split("/")
        if len(parts) == 1:
            return cls(parts[0])
        return cls(parts[0], parts[1], parts[2], float(parts[3]))


def variants(primaries=tuple(PRIMARY), seconds=tuple(SECOND), weights=GRID["weight"], sums=SUMS,
             means=SUMS) -> list[Variant]:
    out = []
    for primary in primaries:
        out.append(Variant(primary))
        for second in seconds:
            out += [Variant(primary, second, "max", w) for w in weights]
            out += [Variant(primary, second, "sum", w) for w in sums]
            out += [Variant(primary, second, "mean", w) for w in means]
    return out


async def _chunk_rows(conn) -> list[ChunkRow]:
    rows = await conn.fetch(
        "SELECT c.id, f.path, c.start_line, c.end_line, c.symbol, c.kind, c.content, s.signature "
        "FROM chunks c JOIN files f ON f.id = c.file_id LEFT JOIN LATERAL ("
        " SELECT signature FROM symbols s WHERE s.file_id = c.file_id AND s.qualified_name = c.symbol"
        " ORDER BY s.start_line BETWEEN c.start_line AND c.end_line DESC, abs(s.start_line - c.start_line)"
        " LIMIT 1) s ON TRUE ORDER BY c.id")
    return [ChunkRow(**dict(row)) for row in rows]


def _dense(v: Variant, primary: np.ndarray, second: dict[str, np.ndarray]) -> np.ndarray:
    if v.second is None:
        return primary
    other = second[v.second]
    has = ~np.isnan(other)
    if v.combine == "max":
        return np.where(has, np.maximum(primary, v.weight * np.nan_to_num(other, nan=-1.0)), primary)
    if v.combine == "mean":  # a chunk without a name vector counts its chunk cosine twice
        return (primary + v.weight * np.where(has, other, primary)) / (1 + v.weight)
    return primary + v.weight * np.nan_to_num(other, nan=0.0) * has


async def package_mrr(package, embedder, wanted: list[Variant]) -> dict[Variant, float]:
    project, queries = await stripped_project(package, fetched(package, BENCH_DIR), BENCH_DIR / "quality",
                                              embedder, fresh_project, existing_project)
    conn = await asyncpg.connect(project.url)
    await register_vector(conn)
    try:
        chunks = await _chunk_rows(conn)
        ids = np.array([c.id for c in chunks])
        spans = {c.id: {"file_path": c.path, "start_line": c.start_line, "end_line": c.end_line} for c in chunks}
        q = embedder.embed([query.text for query in queries])
        primary = {p: q @ embedder.embed([PRIMARY[p](c) for c in chunks]).T
                   for p in {v.primary for v in wanted}}
        second = {}
        for s in {v.second for v in wanted if v.second}:
            texts = {i: SECOND[s](c) for i, c in enumerate(chunks) if c.symbol}
            named = [i for i, text in texts.items() if text is not None]
            sims = np.full((len(queries), len(chunks)), np.nan, dtype=np.float32)
            sims[:, named] = q @ embedder.embed([texts[i] for i in named]).T
            second[s] = sims
            print(f"    {package.name}: {len(named)} {s} texts for {len(chunks)} chunks", flush=True)
        position = {int(cid): i for i, cid in enumerate(ids)}
        ranks: dict[Variant, list] = {v: [] for v in wanted}
        for qi, query in enumerate(queries):
            lexemes = await search._weighted_lexemes(conn, query.text)
            lexical = await search._ranked_lexical_hits(conn, lexemes, "TRUE", [], CANDIDATES)
            dense = {}
            for v in wanted:
                row = _dense(v, primary[v.primary][qi], {s: m[qi] for s, m in second.items()})
                top = np.argsort(-row, kind="stable")[:CANDIDATES]
                dense[v] = [(int(ids[i]), float(row[i])) for i in top]
            union = list({cid: 0.0 for hits in dense.values() for cid, _ in hits}.items())
            found = {c.chunk_id: c for c in await search.hybrid_candidates(conn, q[qi], lexemes, union, lexical)}
            lexical_rank = {cid: r for r, (cid, _) in enumerate(lexical, start=1)}
            for v in wanted:
                row = _dense(v, primary[v.primary][qi], {s: m[qi] for s, m in second.items()})
                semantic_rank = {cid: r for r, (cid, _) in enumerate(dense[v], start=1)}
                members = dict.fromkeys([*semantic_rank, *lexical_rank])
                candidates = [ranking.Candidate(cid, found[cid].path, found[cid].symbol, float(row[position[cid]]),
                                                found[cid].lexical, semantic_rank.get(cid), lexical_rank.get(cid))
                              for cid in members if cid in found]
                order = ranking.ranked(candidates, query.text)[:K]
                ranks[v].append(rank_of(query, [spans[cid] for cid, _ in order]))
    finally:
        await conn.close()
    return {v: scores(r)["mrr"] for v, r in ranks.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confirm", nargs="+", metavar="VARIANT",
                        help="score these variants (and 'code', today's) on every package")
    parser.add_argument("--primary", default=",".join(PRIMARY), help="grid: chunk texts to try (code,path)")
    parser.add_argument("--second", default=",".join(SECOND), help="grid: name texts to try")
    parser.add_argument("--weights", default=",".join(map(str, GRID["weight"])), help="grid: max weights")
    parser.add_argument("--sums", default=",".join(map(str, SUMS)), help="grid: sum weights (empty: none)")
    parser.add_argument("--means", default=",".join(map(str, SUMS)), help="grid: mean weights (empty: none)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    embedder = CachedEmbedder(LocalEmbedder(), BENCH_DIR / "embedding-cache.sqlite")
    if args.confirm:
        wanted = list(dict.fromkeys([Variant("code"), *map(Variant.parse, args.confirm)]))
        packages = list(PACKAGES)
    else:
        wanted = variants(tuple(args.primary.split(",")), tuple(args.second.split(",")),
                          tuple(float(w) for w in args.weights.split(",")),
                          tuple(float(w) for w in args.sums.split(",") if w),
                          tuple(float(w) for w in args.means.split(",") if w))
        packages = [p for p in PACKAGES if not p.held_out]
    per_package = {}
    for package in packages:
        per_package[package.name] = await package_mrr(package, embedder, wanted)
        best = sorted(per_package[package.name].items(), key=lambda item: -item[1])[:3]
        print(f"  {package.name:15s} {per_package[package.name][wanted[0]]:.3f} (best: "
              + ", ".join(f"{v} {m:.3f}" for v, m in best) + ")", flush=True)
    print_means(packages, per_package, wanted)


def print_means(packages, per_package: dict, wanted: list[Variant]) -> None:
    for split, held_out in (("tuning", False), ("held-out", True)):
        names = [p.name for p in packages if p.held_out == held_out]
        if not names:
            continue
        means = sorted(((sum(per_package[n][v] for n in names) / len(names), v) for v in wanted),
                       key=lambda item: -item[0])
        print(f"{split} mean hybrid MRR@10 ({', '.join(names)}):")
        for mean, v in means:
            print(f"  {mean:.4f}  {v}   " + " ".join(f"{n} {per_package[n][v]:.3f}" for n in names))


if __name__ == "__main__":
    asyncio.run(main())

