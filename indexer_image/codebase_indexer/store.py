"""Writes to a project database: files with their chunks, lines and symbols; the embedding cache.

Each batch of files is written in one transaction: a file's old chunks, lines and symbols are
deleted and its new ones inserted together, so a search never sees half a file.
Chunks go in with COPY through a staging table, where `to_tsvector` is applied; lines and
symbols go in with COPY directly.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from .lexical import identifier_parts, searchable_text
from .models import Chunk, SourceFile, Symbol

_SYMBOL_COLUMNS = ("file_id", "position", "parent_position", "name", "qualified_name", "kind",
                   "language", "start_line", "end_line", "signature", "parent")
_STAGE_COLUMNS = ("path", "start_line", "end_line", "symbol", "kind", "language",
                  "content", "content_hash", "embedding", "name_hash", "name_embedding",
                  "lexical_symbol", "lexical_path", "lexical")


@dataclass
class FileWrite:
    """A file ready to be stored: its chunks, one vector per chunk and a name vector per chunk
    with a symbol (name_text)."""

    source: SourceFile
    chunks: list[Chunk]
    chunk_hashes: list[str]
    vectors: list[np.ndarray | None] = field(default_factory=list)  # one per chunk
    name_texts: list[str | None] = field(default_factory=list)  # one per chunk, None without a symbol
    name_vectors: list[np.ndarray | None] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)
    withheld_lines: frozenset[int] = frozenset()  # 1-based lines holding a credential: not stored

    def line_records(self, file_id: int):
        """(file_id, line, text) of every line but the withheld ones (a final newline ends the
        last line, as for grep: it starts no empty one)."""
        for number, text in enumerate(text_lines(self.source.text), start=1):
            if number not in self.withheld_lines:
                yield file_id, number, text.removesuffix("\r")

    def symbol_records(self, file_id: int):
        for s in self.symbols:
            yield (file_id, s.position, s.parent_position, s.name, s.qualified_name, s.kind,
                   self.source.language, s.start_line, s.end_line, s.signature, s.parent)


def text_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


def chunk_hash(chunk: Chunk) -> str:
    """The embedding cache key of a chunk's text (the text that is embedded)."""
    return text_hash(embedding_text(chunk))


