"""`python -m codebase_indexer.worker`: a long-lived indexer whose model stays loaded between runs.

A local gateway runs its watch-triggered runs here, so a saved file is searchable in about a
second instead of paying the model's load (several seconds) on every save. Same environment
and same runs as `codebase-indexer`; only the per-run settings arrive on stdin, one JSON object
a line (`database_url`, `project_id`, `source`, `run_id`, `mode`), never in argv. Each request
is answered with the indexer's JSON result line on stdout. SIGTERM cancels the run in flight
(answered `{"ok": false, "reason": "Cancelled"}`) and ends the worker with 143; end of input
ends it with 0.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys

from .configuration import InvalidSetting, load
from .embedding import Embedder, LocalEmbedder, create_embedder
from .indexer_main import EXIT_CANCELLED, EXIT_OK, _emit, _run, _usage_problem
from .log_redaction import redact_logs
from .settings import IndexerSettings

REQUEST_KEYS = ("database_url", "project_id", "source", "run_id", "mode")
MAX_REQUEST_BYTES = 64 * 1024


def main() -> int:
    redact_logs()
    embedder = create_embedder(load(IndexerSettings).embedding)
    if isinstance(embedder, LocalEmbedder):
        _ = embedder.dimensions  # load the model now, while no run waits for it
    return asyncio.run(_serve(embedder))


async def _serve(embedder: Embedder) -> int:
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, cancelled.set)
    reader = asyncio.StreamReader(limit=MAX_REQUEST_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not cancelled.is_set():
        line = await _next_line(reader, cancelled)
        if not line:
            return EXIT_CANCELLED if cancelled.is_set() else EXIT_OK
        settings, problem = _arguments(line)
        if problem:
            _emit(settings, {"ok": False, "reason": "InvalidArguments", "message": problem})
            continue
        result, _code = await _run(settings, embedder=embedder, cancelled=cancelled)
        _emit(settings, result)
    return EXIT_CANCELLED


async def _next_line(reader: asyncio.StreamReader, cancelled: asyncio.Event) -> bytes:
    reading = asyncio.ensure_future(reader.readline())
    stopping = asyncio.ensure_future(cancelled.wait())
    done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if reading not in done:
        reading.cancel()
        return b""
    return reading.result()


def _arguments(line: bytes) -> tuple[IndexerSettings, str | None]:
    """The run's settings: the worker's environment (as codebase-indexer reads it) plus the request."""
    fallback = IndexerSettings()
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return fallback, "a request is one JSON object a line"
    if not isinstance(request, dict) or not all(isinstance(request.get(k), str) for k in REQUEST_KEYS):
        return fallback, f"a request needs the strings {', '.join(REQUEST_KEYS)}"
    if request["mode"] not in ("full", "incremental"):
        return fallback, "mode is full or incremental"
    try:
        settings = load(IndexerSettings, database_url=request["database_url"], project_id=request["project_id"],
                        source_path=request["source"], run_id=request["run_id"], index_mode=request["mode"],
                        git_url=None, termination_message_path=None)
    except InvalidSetting as exc:
        return fallback, str(exc)
    return settings, _usage_problem(settings)


if __name__ == "__main__":
    sys.exit(main())
