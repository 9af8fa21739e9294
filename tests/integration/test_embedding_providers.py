"""The remote embedding providers speak their servers' protocols.

No embedding server (TEI, vLLM, Ollama) can run on this machine, so a tiny HTTP
server in this file stands in for one: it answers the two request shapes with
deterministic vectors and records what it was sent.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from codebase_indexer.embedding import EmbeddingError, create_embedder
from codebase_indexer.settings import EmbeddingSettings


class _EmbeddingServer(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, dict(self.headers), body))
        if body.get("model") == "missing-model":
            self._send(404, {"error": "model not found"})
            return
        vectors = [[float(len(text)), 1.0, 0.0] for text in body["input"]]
        if self.path == "/v1/embeddings":
            data = [{"index": i, "embedding": v} for i, v in enumerate(vectors)]
            self._send(200, {"data": list(reversed(data))})  # order must come from "index"
        elif self.path == "/api/embed":
            self._send(200, {"embeddings": vectors})
        else:
            self._send(404, {})

    def _send(self, status, payload):
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("provider, path", [("openai", "/v1/embeddings"), ("ollama", "/api/embed")])
def test_remote_provider_embeds_in_input_order(server_url, provider, path):
    embedder = create_embedder(EmbeddingSettings(provider=provider, model="m", url=server_url, api_key="k"))
    assert embedder.dimensions == 3 and embedder.model_name == "m"
    vectors = embedder.embed(["a", "abcd", "ab"])
    lengths = vectors[:, 0] / vectors[:, 1]  # undo the normalisation
    assert np.allclose(lengths, [1, 4, 2])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    sent_path, headers, _ = _EmbeddingServer.requests[-1]
    assert sent_path == path and headers["Authorization"] == "Bearer k"


def test_server_errors_are_explained(server_url):
    with pytest.raises(EmbeddingError, match="answered 404"):
        create_embedder(EmbeddingSettings(provider="openai", model="missing-model", url=server_url))


def test_unreachable_server_and_missing_settings_are_explained():
    with pytest.raises(EmbeddingError, match="unreachable"):
        create_embedder(EmbeddingSettings(provider="ollama", model="m", url="http://127.0.0.1:9", timeout_seconds=2))
    with pytest.raises(EmbeddingError, match="needs a URL"):
        create_embedder(EmbeddingSettings(provider="openai", model="m"))
    with pytest.raises(EmbeddingError, match="unknown embedding provider"):
        create_embedder(EmbeddingSettings(provider="word2vec"))

