"""Tune the hybrid ranking rules offline, on the tuning packages only.

Needs the quality section's indexes (run `bench/run_bench.py --sections quality` once first).
For every query it gathers the candidates search_code would fuse (both legs' hits, each with both
legs' scores, path and symbol) once, then scores rule variants with ranking.ranked, the very
function search_code calls, in seconds. Held-out packages are scored only for the rules given
with --confirm, never searched over.

    python bench/tune_ranking.py                # grid over the tuning packages
    python bench/tune_ranking.py --confirm      # DEFAULT_RULES on tuning and held-out packages
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import os
import pickle
import sys
from pathlib import Path

from codebase_indexer.settings import use_offline_model  # noqa: E402

use_offline_model()
BENCH_DIR = Path(__file__).resolve().parent.parent / ".bench"
os.environ.setdefault("CODEBASE_MCP_HOME", str(BENCH_DIR / "home"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
from corpora import PACKAGES, fetched  # noqa: E402
from embedding_cache import CachedEmbedder  # noqa: E402
from pgvector.asyncpg import register_vector  # noqa: E402
from quality import INDEXING_MODULES, K, rank_of, scores, stripped_project  # noqa: E402
from run_bench import existing_project, fresh_project  # noqa: E402

from codebase_indexer import ranking, search  # noqa: E402
from codebase_indexer.embedding import LocalEmbedder  # noqa: E402

CANDIDATES = 40  # what search_code gathers per leg for limit 10


@contextlib.asynccontextmanager
async def package_index(package, embedder):
    """(a connection to the package's index, built or brought up to date; its queries)."""
    project, queries = await stripped_project(package, fetched(package, BENCH_DIR), BENCH_DIR / "quality",
                                              embedder, fresh_project, existing_project)
    conn = await asyncpg.connect(project.url)
    await register_vector(conn)
    try:
        yield conn, queries
    finally:
        await conn.close()


async def gather_candidates(package, embedder) -> list[tuple]:
    """(query, candidates) per query of a package, from its index (built or brought up to date)."""
    async with package_index(package, embedder) as (conn, queries):
        vectors = embedder.embed([q.text for q in queries])
        out = []
        for query, vector in zip(queries, vectors, strict=True):
            semantic = await search._semantic_hits(conn, vector, "TRUE", [], CANDIDATES)
            lexemes = await search._weighted_lexemes(conn, query.text)
            lexical = await search._ranked_lexical_hits(conn, lexemes, "TRUE", [], CANDIDATES)
            found = await search.hybrid_candidates(conn, vector, lexemes, semantic, lexical)
            rows = await conn.fetch("SELECT c.id, f.path, c.start_line, c.end_line FROM chunks c "
                                    "JOIN files f ON f.id = c.file_id WHERE c.id = ANY($1::bigint[])",
                                    [c.chunk_id for c in found])
            spans = {row["id"]: (row["path"], row["start_line"], row["end_line"]) for row in rows}
            out.append((query, found, spans))
        return out


def mrr(dump: list[tuple], rules: ranking.RankingRules) -> float:
    ranks = []
    for query, found, spans in dump:
        order = ranking.ranked(found, query.text, rules)[:K]
        results = [{"file_path": spans[i][0], "start_line": spans[i][1], "end_line": spans[i][2]}
                   for i, _ in order]
        ranks.append(rank_of(query, results))
    return scores(ranks)["mrr"]


async def dumps(held_out: bool) -> dict[str, list]:
    cache = BENCH_DIR / "tune-candidates.pickle"
    stored = pickle.loads(cache.read_bytes()) if cache.is_file() else {}
    fingerprint = _code_fingerprint()
    if stored.get("code") != fingerprint:
        stored = {"code": fingerprint}  # the index or the candidate gathering changed
    embedder = CachedEmbedder(LocalEmbedder(), BENCH_DIR / "embedding-cache.sqlite")
    wanted = [p for p in PACKAGES if held_out or not p.held_out]
    for package in wanted:
        if package.name not in stored:
            print(f"  gathering {package.name} ...", flush=True)
            stored[package.name] = await gather_candidates(package, embedder)
            cache.write_bytes(pickle.dumps(stored))
    return {p.name: stored[p.name] for p in wanted}


def _code_fingerprint() -> str:
    package_dir = Path(search.__file__).parent
    return "".join((package_dir / name).read_text() for name in (*INDEXING_MODULES, "search.py"))


GRID = {
    "fusion": ("rrf", "score"),
    "rrf_k": (2, 5, 10),
    "lexical_weight": (0.2, 0.3, 0.5, 0.7),
    "name_match_boost": (0.0, 0.25, 0.5),
}


def grid(tuning: dict[str, list]) -> None:
    results = []
    keys = list(GRID)
    for values in itertools.product(*GRID.values()):
        rules = dataclasses.replace(ranking.DEFAULT_RULES, **dict(zip(keys, values, strict=True)))
        if rules.fusion == "score" and rules.rrf_k != GRID["rrf_k"][0]:
            continue  # k plays no part in score fusion
        per_package = {name: mrr(dump, rules) for name, dump in tuning.items()}
        results.append((sum(per_package.values()) / len(per_package), rules, per_package))
    results.sort(key=lambda r: -r[0])
    print(f"default: {sum(mrr(d, ranking.DEFAULT_RULES) for d in tuning.values()) / len(tuning):.4f}")
    for mean, rules, per_package in results[:15]:
        print(f"{mean:.4f}  {rules}")
        print("        " + "  ".join(f"{n} {v:.3f}" for n, v in per_package.items()))


def confirm(all_dumps: dict[str, list]) -> None:
    for package in PACKAGES:
        print(f"  {package.name:15s} {'held-out' if package.held_out else 'tuning':8s} "
              f"hybrid MRR@10 {mrr(all_dumps[package.name], ranking.DEFAULT_RULES):.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confirm", action="store_true", help="score DEFAULT_RULES on every package")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.confirm:
        confirm(await dumps(held_out=True))
    else:
        grid(await dumps(held_out=False))


if __name__ == "__main__":
    asyncio.run(main())
