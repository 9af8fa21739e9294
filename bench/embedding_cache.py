"""An on-disk cache in front of the embedder, so re-running the quality bench re-embeds nothing.

Keyed by (model, exact text): a change to what is embedded per chunk misses the cache and is
embedded afresh, so a cached figure is always the figure of the current code.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class CachedEmbedder:
    def __init__(self, embedder, path: Path) -> None:
        self._embedder = embedder
        self.model_name = embedder.model_name
        self._db = sqlite3.connect(path, check_same_thread=False)  # the pipeline embeds in a thread
        self._lock = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")
        self.computed = 0

    @property
    def dimensions(self) -> int:
        return self._embedder.dimensions

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_name}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self._db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        missing = sorted({i for i, key in enumerate(keys) if key not in found}, key=lambda i: keys[i])
        missing_keys = list(dict.fromkeys(keys[i] for i in missing))
        if missing_keys:
            first_index = {keys[i]: i for i in reversed(missing)}
            vectors = self._embedder.embed([texts[first_index[k]] for k in missing_keys])
            self.computed += len(missing_keys)
            rows = [(k, v.astype(np.float32).tobytes()) for k, v in zip(missing_keys, vectors, strict=True)]
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            self._db.commit()
            found.update(zip(missing_keys, (np.asarray(v, dtype=np.float32) for v in vectors), strict=True))
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([found[key] for key in keys])
