"""Scale-out (issue 10): how evenly shards split a real repository, what N shards buy, and what an
index costs at 10k, 100k (and 1M) chunks.

- Balance: every file of a real repository (an sdist of at least 2,000 files, fetched at run time)
  is chunked as the indexer would; each shard's work is the chunks (and the characters the model
  reads, capped at its input limit) of the files it owns; the ratio is largest shard / mean shard.
  Ownership is the indexer's own: the assignment plan (shard_plans.file_weights, shards.assign) a
  full run makes, beside the bare hash rule it replaced. `--sections balance` runs this part alone
  (no model, no database: about a minute, most of it chunking).
- Scaling: the throughput corpus indexed by N = 1 and N = 2 `codebase-indexer` processes, each
  pinned to one core (`taskset`, one torch thread), as N pods of one CPU each would. From the
  shards' rows in the project database: per-shard throughput, the start-up cost and the whole-run
  step's cost. The model T(N, W) = start-up + model load + balance(N)·W/(N·r) + F·W/W₀ projects
  N pods; its prediction for N = 2 is printed next to the measurement.
- Cost curve: the synthetic corpus method of latency.py (real chunks and vectors copied with small
  offsets) at each size: database size, lexeme statistics and HNSW build times, hybrid search p95.
"""
from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from codebase_indexer.chunking import TooManyChunks
from codebase_indexer.configuration import as_environment
from codebase_indexer.pipeline import prepare_file
from codebase_indexer.postgres import admin_database_url
from codebase_indexer.scanning import Candidate, ScanOptions, SkipCounter, list_candidates, read_source
from codebase_indexer.search import search_code
from codebase_indexer.settings import OFFLINE_MODEL_ENVIRONMENT, IndexerSettings
from codebase_indexer.shard_plans import file_weights
from codebase_indexer.shards import PlannedShard, Shard, assign
from codebase_indexer.store import embedding_text

BALANCE_SDIST = "Django==5.1.4"  # as PyPI spells the archive
SHARD_COUNTS = (2, 4, 8, 16)
PROJECTED = (1, 2, 4, 8, 16)
MODEL_INPUT_CHARS = 1024  # all-MiniLM-L6-v2 reads 256 tokens: longer chunks cost no more
QUERIES = ("parse command line options into a dictionary", "retry an HTTP request after a timeout",
           "render a template with a context", "validate an email address", "read a file in chunks",
           "convert a value to an integer or raise an error", "build the help text of a command",
           "open a database connection from a URL", "escape html special characters",
           "group items of an iterable into pairs")


@dataclass
class FileWork:
    chunks: int
    chars: int


def repository_work(root: Path) -> tuple[dict[str, FileWork], list[Candidate]]:
    """What the model would do for each file the indexer keeps (chunks, and characters it reads), and
    the files the indexer lists."""
    skips: SkipCounter = SkipCounter()
    work: dict[str, FileWork] = {}
    candidates = list_candidates(root, ScanOptions(), skips)
    for candidate in candidates:
        source = read_source(candidate, skips)
        if source is None:
            continue
        try:
            chunks = prepare_file(source).chunks
        except TooManyChunks:
            continue
        work[source.path] = FileWork(len(chunks), sum(min(len(embedding_text(c)), MODEL_INPUT_CHARS)
                                                      for c in chunks))
    return work, candidates


def balance(work: dict[str, FileWork], owner_of: Callable[[str], int], shards: int) -> dict[str, float]:
    """Largest shard / mean shard, by files, chunks and characters read, when `owner_of` splits the work."""
    totals = [[0, 0, 0] for _ in range(shards)]
    for path, item in work.items():
        share = totals[owner_of(path)]
        share[0] += 1
        share[1] += item.chunks
        share[2] += item.chars
    return {name: max(t[i] for t in totals) / (sum(t[i] for t in totals) / shards)
            for i, name in enumerate(("files", "chunks", "chars"))}


def balance_report(name: str, work: dict[str, FileWork], weights: dict[str, int]) -> tuple[list[str], dict[int, float]]:
    """Per N: the balance of the indexer's plan, and of the bare hash rule; the plan's by characters read."""
    chunks = sum(w.chunks for w in work.values())
    lines = [f"shard balance: {name}, {len(weights)} listed files, {len(work)} indexed, {chunks} chunks "
             "(largest shard / mean shard; goal <= 1.15)"]
    by_chars: dict[int, float] = {1: 1.0}
    for shards in SHARD_COUNTS:
        started = time.perf_counter()
        planned = PlannedShard(Shard(0, shards), assign(weights, shards))
        plan_ms = (time.perf_counter() - started) * 1000
        rules = (("plan", balance(work, planned.owner_of, shards)),
                 ("hash", balance(work, PlannedShard(Shard(0, shards)).owner_of, shards)))  # no plan: the hash rule
        by_chars[shards] = rules[0][1]["chars"]
        for rule, ratios in rules:
            lines.append(f"  N={shards:<3d} {rule}: files {ratios['files']:.3f}   chunks {ratios['chunks']:.3f}   "
                         f"characters read {ratios['chars']:.3f}"
                         + (f"   (assigned in {plan_ms:.0f} ms)" if rule == "plan" else ""))
    return lines, by_chars


