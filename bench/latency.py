"""Search latency over a corpus of 100k+ chunks.

Embedding 100k chunks with the real model takes about an hour on 2 cores, so the
corpus is grown from real ones: every real chunk (content and model-made vector)
of the throughput corpus is copied many times, each copy's vectors (chunk and name) moved by a
small random offset and renormalised, each copy in a file of its own path. The
queries are real docstring sentences embedded by the model at query time.
"""
from __future__ import annotations

import statistics
import time

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from codebase_indexer.lexical import searchable_text
from codebase_indexer.postgres import admin_database_url, database_url
from codebase_indexer.schema import record_embedding_model
from codebase_indexer.search import search_code
from codebase_indexer.store import refresh_lexeme_stats

CHUNKS_PER_FILE = 20
NOISE = 0.01
PROJECT = "bench-latency"


async def _real_chunks() -> list[asyncpg.Record]:
    from codebase_indexer.identifiers import database_name

    conn = await asyncpg.connect(database_url(admin_database_url(), database_name("bench-throughput")))
    await register_vector(conn)
    try:
        return await conn.fetch("SELECT symbol, kind, language, content, content_hash, embedding, name_embedding "
                                "FROM chunks ORDER BY id")
    finally:
        await conn.close()


async def _corpus_size(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM chunks")
    finally:
        await conn.close()


async def _has_name_vectors(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM chunks WHERE name_embedding IS NOT NULL)")
    except asyncpg.UndefinedColumnError:  # a corpus built before name vectors
        return False
    finally:
        await conn.close()


async def build_corpus(project, embedder, size: int, timings: dict | None = None) -> float:
    """Fill the project with `size` chunks; returns seconds spent (HNSW build included).
    `timings`, when given, receives the seconds of the lexeme statistics and the HNSW build."""
    timings = {} if timings is None else timings
    started = time.perf_counter()
    base = await _real_chunks()
    rng = np.random.default_rng(7)
    conn = await asyncpg.connect(project.url)
    await register_vector(conn)
    try:
        await record_embedding_model(conn, embedder.model_name, embedder.dimensions)
        await conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
        await conn.execute("DROP INDEX IF EXISTS chunks_name_embedding_hnsw")
        files = (size + CHUNKS_PER_FILE - 1) // CHUNKS_PER_FILE
        file_rows = []
        for f in range(files):
            members = [base[(f * CHUNKS_PER_FILE + j) % len(base)] for j in range(CHUNKS_PER_FILE)]
            content = "\n".join(m["content"] for m in members)
            file_rows.append((f + 1, f"pkg{f % 50}/module_{f}.py", "py", "python", f"h{f}",
                              len(content), content, CHUNKS_PER_FILE))
        await conn.copy_records_to_table(
            "files", records=file_rows,
            columns=("id", "path", "extension", "language", "content_hash", "size", "content", "chunk_count"))
        await conn.execute("CREATE TEMP TABLE stage (file_id bigint, start_line int, end_line int, symbol text,"
                           " kind text, language text, content text, content_hash text, embedding vector,"
                           " name_embedding vector, lexical_symbol text, lexical_path text, lexical text)")
        await conn.copy_records_to_table("stage", records=_chunk_rows(base, size, rng))
        await conn.execute(
            "INSERT INTO chunks (file_id, start_line, end_line, symbol, kind, language, content, content_hash,"
            " embedding, name_embedding, search_vector) SELECT file_id, start_line, end_line, symbol, kind, language,"
            " content, content_hash, embedding, name_embedding,"
            " setweight(to_tsvector('english', lexical_symbol), 'A') ||"
            " setweight(to_tsvector('english', lexical_path), 'B') || to_tsvector('english', lexical) FROM stage")
        step = time.perf_counter()
        await refresh_lexeme_stats(conn)
        timings["lexeme_seconds"] = time.perf_counter() - step
        await conn.execute("SET maintenance_work_mem = '2GB'")
        step = time.perf_counter()
        await conn.execute("CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)")
        await conn.execute(
            "CREATE INDEX chunks_name_embedding_hnsw ON chunks USING hnsw (name_embedding vector_cosine_ops)")
        timings["hnsw_seconds"] = time.perf_counter() - step
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


def _chunk_rows(base, size: int, rng):
    vectors = [row["embedding"].to_numpy().astype(np.float32) for row in base]
    names = [row["name_embedding"].to_numpy().astype(np.float32) if row["name_embedding"] is not None else None
             for row in base]
    dims = len(vectors[0])
    for i in range(size):
        real = base[i % len(base)]
        name = names[i % len(base)]
        yield (i // CHUNKS_PER_FILE + 1, 1, 1, real["symbol"], real["kind"], real["language"],
               real["content"], real["content_hash"], _offset(vectors[i % len(base)], rng, dims),
               _offset(name, rng, dims) if name is not None else None, searchable_text(real["symbol"]),
               searchable_text(f"pkg{i // CHUNKS_PER_FILE % 50}/module_{i // CHUNKS_PER_FILE}.py"),
               searchable_text(real["content"]))


def _offset(vector: np.ndarray, rng, dims: int) -> np.ndarray:
    moved = vector + rng.normal(0, NOISE, dims).astype(np.float32)
    return moved / np.linalg.norm(moved)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(round(0.95 * (len(ordered) - 1)))]


async def measure_search_latency(embedder, fresh_project, size: int, query_count: int,
                                 query_texts: list[str]) -> dict:
    from codebase_indexer.provisioning import ensure_project_database

    project = await ensure_project_database(admin_database_url(), PROJECT)
    existing = await _corpus_size(project.url)
    if existing != size or not await _has_name_vectors(project.url):
        project = await fresh_project(PROJECT)
        seconds = await build_corpus(project, embedder, size)
        corpus_note = f"built in {seconds:.0f}s"
    else:
        corpus_note = "reused from an earlier run"
    queries = [query_texts[i % len(query_texts)] for i in range(query_count)]
    modes = {}
    for mode in ("hybrid", "semantic", "lexical"):
        await search_code(project.url, embedder, queries[0], project_id=PROJECT,
                          database_name=project.database_name, mode=mode)  # warm the pool and caches
        samples = []
        for text in queries:
            started = time.perf_counter()
            await search_code(project.url, embedder, text, project_id=PROJECT,
                              database_name=project.database_name, mode=mode, limit=10)
            samples.append((time.perf_counter() - started) * 1000)
        modes[mode] = _percentiles(samples)
    return {
        "chunks": await _corpus_size(project.url),
        "corpus": f"real chunks copied with vectors offset by N(0, {NOISE}) per dimension; {corpus_note}",
        "queries": len(queries),
        "modes": modes,
    }
