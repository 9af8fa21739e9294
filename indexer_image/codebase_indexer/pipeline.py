"""Index one repository into its project database: scan → chunk → embed → store.

Embedding dominates the cost, so it runs in a worker thread while the event
loop reads and chunks the next batch and writes the previous one.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg

from . import index_runs, shard_plans, store, whole_run
from .chunking import TooManyChunks, parse_file
from .credentials import find_credential
from .embedding import Embedder
from .models import Chunk, IndexSummary, Progress, SourceFile, Symbol
from .outcomes import CANCELLED, FAILED
from .scanning import ScanOptions, SkipCounter, list_candidates, read_source
from .schema import migrate, record_embedding_model, recorded_embedding_model
from .secret_files import credential_lines, without_credentials
from .settings import DEFAULT_LOCK_WAIT_SECONDS
from .shards import WHOLE, HeldSkips, Owner, Shard, ShardSkips, chunk_budget
from .store import FileWrite

BATCH_CHUNKS = 256
BATCH_FILES = 128
BATCH_TEXT_BYTES = 8 * 1024 * 1024
PROGRESS_INTERVAL_SECONDS = 1.0
_LOCK_POLL_SECONDS = 0.5


class IndexingError(Exception):
    """An indexing run failed; `reason` is a short CamelCase word for status fields."""

    reason = "Failed"


class SourceNotFound(IndexingError):
    reason = "SourceNotFound"


class IndexingCancelled(IndexingError):
    reason = "Cancelled"


class ModelMismatch(IndexingError):
    reason = "EmbeddingModelMismatch"


class ProjectBusy(IndexingError):
    reason = "ProjectBusy"


@dataclass
class _Batch:
    files: list[FileWrite] = field(default_factory=list)
    chunk_count: int = 0
    text_bytes: int = 0
    # per text to embed: where its vector goes, (file index, chunk index, whether the name vector)
    missing: list[list[tuple[int, int, bool]]] = field(default_factory=list)

    def full(self) -> bool:
        return (self.chunk_count >= BATCH_CHUNKS or len(self.files) >= BATCH_FILES
                or self.text_bytes >= BATCH_TEXT_BYTES)

    def add(self, write: FileWrite) -> None:
        self.files.append(write)
        self.chunk_count += len(write.chunks)
        self.text_bytes += len(write.source.text)


async def index_repository(
    url: str,
    source: Path,
    *,
    project_id: str,
    embedder: Embedder,
    full: bool = False,
    scan_options: ScanOptions | None = None,
    run_id: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    shard: Shard = WHOLE,
) -> IndexSummary:
    """Bring the project database in line with the repository at `source`; returns the summary.

    With a `shard` of a run of parallelism N, only the files that shard owns (shards.py): the
    returned summary is the run's when this shard finished last (it then did the whole-run step),
    else this shard's part (`partial`). Raises SourceNotFound, ModelMismatch, IndexingCancelled,
    ProjectBusy (another run kept the project for `lock_wait_seconds`), or database/embedding
    errors. The run's state and progress are kept in `index_runs` under `run_id`, each shard's in
    `index_run_shards`.
    """
    root = _checked_source(source)
    conn = await store.connect(url)
    try:
        await migrate(conn)
        run_id = run_id or uuid.uuid4().hex
        await _lock_project(conn, project_id, run_id, shard, lock_wait_seconds, should_cancel or (lambda: False))
        await index_runs.fail_abandoned_runs(conn, run_id)
        database = await conn.fetchval("SELECT current_database()")
        summary = IndexSummary(project_id=project_id, database_name=database,
                               mode="full" if full else "incremental")
        await index_runs.start_run(conn, run_id, summary.mode, shard)
        indexer = _Indexer(conn=conn, root=root, embedder=embedder, summary=summary, full=full,
                           scan_options=scan_options or ScanOptions(), run_id=run_id, shard=shard,
                           on_progress=on_progress, should_cancel=should_cancel or (lambda: False))
        try:
            await indexer.run()
            run_summary = await whole_run.finish_shard(conn, run_id, shard, summary)
        except IndexingCancelled:
            await _record_end(conn, run_id, shard, CANCELLED, "cancelled by request")
            raise
        except BaseException as exc:
            await _record_end(conn, run_id, shard, FAILED, str(exc) or type(exc).__name__)
            raise
        if run_summary is None:
            summary.partial = True
            return summary
        return run_summary
    finally:
        await conn.close()  # also releases the project lock


async def _lock_project(conn: asyncpg.Connection, project_id: str, run_id: str, shard: Shard,
                        wait_seconds: float, should_cancel: Callable[[], bool]) -> None:
    """Wait up to `wait_seconds` for the project's write lock; raise ProjectBusy naming the holder."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while not await index_runs.try_lock_project(conn, run_id, shard):
        if should_cancel():
            raise IndexingCancelled("indexing was cancelled while waiting for the project")
        if time.monotonic() >= deadline:
            holder = await index_runs.lock_holder(conn)
            if holder == run_id:  # our own run: another process is working this shard
                raise ProjectBusy(f"{shard} of run {run_id} is already being indexed by another process")
            raise ProjectBusy(
                f"project {project_id!r} is being indexed by run {holder or '(unknown)'}; "
                "wait for that run to finish (or cancel it) and start again")
        await asyncio.sleep(_LOCK_POLL_SECONDS)


