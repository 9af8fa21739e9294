"""The gateway's query embedder (a trace of the model, traced_encoder.py) gives the vectors the
indexer's embedder gives, so a search ranks as it did; a model it cannot trace keeps encode."""
from __future__ import annotations

import numpy as np
import pytest

from codebase_indexer.embedding import QUERY_TEXTS, LocalEmbedder
from codebase_indexer.traced_encoder import traced_encoder

QUERIES = [
    "Return the number of items in the iterable.",
    "  parse an HTTP header value into a dict\n",  # surrounding whitespace, as an agent may send it
    "Écrire le fichier de configuration — avec des accents",
    "connection pool",
    "def retry(func, attempts=3, backoff=0.5):",
    "x",
]


@pytest.fixture(scope="module")
def query_embedder():
    embedder = LocalEmbedder(query_threads=1)
    embedder.embed(["warm-up"])
    return embedder


def test_queries_get_the_vectors_of_the_plain_model(query_embedder, embedder):
    assert query_embedder._query_encoder is not None, "the default model should take the traced path"
    for texts in ([QUERIES[0]], QUERIES, QUERIES[:QUERY_TEXTS]):  # one query; several of unlike lengths
        traced, plain = query_embedder.embed(texts), embedder.embed(texts)
        assert traced.shape == plain.shape == (len(texts), 384)
        assert np.allclose(np.linalg.norm(traced, axis=1), 1.0, atol=1e-5)
        assert float((traced * plain).sum(axis=1).min()) > 0.99999


def test_a_query_longer_than_the_model_reads_is_cut_as_encode_cuts_it(query_embedder, embedder):
    long_query = "find the function that " + "validates and normalises every header " * 80
    traced, plain = query_embedder.embed([long_query]), embedder.embed([long_query])
    assert float(traced[0] @ plain[0]) > 0.99999


def test_many_texts_at_once_take_the_batched_path_with_the_same_vectors(query_embedder, embedder):
    texts = [f"{query} ({i})" for i, query in enumerate(QUERIES * 3)]
    assert len(texts) > QUERY_TEXTS
    assert float((query_embedder.embed(texts) * embedder.embed(texts)).sum(axis=1).min()) > 0.99999


def test_a_model_that_pools_otherwise_is_not_traced(embedder):
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(embedder._path))
    cls_pooled = SentenceTransformer(modules=[transformer, models.Pooling(384, pooling_mode="cls")], device="cpu")
    assert traced_encoder(cls_pooled) is None
