"""Measure search_code's `alternatives` (other phrasings from the calling model) on the bench.

No language model runs here, so each query's alternative is written by one fixed rule, never by
hand per query: a hypothetical signature made of the query's content words in their order (doc-
comment phrasing and English function words left out), at most four, in the package language's
style: "Return the parsed headers of a response" -> `def parsed_headers_response(` (Python),
`function parsedHeadersResponse(` (JavaScript), `func ParsedHeadersResponse(` (Go).
The dense leg searches with the query vector moved towards the alternatives' mean
(ranking.moved_towards); the lexical leg and the rules after fusion are search_code's.

    python bench/tune_alternatives.py              # weights of the alternatives, tuning packages
    python bench/tune_alternatives.py --confirm 0.25   # that weight (and none) on every package
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
from corpora import PACKAGES, fetched  # noqa: E402
from embedding_cache import CachedEmbedder  # noqa: E402
from pgvector.asyncpg import register_vector  # noqa: E402
from quality import rank_of, scores, stripped_project  # noqa: E402
from run_bench import existing_project, fresh_project  # noqa: E402
from tune_feedback import print_means, ranked_results  # noqa: E402
from tune_ranking import BENCH_DIR, CANDIDATES  # noqa: E402  (sets the bench's environment)

from codebase_indexer import ranking, search  # noqa: E402
from codebase_indexer.embedding import LocalEmbedder  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 1.0)
_WORD = re.compile(r"[A-Za-z]+")


def signature(query: str, language: str) -> str:
    """The fixed rule: a hypothetical signature named by the query's first four content words."""
    skipped = ranking.DOC_STOP_WORDS | ranking.STOP_WORDS
    words = [w.lower() for w in _WORD.findall(query) if w.lower() not in skipped and len(w) > 1][:4] or ["run"]
    if language == "python":
        return f"def {'_'.join(words)}("
    camel = "".join(w.capitalize() for w in words)
    return f"func {camel}(" if language == "go" else f"function {camel[0].lower()}{camel[1:]}("


async def package_mrr(package, embedder, weights) -> dict[tuple[float], float]:
    project, queries = await stripped_project(package, fetched(package, BENCH_DIR), BENCH_DIR / "quality",
                                              embedder, fresh_project, existing_project)
    vectors = embedder.embed([q.text for q in queries])
    alternatives = embedder.embed([signature(q.text, package.language) for q in queries])
    conn = await asyncpg.connect(project.url)
    await register_vector(conn)
    ranks: dict[tuple[float], list] = {(w,): [] for w in weights}
    try:
        for query, vector, alternative in zip(queries, vectors, alternatives, strict=True):
            lexemes = await search._weighted_lexemes(conn, query.text)
            lexical = await search._ranked_lexical_hits(conn, lexemes, "TRUE", [], CANDIDATES)
            for weight in weights:
                moved = ranking.moved_towards(vector, alternative[None, :], weight)
                semantic = await search._semantic_hits(conn, moved, "TRUE", [], CANDIDATES)
                found = await search.hybrid_candidates(conn, moved, lexemes, semantic, lexical)
                ranks[(weight,)].append(rank_of(query, await ranked_results(conn, found, query.text)))
    finally:
        await conn.close()
    return {v: scores(r)["mrr"] for v, r in ranks.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confirm", type=float, metavar="WEIGHT", help="score this weight on every package")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    embedder = CachedEmbedder(LocalEmbedder(), BENCH_DIR / "embedding-cache.sqlite")
    weights = (0.0, args.confirm) if args.confirm is not None else WEIGHTS
    packages = list(PACKAGES) if args.confirm is not None else [p for p in PACKAGES if not p.held_out]
    per_package = {}
    for package in packages:
        per_package[package.name] = await package_mrr(package, embedder, weights)
        print(f"  {package.name:15s} " + "  ".join(f"{w}: {m:.3f}" for (w,), m in per_package[package.name].items()),
              flush=True)
    print_means(packages, per_package, [(w,) for w in weights])


if __name__ == "__main__":
    asyncio.run(main())
