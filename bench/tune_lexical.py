"""Tune the lexical leg: doc-comment stop words (ranking.DOC_STOP_WORDS), how many of the query's
rarest lexemes are kept (search.LEXICAL_TERMS) and how many chunks it ranks (search.LEXICAL_CANDIDATES).

Needs the quality section's indexes (run `bench/run_bench.py --sections quality` once first).
Each variant runs the legs, the fusion and the rules search_code runs (search._weighted_lexemes,
search.hybrid_candidates, ranking.ranked with DEFAULT_RULES). The grid runs on the tuning packages
only; --confirm scores today's constants and the variant before this work on every package.

    python bench/tune_lexical.py              # grid, tuning packages
    python bench/tune_lexical.py --confirm    # chosen constants against none, every package
    python bench/tune_lexical.py --caps 1000,500,300,200 [--confirm]   # the candidate cap alone
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import PACKAGES  # noqa: E402
from embedding_cache import CachedEmbedder  # noqa: E402
from quality import rank_of, scores  # noqa: E402
from tune_feedback import print_means, ranked_results  # noqa: E402
from tune_ranking import BENCH_DIR, CANDIDATES, package_index  # noqa: E402  (sets the bench's environment)

from codebase_indexer import ranking, search  # noqa: E402
from codebase_indexer.embedding import LocalEmbedder  # noqa: E402

STOP_LISTS = {"none": frozenset(), "doc": ranking.DOC_STOP_WORDS}
GRID = {"stop": tuple(STOP_LISTS), "terms": (4, 6, 8, 10), "cap": (search.LEXICAL_CANDIDATES,)}
Variant = tuple[str, int, int]  # stop list, terms, candidate cap
TODAYS_CAP = search.LEXICAL_CANDIDATES


async def package_mrr(package, embedder, variants: list[Variant]) -> dict[Variant, float]:
    ranks: dict[Variant, list] = {v: [] for v in variants}
    async with package_index(package, embedder) as (conn, queries):
        for query, vector in zip(queries, embedder.embed([q.text for q in queries]), strict=True):
            vector, semantic = await search.feedback_semantic_hits(conn, vector, "TRUE", [], CANDIDATES)
            for stop, terms, cap in variants:
                search.LEXICAL_CANDIDATES = cap
                lexemes = await search._weighted_lexemes(conn, query.text, terms, STOP_LISTS[stop])
                lexical = await search._ranked_lexical_hits(conn, lexemes, "TRUE", [], CANDIDATES)
                found = await search.hybrid_candidates(conn, vector, lexemes, semantic, lexical)
                ranks[(stop, terms, cap)].append(rank_of(query, await ranked_results(conn, found, query.text)))
    search.LEXICAL_CANDIDATES = TODAYS_CAP
    return {v: scores(r)["mrr"] for v, r in ranks.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confirm", action="store_true", help="score the chosen constants on every package")
    parser.add_argument("--caps", help="score today's stop list and terms with these candidate caps instead")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    embedder = CachedEmbedder(LocalEmbedder(), BENCH_DIR / "embedding-cache.sqlite")
    chosen = ("doc" if ranking.LEXICAL_STOP_WORDS else "none", search.LEXICAL_TERMS, search.LEXICAL_CANDIDATES)
    packages = list(PACKAGES) if args.confirm else [p for p in PACKAGES if not p.held_out]
    if args.caps:
        variants = [(chosen[0], chosen[1], int(cap)) for cap in args.caps.split(",")]
    elif args.confirm:
        variants = list(dict.fromkeys([("none", 6, 1000), chosen]))
    else:
        variants = list(itertools.product(*GRID.values()))
    per_package = {}
    for package in packages:
        per_package[package.name] = await package_mrr(package, embedder, variants)
        print(f"  {package.name:15s} " + "  ".join(f"{'/'.join(map(str, v))}: {m:.3f}"
                                                    for v, m in per_package[package.name].items()),
              flush=True)
    print_means(packages, per_package, variants)


if __name__ == "__main__":
    asyncio.run(main())
