"""Tune pseudo-relevance feedback on the dense leg (ranking.FEEDBACK_DEPTH / FEEDBACK_WEIGHT).

Needs the quality section's indexes (run `bench/run_bench.py --sections quality` once first).
Each variant runs the dense leg as search_code does (search.feedback_semantic_hits), then the very
fusion and rules of search_code (search.hybrid_candidates, ranking.ranked with DEFAULT_RULES).
The grid runs on the tuning packages only; --confirm scores the chosen constants on every package.

    python bench/tune_feedback.py              # grid over depth x weight, tuning packages
    python bench/tune_feedback.py --confirm    # ranking.FEEDBACK_* (and none) on every package
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
from corpora import PACKAGES, fetched  # noqa: E402
from embedding_cache import CachedEmbedder  # noqa: E402
from pgvector.asyncpg import register_vector  # noqa: E402
from quality import K, rank_of, scores, stripped_project  # noqa: E402
from run_bench import existing_project, fresh_project  # noqa: E402
from tune_ranking import BENCH_DIR, CANDIDATES  # noqa: E402  (sets the bench's environment)

from codebase_indexer import ranking, search  # noqa: E402
from codebase_indexer.embedding import LocalEmbedder  # noqa: E402

GRID = {"depth": (3, 5, 10), "weight": (0.25, 0.5, 1.0)}


async def package_mrr(package, embedder, variants: list[tuple[int, float]]) -> dict[tuple[int, float], float]:
    project, queries = await stripped_project(package, fetched(package, BENCH_DIR), BENCH_DIR / "quality",
                                              embedder, fresh_project, existing_project)
    conn = await asyncpg.connect(project.url)
    await register_vector(conn)
    ranks: dict[tuple[int, float], list] = {v: [] for v in variants}
    try:
        for query, vector in zip(queries, embedder.embed([q.text for q in queries]), strict=True):
            lexemes = await search._weighted_lexemes(conn, query.text)
            lexical = await search._ranked_lexical_hits(conn, lexemes, "TRUE", [], CANDIDATES)
            for depth, weight in variants:
                moved, semantic = await search.feedback_semantic_hits(conn, vector, "TRUE", [], CANDIDATES,
                                                                      depth, weight)
                found = await search.hybrid_candidates(conn, moved, lexemes, semantic, lexical)
                ranks[(depth, weight)].append(rank_of(query, await ranked_results(conn, found, query.text)))
    finally:
        await conn.close()
    return {v: scores(r)["mrr"] for v, r in ranks.items()}


async def ranked_results(conn, found, query: str) -> list[dict]:
    order = [chunk_id for chunk_id, _ in ranking.ranked(found, query)[:K]]
    rows = await conn.fetch("SELECT c.id, f.path, c.start_line, c.end_line FROM chunks c "
                            "JOIN files f ON f.id = c.file_id WHERE c.id = ANY($1::bigint[])", order)
    by_id = {row["id"]: {"file_path": row["path"], "start_line": row["start_line"], "end_line": row["end_line"]}
             for row in rows}
    return [by_id[i] for i in order]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confirm", action="store_true", help="score the chosen constants on every package")
    parser.add_argument("--variant", metavar="DEPTH/WEIGHT",
                        help="with --confirm: score this variant instead of ranking.FEEDBACK_*")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    embedder = CachedEmbedder(LocalEmbedder(), BENCH_DIR / "embedding-cache.sqlite")
    if args.confirm:
        depth, weight = args.variant.split("/") if args.variant else (ranking.FEEDBACK_DEPTH, ranking.FEEDBACK_WEIGHT)
        variants = list(dict.fromkeys([(0, 0.0), (int(depth), float(weight))]))
        packages = list(PACKAGES)
    else:
        variants = [(0, 0.0), *itertools.product(GRID["depth"], GRID["weight"])]
        packages = [p for p in PACKAGES if not p.held_out]
    per_package = {}
    for package in packages:
        per_package[package.name] = await package_mrr(package, embedder, variants)
        print(f"  {package.name:15s} " + "  ".join(f"{d}/{w}: {m:.3f}"
                                                    for (d, w), m in per_package[package.name].items()),
              flush=True)
    print_means(packages, per_package, variants)


def print_means(packages, per_package: dict, variants: list) -> None:
    for split, held_out in (("tuning", False), ("held-out", True)):
        names = [p.name for p in packages if p.held_out == held_out]
        if names:
            print(f"{split} mean hybrid MRR@10: " + "  ".join(
                f"{'/'.join(map(str, v))}: {sum(per_package[n][v] for n in names) / len(names):.4f}" for v in variants))


if __name__ == "__main__":
    asyncio.run(main())