def measure_balance(download_sdist: Callable[[str], Path]) -> tuple[list[str], dict[int, float], int]:
    """The balance part alone: lines, the plan's ratio by characters per N, and the repository's chunks."""
    print("  balance: chunking the balance repository ...", flush=True)
    started = time.perf_counter()
    work, candidates = repository_work(download_sdist(BALANCE_SDIST))
    chunked = time.perf_counter() - started
    started = time.perf_counter()
    weights = file_weights(candidates)  # what a full run's shards read to make the plan, before any embeds
    weighed = time.perf_counter() - started
    lines, by_chars = balance_report(f"{BALANCE_SDIST} sdist", work, weights)
    lines.append(f"  weighing {len(weights)} files for the plan took {weighed:.2f}s "
                 f"(chunking them all, for this measurement only, took {chunked:.0f}s)")
    return lines, by_chars, sum(w.chunks for w in work.values())


async def run_shards(url: str, project_id: str, corpus: Path, shards: int) -> dict:
    """Index `corpus` (full) with `shards` indexer processes, one core each; what the database recorded."""
    run_id = uuid.uuid4().hex
    cores = os.cpu_count() or 1
    base = {**os.environ, **as_environment(IndexerSettings, database_url=url, project_id=project_id,
                                           source_path=str(corpus), run_id=run_id, index_mode="full",
                                           shard_count=shards),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **OFFLINE_MODEL_ENVIRONMENT}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    processes = [await asyncio.create_subprocess_exec(
        "taskset", "-c", str(index % cores), sys.executable, "-m", "codebase_indexer",
        env={**base, "JOB_COMPLETION_INDEX": str(index)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL) for index in range(shards)]
    codes = [await process.wait() for process in processes]
    wall = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"an indexer shard failed: exit codes {codes}")
    conn = await asyncpg.connect(url)
    try:
        run = await conn.fetchrow("SELECT * FROM index_runs WHERE run_id = $1", run_id)
        rows = await conn.fetch("SELECT * FROM index_run_shards WHERE run_id = $1 ORDER BY shard_index", run_id)
    finally:
        await conn.close()
    import json

    parts = [(json.loads(r["summary"])["chunks_created"], (r["finished_at"] - r["started_at"]).total_seconds())
             for r in rows]
    last_shard = max(r["finished_at"] for r in rows)
    return {"wall": wall, "chunks": json.loads(run["summary"])["chunks_created"], "shards": parts,
            "load": (load_before, os.getloadavg()[0]),
            "final_step": (run["finished_at"] - last_shard).total_seconds(),
            "in_database": (run["finished_at"] - min(r["started_at"] for r in rows)).total_seconds()}


def model_load_seconds() -> float:
    """Loading the model and embedding one text, on one core (what every shard pays once)."""
    import subprocess

    script = ("import time; t = time.perf_counter(); from codebase_indexer.embedding import LocalEmbedder; "
              "LocalEmbedder().embed(['warm up']); print(time.perf_counter() - t)")
    result = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, env={**os.environ, "OMP_NUM_THREADS": "1", **OFFLINE_MODEL_ENVIRONMENT})
    return float(result.stdout.strip().splitlines()[-1])


@dataclass
class ScalingModel:
    startup: float  # process start, imports, connect, migrate, lock (besides the model)
    model_load: float
    rate: float  # chunks per second per one-core shard
    final_step_per_chunk: float  # the whole-run step, per chunk of the project

    def seconds(self, shards: int, chunks: int, balance_ratio: float) -> float:
        return (self.startup + self.model_load + balance_ratio * chunks / (shards * self.rate)
                + self.final_step_per_chunk * chunks)


def fit_model(one: dict, load: float) -> ScalingModel:
    [(chunks, seconds)] = one["shards"]
    rate = chunks / max(seconds - load, 1e-9)
    startup = max(0.0, one["wall"] - one["in_database"])
    return ScalingModel(startup=startup, model_load=load, rate=rate,
                        final_step_per_chunk=one["final_step"] / max(one["chunks"], 1))


