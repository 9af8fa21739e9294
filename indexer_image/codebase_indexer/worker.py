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

from .embedding import Embedder, LocalEmbedder, create_embedder
from .indexer_main import EXIT_CANCELLED, EXIT_OK, _emit, _run, _usage_problem, build_parser
from .log_redaction import redact_logs

REQUEST_KEYS = ("database_url", "project_id", "source", "run_id", "mode")
MAX_REQUEST_BYTES = 64 * 1024


def main() -> int:
    redact_logs()
    embedder = create_embedder()
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
        args, problem = _arguments(line)
        if problem:
            _emit(args, {"ok": False, "reason": "InvalidArguments", "message": problem})
            continue
        result, _code = await _run(args, embedder=embedder, cancelled=cancelled)
        _emit(args, result)
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


def _arguments(line: bytes):
    """The run's arguments: the worker's environment (as codebase-indexer reads it) plus the request."""
    args = build_parser().parse_args([])
    args.termination_message_path = None
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return args, "a request is one JSON object a line"
    if not isinstance(request, dict) or not all(isinstance(request.get(k), str) for k in REQUEST_KEYS):
        return args, f"a request needs the strings {', '.join(REQUEST_KEYS)}"
    args.database_url, args.project, args.source = request["database_url"], request["project_id"], request["source"]
    args.run_id, args.mode, args.git_url = request["run_id"], request["mode"], None
    if args.mode not in ("full", "incremental"):
        return args, "mode is full or incremental"
    return args, _usage_problem(args)


if __name__ == "__main__":
    sys.exit(main())
