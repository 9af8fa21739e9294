"""Hybrid code search over one project database: dense (HNSW, cosine) + lexical (tsvector), fused by RRF."""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from .embedding import Embedder
from .lexical import query_terms
from .schema import recorded_embedding_model

MODES = ("hybrid", "semantic", "lexical")
MAX_LIMIT = 50
MAX_QUERY_CHARS = 2000
CONTEXT_LINES = 3
RRF_K = 60
# Weights of the fused lists, tuned on the docstring→function benchmark (`make bench`).
SEMANTIC_WEIGHT = 1.0
LEXICAL_WEIGHT = 1.0
HNSW_EF_SEARCH = 100
_EXTENSION = re.compile(r"^[a-z0-9_+\-]{1,16}$")


class SearchError(ValueError):
    """The search cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class SearchFilters:
    language: str | None = None
    file_type: str | None = None
    directory: str | None = None
    path_glob: str | None = None


async def search_code(url: str, embedder: Embedder, query: str, *, project_id: str,
                      database_name: str, language: str | None = None,
                      file_type: str | None = None, directory: str | None = None,
                      path_glob: str | None = None, limit: int = 10,
                      mode: str = "hybrid") -> dict:
    """Search one project; returns the `search_code` result object."""
    started = time.perf_counter()
    query = _checked_query(query)
    limit = _checked_limit(limit)
    if mode not in MODES:
        raise SearchError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    where, params = _filter_clause(SearchFilters(language, file_type, directory, path_glob))
    pool = await _pool(url)
    async with pool.acquire() as conn:
        results = await _search(conn, embedder, query, where, params, limit, mode)
    return {
        "results": results,
        "total_count": len(results),
        "project_id": project_id,
        "database_name": database_name,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


async def _search(conn, embedder, query, where, params, limit, mode) -> list[dict]:
    recorded = await recorded_embedding_model(conn)
    if recorded is None:
        return []  # nothing indexed yet
    if recorded[0] != embedder.model_name:
        raise SearchError(
            f"this project was indexed with embedding model {recorded[0]!r}; this server "
            f"embeds queries with {embedder.model_name!r}. Configure {recorded[0]!r} or "
            "re-index the project fully with the current model."
        )
    candidates = max(limit * 4, 40)
    ranked: list[tuple[list[int], float]] = []
    vector = None
    if mode in ("hybrid", "semantic"):
        vector = (await asyncio.to_thread(embedder.embed, [query]))[0]
        ranked.append((await _semantic_ids(conn, vector, where, params, candidates), SEMANTIC_WEIGHT))
    if mode in ("hybrid", "lexical"):
        ranked.append((await _lexical_ids(conn, query, where, params, candidates), LEXICAL_WEIGHT))
    scores = fused_scores(ranked) if mode == "hybrid" else None
    if scores is None:
        ids = ranked[0][0][:limit]
    else:
        ids = sorted(scores, key=lambda i: -scores[i])[:limit]
    return await _fetch_results(conn, ids, vector, query, mode, scores)


def _checked_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise SearchError("the query is empty; describe the code you are looking for")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(f"the query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    return query.strip()


def _checked_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


def _filter_clause(filters: SearchFilters) -> tuple[str, list]:
    """SQL conditions on `c` (chunks) and `f` (files); values only ever travel as parameters.

    Parameter numbers start at $2 ($1 is the query vector or tsquery).
    """
    conditions: list[str] = []
    params: list = []

    def add(sql: str, value) -> None:
        params.append(value)
        conditions.append(sql.replace("?", f"${len(params) + 1}"))

    if filters.language:
        add("c.language = ?", filters.language.strip().lower())
    if filters.file_type:
        extension = filters.file_type.strip().lower().lstrip(".")
        if not _EXTENSION.match(extension):
            raise SearchError(f"file_type {filters.file_type!r} is not a file extension such as 'py'")
        add("f.extension = ?", extension)
    if filters.directory:
        add("f.path LIKE ? ESCAPE '\\'", _like_prefix(directory_prefix(filters.directory)) + "%")
    if filters.path_glob:
        add("f.path ~ ?", glob_to_regex(filters.path_glob))
    return " AND ".join(conditions) or "TRUE", params


def directory_prefix(directory: str) -> str:
    """A repository-relative directory as a path prefix ending in '/'."""
    prefix = directory.strip().replace("\\", "/")
    while prefix.startswith("./"):
        prefix = prefix[2:]
    prefix = prefix.strip("/")
    if any(part == ".." for part in prefix.split("/")):
        raise SearchError(f"directory {directory!r} leaves the repository; give a path inside it")
    return f"{prefix}/" if prefix else ""


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_regex(glob: str) -> str:
    """A path glob (`**` any depth, `*` and `?` within a segment) as an anchored POSIX regex."""
    out = ["^"]
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out) + "$"


async def _semantic_ids(conn, vector: np.ndarray, where: str, params: list, k: int) -> list[int]:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}")
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = await conn.fetch(
            f"SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id WHERE {where} "
            f"ORDER BY c.embedding <=> $1 LIMIT {int(k)}",
            vector, *params,
        )
    return [row["id"] for row in rows]


async def _lexical_ids(conn, query: str, where: str, params: list, k: int) -> list[int]:
    terms = query_terms(query)
    if not terms:
        return []
    rows = await conn.fetch(
        f"SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id, "
        f"to_tsquery('english', $1) q WHERE c.search_vector @@ q AND {where} "
        f"ORDER BY ts_rank_cd(c.search_vector, q) DESC, c.id LIMIT {int(k)}",
        " | ".join(terms), *params,
    )
    return [row["id"] for row in rows]


def fused_scores(ranked: list[tuple[list[int], float]]) -> dict[int, float]:
    """Reciprocal Rank Fusion, normalised so 1.0 means first in every list."""
    best = sum(weight / (RRF_K + 1) for _, weight in ranked)
    scores: dict[int, float] = {}
    for ids, weight in ranked:
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    return {chunk_id: score / best for chunk_id, score in scores.items()}


async def _fetch_results(conn, ids: list[int], vector, query: str, mode: str,
                         fused: dict[int, float] | None) -> list[dict]:
    if not ids:
        return []
    score_sql, score_params = {
        "semantic": ("1 - (c.embedding <=> $2)", [vector]),
        "lexical": ("ts_rank_cd(c.search_vector, to_tsquery('english', $2), 32)",
                    [" | ".join(query_terms(query))]),
        "hybrid": ("0", []),
    }[mode]
    rows = await conn.fetch(
        f"SELECT c.id, f.path, c.start_line, c.end_line, c.symbol, c.language, c.content, "
        f" ({score_sql})::float8 AS score, "
        f" array_to_string((string_to_array(f.content, E'\\n'))"
        f"[greatest(c.start_line - {CONTEXT_LINES}, 1):c.start_line - 1], E'\\n') AS before, "
        f" array_to_string((string_to_array(f.content, E'\\n'))"
        f"[c.end_line + 1:c.end_line + {CONTEXT_LINES}], E'\\n') AS after "
        f"FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id = ANY($1::bigint[])",
        ids, *score_params,
    )
    by_id = {row["id"]: row for row in rows}
    return [_result(by_id[i], fused[i] if fused else by_id[i]["score"]) for i in ids if i in by_id]


def _result(row, score: float) -> dict:
    return {
        "chunk_id": str(row["id"]),
        "file_path": row["path"],
        "start_line": row["start_line"],
        "end_line": row["end_line"],
        "symbol": row["symbol"],
        "language": row["language"],
        "content": row["content"],
        "similarity_score": round(float(score), 4),
        "context_before": row["before"],
        "context_after": row["after"],
    }


_pools: dict[tuple[str, int], asyncpg.Pool] = {}


async def _pool(url: str) -> asyncpg.Pool:
    """One small pool per database URL and event loop: searches skip the connection set-up."""
    key = (url, id(asyncio.get_running_loop()))
    pool = _pools.get(key)
    if pool is None:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4, init=register_vector)
        _pools[key] = pool
    return pool


async def close_pools() -> None:
    for pool in list(_pools.values()):
        await pool.close()
    _pools.clear()