def scaling_report(one: dict, two: dict, model: ScalingModel, balance_by_n: dict[int, float],
                   big_repo_chunks: int) -> list[str]:
    predicted_two = model.seconds(2, one["chunks"], _balance_of(two))
    lines = [
        f"scaling: throughput corpus, {one['chunks']} chunks, N indexer processes pinned to one core each",
        f"  measured N=1: {one['wall']:.1f}s wall (shard {one['shards'][0][1]:.1f}s in the database, "
        f"whole-run step {one['final_step']:.2f}s; load average {one['load'][0]:.1f} -> {one['load'][1]:.1f})",
        f"  measured N=2: {two['wall']:.1f}s wall (shards {', '.join(f'{s:.1f}s' for _, s in two['shards'])}; "
        f"whole-run step {two['final_step']:.2f}s; load average {two['load'][0]:.1f} -> {two['load'][1]:.1f}) "
        f"-> speed-up {one['wall'] / two['wall']:.2f}",
        f"  (on {os.cpu_count()} cores: a load average above the core count means other processes took "
        "cores from the pinned shards, and the measured speed-up understates what N free cores give)",
        "  model: T(N, W) = startup + model load + balance(N)*W/(N*r) + f*W",
        f"    startup {model.startup:.1f}s, model load {model.model_load:.1f}s, r {model.rate:.1f} chunks/s per core, "
        f"f {model.final_step_per_chunk * 1e6:.1f} us/chunk (whole-run step)",
        f"    predicted N=2 on this corpus: {predicted_two:.1f}s (measured {two['wall']:.1f}s)",
    ]
    for label, chunks in (("this corpus", one["chunks"]), (f"{BALANCE_SDIST} ({big_repo_chunks} chunks)",
                                                              big_repo_chunks), ("1M chunks", 1_000_000)):
        base = model.seconds(1, chunks, 1.0)
        cells = []
        for n in PROJECTED:
            speed_up = base / model.seconds(n, chunks, balance_by_n.get(n, 1.0))
            cells.append(f"N={n}: {speed_up:.2f} ({speed_up / n:.2f}*N)")
        lines.append(f"  projected speed-up, {label}: " + "  ".join(cells) + "   (goal >= 0.8*N up to 16)")
    return lines


def _balance_of(run: dict) -> float:
    chunks = [c for c, _ in run["shards"]]
    return max(chunks) / (sum(chunks) / len(chunks)) if chunks and sum(chunks) else 1.0


async def cost_point(fresh_project, embedder, size: int) -> dict:
    from latency import build_corpus

    project_id = f"bench-scale-{size}"
    project = await fresh_project(project_id)
    timings: dict = {}
    built = await build_corpus(project, embedder, size, timings)
    conn = await asyncpg.connect(project.url)
    try:
        database_bytes = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    samples = []
    for i in range(60):
        query = QUERIES[i % len(QUERIES)]
        started = time.perf_counter()
        await search_code(project.url, embedder, query, project_id=project_id,
                          database_name=project.database_name, mode="hybrid", limit=10)
        if i >= 5:  # the first few warm the pool and caches
            samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    from codebase_indexer.provisioning import drop_project_database

    await drop_project_database(admin_database_url(), project_id)
    return {"size": size, "build": built, "bytes": database_bytes, "p50": statistics.median(ordered),
            "p95": ordered[int(round(0.95 * (len(ordered) - 1)))], **timings}


def cost_report(points: list[dict], model: ScalingModel, balance_16: float, skipped: list[int]) -> list[str]:
    lines = ["cost curve (synthetic corpus of latency.py: real chunks and vectors copied with offsets; "
             "index time projected by the model above from the measured one-core rate)"]
    for p in points:
        one_pod = model.seconds(1, p["size"], 1.0)
        sixteen = model.seconds(16, p["size"], balance_16)
        lines.append(
            f"  {p['size']:>8,d} chunks: index {one_pod / 3600:6.2f} h on 1 pod, {sixteen / 60:6.1f} min on 16; "
            f"database {p['bytes'] / 2**20:7.0f} MiB; HNSW build {p['hnsw_seconds']:6.1f}s; "
            f"lexeme statistics {p['lexeme_seconds']:5.1f}s; "
            f"hybrid search p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms")
    for size in skipped:
        lines.append(f"  {size:>8,d} chunks: not measured in this run (--scale-sizes); "
                     "extrapolate from the sizes above")
    return lines


async def measure_scale(embedder, fresh_project, download_sdist, throughput_corpus, sizes: list[int]) -> list[str]:
    lines, balance_by_n, big_repo_chunks = await asyncio.to_thread(measure_balance, download_sdist)
    print("\n".join(lines), flush=True)

    corpus = throughput_corpus()
    print("  scaling: N=1 ...", flush=True)
    load = await asyncio.to_thread(model_load_seconds)
    project = await fresh_project("bench-throughput")  # the cost curve grows its corpus from this index
    one = await run_shards(project.url, project.project_id, corpus, 1)
    print("  scaling: N=2 ...", flush=True)
    project = await fresh_project("bench-scale-two")
    two = await run_shards(project.url, project.project_id, corpus, 2)
    model = fit_model(one, load)
    lines += scaling_report(one, two, model, balance_by_n, big_repo_chunks)
    print("\n".join(lines[-8:]), flush=True)

    points = []
    for size in sizes:
        print(f"  cost curve: {size} chunks ...", flush=True)
        points.append(await cost_point(fresh_project, embedder, size))
    skipped = [size for size in (10_000, 100_000, 1_000_000) if size not in sizes]
    return lines + cost_report(points, model, balance_by_n[16], skipped)
