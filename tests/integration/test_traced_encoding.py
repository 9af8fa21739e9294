"""The gateway's query embedder: its texts go through the trace of the model (traced_encoder.py)
and get the vectors SentenceTransformer.encode gives, so search ranks as it did, on the threads it
was given; only it traces (as it loads); a model the trace does not cover keeps encode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codebase_indexer.embedding import LocalEmbedder, create_embedder
from codebase_indexer.settings import EmbeddingSettings
from codebase_indexer.traced_encoder import traced_encoder

QUERIES = [
    "Return the number of items in the iterable.",
    "  parse an HTTP header value into a dict\n",  # surrounding whitespace, as an agent may send it
    "Écrire le fichier de configuration — avec des accents",
    "connection pool",
    "def retry(func, attempts=3, backoff=0.5):",
    "x",
]
CHUNKS = [
    "method client send\n    def send(self, request, *, stream=False):\n        return self._send(request)\n",
    "function parse_header\ndef parse_header(line):\n" + "    key, _, value = line.partition(':')\n" * 30,
    "export function debounce(fn, wait) {\n  let timer;\n  return (...args) => { clearTimeout(timer); };\n}",
    "func (c *Command) Execute() error {\n\treturn c.ExecuteC()\n}\n",
]


def encoded(embedder: LocalEmbedder, texts: list[str]) -> np.ndarray:
    """What SentenceTransformer.encode gives, the reference."""
    return embedder._loaded().encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a * b).sum(axis=1).min())


@pytest.fixture(scope="module")
def query_threads() -> int:
    """A thread count this process is not on, so that running on it shows the setting took effect."""
    return 2 if torch.get_num_threads() != 2 else 3


@pytest.fixture(scope="module")
def query_embedder(query_threads):
    before = torch.get_num_threads()
    embedder = create_embedder(EmbeddingSettings(), query_threads=query_threads)
    embedder.embed(["warm-up"])
    yield embedder
    torch.set_num_threads(before)  # the rest of this test process keeps its own


def test_the_query_embedder_runs_on_the_threads_it_was_given(query_embedder, query_threads):
    assert isinstance(query_embedder, LocalEmbedder)
    assert torch.get_num_threads() == query_threads


def test_the_query_embedder_traces_as_it_loads_and_gives_encodes_vectors(query_embedder):
    assert query_embedder._traced is not None
    for texts in ([QUERIES[0]], QUERIES):  # one query; several of unlike lengths, padded together
        traced = query_embedder.embed(texts)
        assert traced.shape == (len(texts), 384)
        assert np.allclose(np.linalg.norm(traced, axis=1), 1.0, atol=1e-5)
        assert agreement(traced, encoded(query_embedder, texts)) > 0.99999


def test_a_text_longer_than_the_model_reads_is_cut_as_encode_cuts_it(query_embedder):
    long_query = "find the function that " + "validates and normalises every header " * 80
    assert agreement(query_embedder.embed([long_query]), encoded(query_embedder, [long_query])) > 0.99999


def test_many_texts_at_once_go_through_the_trace_in_batches(query_embedder):
    texts = [f"{chunk}\n# copy {i}" for i, chunk in enumerate(CHUNKS * 10)]  # 40 texts: more than a batch
    assert agreement(query_embedder.embed(texts), encoded(query_embedder, texts)) > 0.99999


def test_an_indexers_embedder_keeps_encode(embedder):
    embedder.embed(CHUNKS * 10)
    assert embedder._traced is None


def test_a_model_that_pools_otherwise_is_not_traced(embedder):
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(embedder._path))
    cls_pooled = SentenceTransformer(modules=[transformer, models.Pooling(384, pooling_mode="cls")], device="cpu")
    assert traced_encoder(cls_pooled) is None