def _checked_source(source: Path) -> Path:
    root = Path(source).expanduser()
    if not root.is_absolute():
        raise SourceNotFound(f"source path {str(source)!r} is not absolute; give the full path")
    if not root.exists():
        raise SourceNotFound(f"source path {str(root)!r} does not exist")
    if not root.is_dir():
        raise SourceNotFound(f"source path {str(root)!r} is not a directory")
    return root.resolve()


async def _record_end(conn: asyncpg.Connection, run_id: str, shard: Shard, state: str, error: str) -> None:
    """The shard ended without success: so did the run (naming the shard when there are several)."""
    with contextlib.suppress(Exception):  # the connection itself may be what failed; the caller reports the error
        await index_runs.finish_shard(conn, run_id, shard, state, error=error)
        await index_runs.finish_run(conn, run_id, state, error=error if shard.whole else f"{shard}: {error}")


@dataclass
class _Indexer:
    conn: asyncpg.Connection
    root: Path
    embedder: Embedder
    summary: IndexSummary
    full: bool
    scan_options: ScanOptions
    run_id: str
    on_progress: Callable[[Progress], None] | None
    should_cancel: Callable[[], bool]
    shard: Shard = WHOLE
    owner: Owner = WHOLE  # which paths this shard owns: its run's plan once known (shard_plans.py)
    progress: Progress = field(default_factory=Progress)
    skips: SkipCounter = field(default_factory=SkipCounter)
    chunk_skips: dict[str, int] = field(default_factory=dict)
    chunks_prepared: int = 0
    stored_times: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    retimed: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # unchanged content, new time
    _recorded_model: tuple[str, int] | None = None
    _last_progress: float = 0.0
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed"))

    async def run(self) -> None:
        started = time.monotonic()
        await self._check_model()
        all_stored = await store.stored_file_hashes(self.conn)
        self.stored_times = await store.stored_file_times(self.conn)
        # A run that wrote files and died before the whole-run step left this marker: the step
        # (whole_run.py) is then redone even when this run finds nothing to write.
        await index_runs.mark_whole_run_steps_pending(self.conn, self.run_id)
        listing_skips = HeldSkips()  # counted once this shard knows which paths it owns
        listed = await asyncio.to_thread(list_candidates, self.root, self.scan_options, listing_skips)
        self.owner = await shard_plans.planned_owner(self.conn, self.run_id, self.shard, listed,
                                                     None if self.full else all_stored)
        self.skips = listing_skips.replay(ShardSkips(self.owner))
        stored = {path: digest for path, digest in all_stored.items() if self.owner.owns(path)}
        candidates = [candidate for candidate in listed if self.owner.owns(candidate.path)]
        self.progress.files_total = self.summary.files_total = len(candidates)
        await self._report(force=True)
        seen: set[str] = set()
        try:
            await self._index_batches(self._batches(candidates, stored, seen))
        finally:
            self._pool.shutdown(wait=True)
        await store.record_file_times(self.conn, self.retimed)
        gone = sorted(set(stored) - seen)
        await index_runs.record_gone(self.conn, self.run_id, self.owner, gone)  # deleted by the whole-run step
        self.summary.files_deleted = len(gone)
        self.summary.files_skipped = self.skips.total()
        self.summary.skipped_by_reason = dict(sorted(self.skips.counts.items()))
        self.summary.chunks_skipped = sum(self.chunk_skips.values())
        self.summary.chunks_skipped_by_reason = dict(sorted(self.chunk_skips.items()))
        self.summary.duration_seconds = round(time.monotonic() - started, 3)
        await self._report(force=True)

    async def _check_model(self) -> None:
        """Refuse another model early, unless a full re-index replaces it."""
        recorded = self._recorded_model = await recorded_embedding_model(self.conn)
        if recorded and recorded[0] != self.embedder.model_name and not self.full:
            raise ModelMismatch(
                f"this project was indexed with embedding model {recorded[0]!r}, not "
                f"{self.embedder.model_name!r}; run a full re-index to switch models"
            )

    def _batches(self, candidates, stored: dict[str, str], seen: set[str]) -> Iterator[_Batch]:
        batch = _Batch()
        for candidate in candidates:
            source = read_source(candidate, self.skips)
            self.progress.files_done += 1
            if source is None:
                continue
            if not self.full and stored.get(source.path) == source.content_hash:
                seen.add(source.path)
                self.summary.files_unchanged += 1
                if self.stored_times.get(source.path) != (source.size, source.mtime_ns):
                    self.retimed[source.path] = (source.size, source.mtime_ns)
                continue
            write = self._prepared(source)
            if write is None:  # not seen: an earlier version of it leaves the index
                continue
            seen.add(source.path)
            batch.add(write)
            if batch.full():
                yield batch
                batch = _Batch()
        if batch.files:
            yield batch

    def _prepared(self, source: SourceFile) -> FileWrite | None:
        """The file's chunks; None (counted as too_many_chunks) past the file's or the run's budget."""
        options = self.scan_options
        try:
            write = prepare_file(source, chunk_skips=self.chunk_skips, max_chunks=options.max_chunks_per_file)
        except TooManyChunks:
            write = None
        budget = chunk_budget(options.max_chunks_per_run, self.shard)
        if write is None or self.chunks_prepared + len(write.chunks) > budget:
            self.skips.add("too_many_chunks", source.path)
            return None
        self.chunks_prepared += len(write.chunks)
        return write

    async def _index_batches(self, batches: Iterator[_Batch]) -> None:
        loop = asyncio.get_running_loop()
        pending: tuple[_Batch, asyncio.Future] | None = None
        for batch in batches:  # reading and chunking here overlap the embedding in flight
            self._raise_if_cancelled()
            texts = await self._attach_cached(batch)
            embedding = _embedding_of(loop, self._pool, self.embedder, texts)
            if pending is not None:
                await self._write(*pending)
            pending = (batch, embedding)
            await self._report()
        if pending is not None:
            await self._write(*pending)

    async def _attach_cached(self, batch: _Batch) -> list[str]:
        """Give each chunk its cached vectors (chunk and name); return the texts that still need
        embedding, each once (the pieces of a long definition share their name text)."""
        name_hashes = [[store.text_hash(t) if t is not None else None for t in f.name_texts] for f in batch.files]
        hashes = [h for f in batch.files for h in f.chunk_hashes] + [h for n in name_hashes for h in n if h]
        cached = await store.cached_vectors(self.conn, self.embedder.model_name, hashes)
        pending: dict[str, tuple[str, list[tuple[int, int, bool]]]] = {}
        for fi, write in enumerate(batch.files):
            write.vectors = [cached.get(h) for h in write.chunk_hashes]
            write.name_vectors = [cached.get(h) if h else None for h in name_hashes[fi]]
            for ci, (h, vector) in enumerate(zip(write.chunk_hashes, write.vectors, strict=True)):
                if vector is None:
                    pending.setdefault(h, (store.embedding_text(write.chunks[ci]), []))[1].append((fi, ci, False))
            for ci, (name_hash, text, vector) in enumerate(zip(name_hashes[fi], write.name_texts,
                                                               write.name_vectors, strict=True)):
                if name_hash is not None and text is not None and vector is None:
                    pending.setdefault(name_hash, (text, []))[1].append((fi, ci, True))
        batch.missing = [targets for _, targets in pending.values()]
        self.summary.embeddings_cached += len(hashes) - len(pending)
        return [text for text, _ in pending.values()]

    async def _ensure_model_recorded(self) -> None:
        """Record the model before the first write; needs the dimension only for a new model."""
        if self._recorded_model and self._recorded_model[0] == self.embedder.model_name:
            return
        dimensions = await asyncio.to_thread(lambda: self.embedder.dimensions)
        await record_embedding_model(self.conn, self.embedder.model_name, dimensions, replace=self.full)
        self._recorded_model = (self.embedder.model_name, dimensions)

    async def _write(self, batch: _Batch, embedding: asyncio.Future) -> None:
        vectors = await embedding
        self.summary.embeddings_computed += len(vectors)
        for targets, vector in zip(batch.missing, vectors, strict=True):
            for fi, ci, is_name in targets:
                write = batch.files[fi]
                (write.name_vectors if is_name else write.vectors)[ci] = vector
        await self._ensure_model_recorded()
        created, deleted = await store.write_files(self.conn, batch.files, self.embedder.model_name)
        self.summary.files_indexed += len(batch.files)
        self.summary.chunks_created += created
        self.summary.chunks_deleted += deleted
        self.progress.chunks_done += created

    def _raise_if_cancelled(self) -> None:
        if self.should_cancel():
            raise IndexingCancelled("indexing was cancelled")

    async def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = now
        await index_runs.record_progress(self.conn, self.run_id, self.progress, self.shard)
        if self.on_progress is not None:
            self.on_progress(replace(self.progress))


