"""An OpenAI-compatible embedding server that answers real batches only when a test lets it.

No embedding server can run on this machine, and the overlap of two runs must not depend on
timing: a run held here is certain to be inside its write phase (the project lock taken).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Gate:
    def __init__(self) -> None:
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.batches_waiting = 0
        self.url = ""

    def wait_for_batches(self, count: int, timeout: float = 120) -> None:
        """Block until `count` runs are held here (in their write phase)."""
        deadline = time.monotonic() + timeout
        while self.batches_waiting < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} runs did not reach the embedding server within {timeout} s")
            time.sleep(0.05)

    def env(self, **extra: str) -> dict[str, str]:
        """The indexer's settings for this server (a gateway passes them on to its indexers)."""
        return {"CODEBASE_MCP_EMBEDDING_PROVIDER": "openai", "CODEBASE_MCP_EMBEDDING_URL": self.url,
                "CODEBASE_MCP_EMBEDDING_MODEL": "gate-model", **extra}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["input"] != ["dimension probe"]:  # the probe passes: it comes before the lock
                    with gate._lock:
                        gate.batches_waiting += 1
                    gate.released.wait(timeout=120)
                data = [{"index": i, "embedding": [float(len(t) % 7) + 1.0, 1.0, float(i % 3)]}
                        for i, t in enumerate(body["input"])]
                raw = json.dumps({"data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def gate():
    gate = Gate()
    server = ThreadingHTTPServer(("127.0.0.1", 0), gate.handler())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gate.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield gate
    gate.released.set()
    server.shutdown()
