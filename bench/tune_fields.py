"""Tune the lexical leg's scoring: the field weights of ts_rank (search.FIELD_WEIGHTS, {content, -,
path, symbol}) and its length normalisation (search.LEXICAL_NORMALIZATION), on the tuning packages.

Needs the quality section's indexes (run `bench/run_bench.py --sections quality` once first). Each
variant runs the legs, the fusion and the rules search_code runs (search._ranked_lexical_hits,
search.hybrid_candidates, ranking.ranked with DEFAULT_RULES); --confirm scores the given variants
and today's on every package (the held-out ones only judge, never choose).

    python bench/tune_fields.py --weights "0.2 0.2 0.4 0.6;0.3 0.3 0.3 0.3" --norms 1,0,32
    python bench/tune_fields.py --confirm "0.3 0.3 0.3 0.3/32"
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import PACKAGES  # noqa: E402
from embedding_cache import CachedEmbedder  # noqa: E402
from quality import rank_of, scores  # noqa: E402
from tune_feedback import ranked_results  # noqa: E402
from tune_ranking import BENCH_DIR, CANDIDATES, package_index  # noqa: E402  (sets the bench's environment)

from codebase_indexer import search  # noqa: E402
from codebase_indexer.embedding import LocalEmbedder  # noqa: E402

Variant = tuple[str, int]  # ts_rank's weights array, its normalisation flags


def variant(text: str) -> Variant:
    """"0.3 0.3 0.3 0.3/32" -> ("{0.3, 0.3, 0.3, 0.3}", 32)."""
    weights, norm = text.split("/")
    return "{" + ", ".join(str(float(w)) for w in weights.split()) + "}", int(norm)


TODAY: Variant = (search.FIELD_WEIGHTS, search.LEXICAL_NORMALIZATION)


async def package_mrr(package, embedder, variants: list[Variant]) -> dict[Variant, float]:
    ranks: dict[Variant, list] = {v: [] for v in variants}
    async with package_index(package, embedder) as (conn, queries):
        for query, vector in zip(queries, embedder.embed([q.text for q in queries]), strict=True):
            vector, semantic = await search.feedback_semantic_hits(conn, vector, "TRUE", [], CANDIDATES)
            lexemes = await search._weighted_lexemes(conn, query.text)
            for v in variants:
                search.FIELD_WEIGHTS, search.LEXICAL_NORMALIZATION = v
                lexical = await search._ranked_lexical_hits(conn, lexemes, "TRUE", [], CANDIDATES)
                found = await search.hybrid_candidates(conn, vector, lexemes, semantic, lexical)
                ranks[v].append(rank_of(query, await ranked_results(conn, found, query.text)))
    search.FIELD_WEIGHTS, search.LEXICAL_NORMALIZATION = TODAY
    return {v: scores(r)["mrr"] for v, r in ranks.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0.2 0.2 0.4 0.6;0.3 0.3 0.3 0.3",
                        help="grid: weight arrays {content - path symbol}, ';'-separated")
    parser.add_argument("--norms", default="1,0,32", help="grid: ts_rank normalisation flags")
    parser.add_argument("--confirm", nargs="+", metavar="WEIGHTS/NORM", help="score these and today's everywhere")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    embedder = CachedEmbedder(LocalEmbedder(), BENCH_DIR / "embedding-cache.sqlite")
    if args.confirm:
        variants = list(dict.fromkeys([TODAY, *map(variant, args.confirm)]))
        packages = list(PACKAGES)
    else:
        variants = [variant(f"{w}/{n}") for w in args.weights.split(";") for n in args.norms.split(",")]
        packages = [p for p in PACKAGES if not p.held_out]
    per_package = {}
    for package in packages:
        per_package[package.name] = await package_mrr(package, embedder, variants)
        best = max(per_package[package.name].items(), key=lambda item: item[1])
        print(f"  {package.name:15s} today {per_package[package.name].get(TODAY, float('nan')):.3f}, "
              f"best {best[0][0]}/{best[0][1]} {best[1]:.3f}", flush=True)
    for split, held_out in (("tuning", False), ("held-out", True)):
        names = [p.name for p in packages if p.held_out == held_out]
        if not names:
            continue
        print(f"{split} mean hybrid MRR@10 ({', '.join(names)}):")
        for v in sorted(variants, key=lambda v: -sum(per_package[n][v] for n in names)):
            print(f"  {sum(per_package[n][v] for n in names) / len(names):.4f}  {v[0]}/{v[1]}   "
                  + " ".join(f"{n} {per_package[n][v]:.3f}" for n in names))


if __name__ == "__main__":
    asyncio.run(main())
