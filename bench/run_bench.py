"""`make bench`: indexing throughput, re-index cost, search latency at 100k chunks, retrieval quality,
grep_code / find_symbol latency beside ripgrep; `--sections scale`: shard balance, N-shard speed-up
(measured and projected) and the cost curve; `--sections balance`: the shard balance alone (no model).

Numbers, not pass/fail: every ratio is measured side by side in one run on this machine.
Third-party sources are downloaded from PyPI as sdists at run time (never committed).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

from codebase_indexer.settings import use_offline_model  # noqa: E402

use_offline_model()  # before the model library loads

BENCH_DIR = Path(__file__).resolve().parent.parent / ".bench"
os.environ.setdefault("CODEBASE_MCP_HOME", str(BENCH_DIR / "home"))

from codebase_gateway.settings import DEFAULT_QUERY_THREADS  # noqa: E402
from codebase_indexer.embedding import LocalEmbedder  # noqa: E402
from codebase_indexer.pipeline import index_repository, prepare_file  # noqa: E402
from codebase_indexer.postgres import admin_database_url  # noqa: E402
from codebase_indexer.provisioning import drop_project_database, ensure_project_database  # noqa: E402
from codebase_indexer.scanning import ScanOptions, SkipCounter, list_candidates, read_source  # noqa: E402
from codebase_indexer.store import embedding_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import PACKAGES, MissingPrerequisite, download_sdist, fetched  # noqa: E402
from embedding_cache import CachedEmbedder  # noqa: E402
from grep_bench import grep_report, measure_grep, measure_grep_checkout  # noqa: E402
from latency import measure_search_latency  # noqa: E402
from quality import build_corpus, evaluate_package, quality_table, save_ranks  # noqa: E402
from scale import measure_balance, measure_scale  # noqa: E402

THROUGHPUT_SDISTS = ("click==8.1.8", "requests==2.32.3", "more-itertools==10.7.0")
LATENCY_QUERIES_FROM = "click"  # the latency section's queries: this package's docstring sentences
DEFAULT_SECTIONS = ("throughput", "quality", "latency", "grep")
# scale takes long (several indexing runs); balance is scale's first part alone: only when asked
SECTIONS = (*DEFAULT_SECTIONS, "scale", "balance")


def sections_argument(text: str) -> set[str]:
    chosen = {name.strip() for name in text.split(",") if name.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(sorted(unknown)) or '(none given)'}; choose from {', '.join(SECTIONS)}")
    return chosen


def corpus_chunk_texts(root: Path) -> tuple[list[str], list[str]]:
    """The exact texts the pipeline embeds for this corpus: the chunks', and the distinct name texts."""
    skips = SkipCounter()
    texts: list[str] = []
    names: dict[str, None] = {}
    for candidate in list_candidates(root, ScanOptions(), skips):
        source = read_source(candidate, skips)
        if source is not None:
            write = prepare_file(source)
            texts.extend(embedding_text(c) for c in write.chunks)
            names.update(dict.fromkeys(t for t in write.name_texts if t is not None))
    return texts, list(names)


async def fresh_project(project_id: str):
    admin = admin_database_url()
    await drop_project_database(admin, project_id)
    return await ensure_project_database(admin, project_id)


async def existing_project(project_id: str):
    return await ensure_project_database(admin_database_url(), project_id)


def balance_sdist(requirement: str) -> Path:
    return download_sdist(requirement, BENCH_DIR / "sdists")


def throughput_corpus() -> Path:
    corpus = BENCH_DIR / "throughput-corpus"
    if not corpus.is_dir():
        for requirement in THROUGHPUT_SDISTS:
            shutil.copytree(download_sdist(requirement, BENCH_DIR / "sdists"), corpus / requirement.split("==")[0])
    return corpus


async def ensure_throughput_index(embedder: LocalEmbedder) -> None:
    """The latency corpus is grown from the throughput corpus' chunks: index it (incrementally,
    so this costs nothing after a throughput section) when the latency section runs alone."""
    project = await ensure_project_database(admin_database_url(), "bench-throughput")
    await index_repository(project.url, throughput_corpus(), project_id=project.project_id, embedder=embedder)


async def measure_throughput(embedder: LocalEmbedder) -> dict:
    corpus = throughput_corpus()
    texts, names = corpus_chunk_texts(corpus)
    embedder.embed(texts[:64])  # warm-up, so neither side pays for first-call costs

    started = time.perf_counter()
    embedder.embed(texts)
    raw_seconds = time.perf_counter() - started
    started = time.perf_counter()
    embedder.embed(names)
    names_seconds = time.perf_counter() - started

    project = await fresh_project("bench-throughput")
    started = time.perf_counter()
    full = await index_repository(project.url, corpus, project_id=project.project_id, embedder=embedder)
    full_seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = await index_repository(project.url, corpus, project_id=project.project_id, embedder=embedder)
    reindex_seconds = time.perf_counter() - started
    assert again.files_unchanged == full.files_indexed and again.embeddings_computed == 0
    return {
        "corpus": f"{', '.join(THROUGHPUT_SDISTS)} ({full.files_indexed} files)",
        "chunks": len(texts),
        "chunks_indexed": full.chunks_created,
        "raw_chunks_per_s": len(texts) / raw_seconds,
        "raw_seconds": raw_seconds,
        "names": len(names),
        "names_seconds": names_seconds,
        "e2e_chunks_per_s": full.chunks_created / full_seconds,
        "full_seconds": full_seconds,
        "reindex_seconds": reindex_seconds,
    }