def text_hash(text: str) -> str:
    """The embedding cache key of a text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embedding_text(chunk: Chunk) -> str:
    """What the model embeds: the kind and the symbol's words, then the code.

    Spelling the symbol out ("method get usage") measurably helps a general-purpose
    text model match natural-language queries (see `make bench`).
    """
    if not chunk.symbol:
        return chunk.content
    return f"{_name_line(chunk)}\n{chunk.content}"


def name_text(chunk: Chunk, signature: str | None) -> str | None:
    """The second, short text embedded for a chunk with a symbol: its kind and name words, then its
    definition's signature ("method client send\\ndef send(self, request, *, stream=False)").

    A query that describes what a definition does often matches its name and parameters better
    than its whole body; search scores a chunk by the better of its two vectors
    (ranking.NAME_VECTOR_WEIGHT). None for a chunk without a symbol (a window).
    """
    if not chunk.symbol:
        return None
    return f"{_name_line(chunk)}\n{signature or chunk.symbol}"


def _name_line(chunk: Chunk) -> str:
    return f"{chunk.kind} {' '.join(identifier_parts(chunk.symbol or ''))}"


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await register_vector(conn)
    return conn


async def stored_file_hashes(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT path, content_hash FROM files")
    return {row["path"]: row["content_hash"] for row in rows}


async def stored_file_times(conn: asyncpg.Connection) -> dict[str, tuple[int, int | None]]:
    """(size, mtime_ns) of every indexed file, as read when it was indexed."""
    rows = await conn.fetch("SELECT path, size, mtime_ns FROM files")
    return {row["path"]: (row["size"], row["mtime_ns"]) for row in rows}


async def record_file_times(conn: asyncpg.Connection, times: dict[str, tuple[int, int | None]]) -> None:
    """Files whose content did not change but whose time did (touched, checked out again)."""
    if times:
        await conn.execute(
            "UPDATE files SET size = t.size, mtime_ns = t.mtime_ns FROM unnest($1::text[], $2::bigint[], "
            "$3::bigint[]) AS t(path, size, mtime_ns) WHERE files.path = t.path",
            list(times), [size for size, _ in times.values()], [mtime for _, mtime in times.values()])


async def cached_vectors(conn: asyncpg.Connection, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
    if not hashes:
        return {}
    rows = await conn.fetch(
        "SELECT content_hash, embedding FROM embedding_cache WHERE model = $1 AND content_hash = ANY($2::text[])",
        model, list(set(hashes)),
    )
    return {row["content_hash"]: row["embedding"].to_numpy() for row in rows}


async def write_files(conn: asyncpg.Connection, files: list[FileWrite], model: str) -> tuple[int, int]:
    """Replace these files' rows and chunks in one transaction; returns (chunks created, deleted)."""
    if not files:
        return 0, 0
    async with conn.transaction():
        await _ensure_stage_table(conn)
        paths = [f.source.path for f in files]
        deleted = await conn.fetchval(
            "WITH gone AS (DELETE FROM files WHERE path = ANY($1::text[]) RETURNING chunk_count) "
            "SELECT coalesce(sum(chunk_count), 0) FROM gone", paths)
        file_ids = await conn.fetch(
            "INSERT INTO files (path, extension, language, content_hash, size, content, chunk_count, mtime_ns) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::int[], "
            "$8::bigint[]) RETURNING id, path",
            paths,
            [_extension(p) for p in paths],
            [f.source.language for f in files],
            [f.source.content_hash for f in files],
            [f.source.size for f in files],
            [f.source.text for f in files],
            [len(f.chunks) for f in files],
            [f.source.mtime_ns for f in files],
        )
        id_of = {row["path"]: row["id"] for row in file_ids}
        await conn.copy_records_to_table(
            "lines", records=[r for f in files for r in f.line_records(id_of[f.source.path])],
            columns=("file_id", "line", "text"))
        await conn.copy_records_to_table(
            "symbols", records=[r for f in files for r in f.symbol_records(id_of[f.source.path])],
            columns=_SYMBOL_COLUMNS)
        records = list(_stage_records(files))
        await conn.copy_records_to_table("chunk_stage", records=records, columns=_STAGE_COLUMNS)
        await conn.execute(
            "INSERT INTO chunks (file_id, start_line, end_line, symbol, kind, language, content, "
            " content_hash, embedding, name_embedding, search_vector) "
            "SELECT f.id, s.start_line, s.end_line, s.symbol, s.kind, s.language, s.content, "
            " s.content_hash, s.embedding, s.name_embedding, "
            " setweight(to_tsvector('english', s.lexical_symbol), 'A') || "
            " setweight(to_tsvector('english', s.lexical_path), 'B') || to_tsvector('english', s.lexical) "
            "FROM chunk_stage s JOIN files f ON f.path = s.path"
        )
        await conn.execute(
            "INSERT INTO embedding_cache (model, content_hash, embedding) "
            "SELECT DISTINCT ON (content_hash) $1, content_hash, embedding FROM ("
            " SELECT content_hash, embedding FROM chunk_stage UNION ALL"
            " SELECT name_hash, name_embedding FROM chunk_stage WHERE name_hash IS NOT NULL) AS t "
            "ON CONFLICT DO NOTHING", model)
        await conn.execute("TRUNCATE chunk_stage")
    return len(records), int(deleted)


async def delete_files(conn: asyncpg.Connection, paths: list[str]) -> int:
    """Remove files that left the repository; returns how many chunks went with them."""
    if not paths:
        return 0
    return int(await conn.fetchval(
        "WITH gone AS (DELETE FROM files WHERE path = ANY($1::text[]) RETURNING chunk_count) "
        "SELECT coalesce(sum(chunk_count), 0) FROM gone", paths))


async def refresh_lexeme_stats(conn: asyncpg.Connection) -> None:
    """Recount how many chunks hold each lexeme (IDF for lexical search), in one transaction."""
    async with conn.transaction():
        await conn.execute("DELETE FROM lexeme_stats")
        await conn.execute("INSERT INTO lexeme_stats (lexeme, df) "
                           "SELECT word, ndoc FROM ts_stat('SELECT search_vector FROM chunks')")
        await conn.execute(
            "INSERT INTO project_meta (key, value) SELECT 'lexical_documents', to_jsonb(count(*)) FROM chunks "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


async def _ensure_stage_table(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS chunk_stage ("
        " path text, start_line int, end_line int, symbol text, kind text, language text,"
        " content text, content_hash text, embedding vector, name_hash text, name_embedding vector,"
        " lexical_symbol text, lexical_path text, lexical text)"
    )


def _stage_records(files: list[FileWrite]):
    for f in files:
        names = f.name_texts or [None] * len(f.chunks)
        name_vectors = f.name_vectors or [None] * len(f.chunks)
        for chunk, content_hash, vector, name, name_vector in zip(
                f.chunks, f.chunk_hashes, f.vectors, names, name_vectors, strict=True):
            name_hash = text_hash(name) if name is not None and name_vector is not None else None
            yield (
                f.source.path, chunk.start_line, chunk.end_line, chunk.symbol, chunk.kind,
                chunk.language, chunk.content, content_hash, vector, name_hash, name_vector,
                searchable_text(chunk.symbol), searchable_text(f.source.path),
                searchable_text(chunk.content),
            )


def _extension(path: str) -> str:
    return PurePosixPath(path).suffix.lower().lstrip(".")
