"""Plain data shared by the scanner, the chunker, the store and the indexer."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SourceFile:
    """A file the scanner accepted: its text is decoded and its bytes hashed."""

    path: str  # relative to the repository root, POSIX separators
    language: str  # a key of languages.LANGUAGES, or "text"
    size: int  # bytes on disk
    content_hash: str  # sha256 hex of the raw bytes
    text: str  # decoded content (UTF-8, or a safe fallback decoding)
    mtime_ns: int | None = None  # modification time of the bytes read (freshness.py compares it)


@dataclass(frozen=True)
class Chunk:
    """A piece of a file that is embedded and searched on its own."""

    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    symbol: str | None  # qualified name, e.g. "Class.method"; None for line windows
    kind: str  # "function", "method", "class", ... or "window"
    language: str
    content: str


@dataclass(frozen=True)
class Symbol:
    """A definition in a file: a function, method, class, ... or a class's field or property."""

    name: str  # its own name: "send"
    qualified_name: str  # with its enclosing definitions: "Client.send"
    kind: str  # "function", "method", "class", "interface", "struct", "field", ...
    start_line: int  # 1-based, inclusive: its own syntax (decorators yes, comments above no)
    end_line: int
    signature: str  # its header up to the body, whitespace collapsed
    parent: str | None  # qualified name of the definition it is nested in
    position: int  # its index among the file's symbols (in order of start)
    parent_position: int | None  # the index of that enclosing definition


@dataclass
class Progress:
    files_total: int = 0
    files_done: int = 0
    chunks_done: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IndexSummary:
    """What one indexing run did; printed as JSON and kept with the run."""

    project_id: str
    database_name: str
    mode: str  # "full" | "incremental"
    files_total: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    chunks_created: int = 0
    chunks_deleted: int = 0
    chunks_skipped: int = 0  # chunks of indexed files left out, by reason ("secret": a credential in it)
    chunks_skipped_by_reason: dict[str, int] = field(default_factory=dict)
    embeddings_computed: int = 0
    embeddings_cached: int = 0
    duration_seconds: float = 0.0
    partial: bool = False  # one shard's part of a run whose other shards were still working

    def to_dict(self) -> dict:
        return asdict(self)