def throughput_report(t: dict) -> list[str]:
    # The pipeline's overhead over the model: the raw side embeds every text the pipeline embeds,
    # the chunks' and the name texts'.
    ratio = (t["raw_seconds"] + t["names_seconds"]) / t["full_seconds"]
    reindex = t["reindex_seconds"] / t["full_seconds"]
    return [
        f"throughput corpus: {t['corpus']}, {t['chunks']} chunks",
        f"  raw embedder:        {t['raw_chunks_per_s']:7.1f} chunks/s ({t['raw_seconds']:.1f}s)",
        f"  name texts:          {t['names']} embedded in {t['names_seconds']:.1f}s "
        f"(+{t['names_seconds'] / t['raw_seconds']:.1%} of the chunks' embedding time)",
        f"  end-to-end indexing: {t['e2e_chunks_per_s']:7.1f} chunks/s ({t['full_seconds']:.1f}s)",
        f"  ratio raw/e2e time:  {ratio:7.3f}   (chunk and name texts embedded raw / end-to-end; goal >= 0.85)",
        f"  unchanged re-index:  {t['reindex_seconds']:.2f}s = {reindex:.4f} of the full index (goal <= 0.02)",
    ]


def latency_report(latency: dict) -> list[str]:
    lines = [f"search latency: {latency['chunks']} chunks ({latency['corpus']}), "
             f"{latency['queries']} queries, query embedding included"]
    for mode, (p50, p95) in latency["modes"].items():
        goal = "   (goal p95 <= 50 ms)" if mode == "hybrid" else ""
        lines.append(f"  {mode:8s} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms{goal}")
    return lines


def packages_argument(text: str) -> set[str]:
    chosen = {name.strip() for name in text.split(",") if name.strip()}
    unknown = chosen - {p.name for p in PACKAGES}
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown package(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"choose from {', '.join(p.name for p in PACKAGES)}")
    return chosen


async def measure_quality(embedder: LocalEmbedder, names: set[str] | None, comments_kept: str) -> list[dict]:
    import torch

    torch.set_num_threads(1)  # a shared 2-core machine: one busy core, and faster than 2 contended ones
    cached = CachedEmbedder(embedder, BENCH_DIR / "embedding-cache.sqlite")
    work = BENCH_DIR / "quality"
    work.mkdir(exist_ok=True)
    results = []
    for package in PACKAGES:
        if names and package.name not in names:
            continue
        print(f"  {package.name} ...", flush=True)
        results.append(await evaluate_package(package, fetched(package, BENCH_DIR), work, cached, fresh_project,
                                              existing_project,
                                              comments_kept=comments_kept == "all"
                                              or (comments_kept == "held-out" and package.held_out)))
    save_ranks(results, BENCH_DIR / "quality-ranks.json")
    return results


def latency_queries() -> list[str]:
    package = next(p for p in PACKAGES if p.name == LATENCY_QUERIES_FROM)
    queries = build_corpus(package, fetched(package, BENCH_DIR), BENCH_DIR / "quality" / "latency-queries",
                           keep_comments=False)
    return [q.text for q in queries]


async def main() -> int:
    try:
        return await run_sections()
    except MissingPrerequisite as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


async def run_sections() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="size of the latency corpus")
    parser.add_argument("--queries", type=int, default=240, help="latency queries (at least 200)")
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS), type=sections_argument,
                        help=f"which measurements to run, comma-separated: {', '.join(SECTIONS)} "
                             f"(default {','.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--scale-sizes", default="10000,100000",
                        type=lambda text: [int(size) for size in text.split(",") if size.strip()],
                        help="chunk counts of the scale section's cost curve (1000000 takes about an hour)")
    parser.add_argument("--packages", type=packages_argument, default=None,
                        help="quality section: only these packages, comma-separated "
                             f"(default all: {', '.join(p.name for p in PACKAGES)})")
    parser.add_argument("--comments-kept", choices=("all", "held-out", "none"), default="all",
                        help="quality section: which packages also get the second figure (indexed with "
                             "their doc comments kept); default all")
    args = parser.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    embedder = LocalEmbedder()
    sections: list[str] = []
    if "throughput" in args.sections:
        print("measuring indexing throughput ...", flush=True)
        sections += throughput_report(await measure_throughput(embedder))
        print("\n".join(sections), flush=True)
    if "quality" in args.sections:
        print("measuring retrieval quality ...", flush=True)
        lines = quality_table(await measure_quality(embedder, args.packages, args.comments_kept))
        sections += lines
        print("\n".join(lines), flush=True)
    if "latency" in args.sections:
        print("measuring search latency ...", flush=True)
        await ensure_throughput_index(embedder)
        query_embedder = LocalEmbedder(query_threads=DEFAULT_QUERY_THREADS)  # as the gateway embeds queries
        sections += latency_report(await measure_search_latency(
            query_embedder, fresh_project, args.chunks, args.queries, latency_queries()))
    if "grep" in args.sections:
        print("measuring grep_code and find_symbol beside ripgrep ...", flush=True)
        project = await ensure_project_database(admin_database_url(), "bench-grep")
        sections += grep_report(await measure_grep(project, throughput_corpus(), BENCH_DIR, args.chunks))
        checkout = await fresh_project("bench-grep-checkout")
        sections += grep_report(await measure_grep_checkout(checkout, throughput_corpus(), BENCH_DIR))
    if "scale" in args.sections:
        print("measuring scale-out ...", flush=True)
        sections += await measure_scale(embedder, fresh_project, balance_sdist, throughput_corpus, args.scale_sizes)
    elif "balance" in args.sections:
        print("measuring shard balance ...", flush=True)
        sections += measure_balance(balance_sdist)[0]
    print("\n== codebase-mcp benchmark ==\n" + "\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