def _embedding_of(loop, pool, embedder: Embedder, texts: list[str]) -> asyncio.Future:
    if not texts:  # everything cached: no need to load the model
        future = loop.create_future()
        future.set_result([])
        return future
    return loop.run_in_executor(pool, embedder.embed, texts)


def prepare_file(source: SourceFile, *, chunk_skips: dict[str, int] | None = None,
                 max_chunks: int | None = None) -> FileWrite:
    """A file's chunks (blank ones and those carrying a credential dropped, NULs replaced), their
    embedding cache keys, its symbols and the lines it stores for grep (credential lines withheld);
    `chunk_skips` counts the dropped chunks by reason.
    Raises TooManyChunks when the file makes more than `max_chunks`."""
    if "\x00" in source.text:  # PostgreSQL text cannot hold NUL
        source = replace(source, text=source.text.replace("\x00", "\ufffd"))
    parsed = parse_file(source.path, source.text, source.language, max_chunks=max_chunks)
    chunks = [c for c in parsed.chunks if c.content.strip()]
    chunks, withheld = without_credentials(source.text, chunks)
    if withheld and chunk_skips is not None:
        chunk_skips["secret"] = chunk_skips.get("secret", 0) + withheld
    chunks = [replace(c, content=c.content.replace("\x00", "\ufffd")) for c in chunks]
    withheld_lines = credential_lines(source.text)
    symbols = [symbol if find_credential(symbol.signature) is None else replace(symbol, signature=symbol.name)
               for symbol in parsed.symbols]
    return FileWrite(source=source, chunks=chunks, chunk_hashes=[store.chunk_hash(c) for c in chunks],
                     name_texts=_name_texts(chunks, symbols), symbols=symbols, withheld_lines=withheld_lines)


def _name_texts(chunks: list[Chunk], symbols: list[Symbol]) -> list[str | None]:
    """Each chunk's name text (store.name_text), with the signature of the definition it belongs to."""
    by_name: dict[str, list[Symbol]] = {}
    for symbol in symbols:
        by_name.setdefault(symbol.qualified_name, []).append(symbol)
    return [store.name_text(c, _signature_of(c, by_name.get(c.symbol or "", []))) for c in chunks]


def _signature_of(chunk: Chunk, candidates: list[Symbol]) -> str | None:
    """The signature of the definition a chunk is (a piece) of: the one of that name starting
    inside the chunk, else the nearest one (a later piece of a long definition)."""
    if not candidates:
        return None
    best = min(candidates, key=lambda s: (not chunk.start_line <= s.start_line <= chunk.end_line,
                                          abs(s.start_line - chunk.start_line)))
    return best.signature
