"""Texts embedded through a TorchScript trace of the model instead of SentenceTransformer.encode.

A query is a dozen tokens: its forward pass is a few hundred small tensor operations, and Python's
dispatch of each is a large part of the time. The trace runs the same operations on the same
weights (cosine agreement with encode ≥ 0.99999 on every text tried, tests/integration/
test_traced_encoding.py) and saves about a third of a query's embedding time (docs/
retrieval-quality.md). Batches of chunks gain nothing measurable, so indexers keep encode.
Only the plain pipeline is traced, a transformer, mean pooling and normalisation, as
all-MiniLM-L6-v2 and most sentence-transformers models are; any other one keeps encode.
Imported only once a model is loading, so torch is already there.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

TracedEncoder = Callable[[Sequence[str]], np.ndarray]
_PROBE = ["def probe(first, second): return first + second", "a shorter text"]


def traced_encoder(model: SentenceTransformer) -> TracedEncoder | None:
    """Unit-length vectors for a few texts through a trace of `model`; None when the model is not
    the plain pipeline or cannot be traced (then the caller keeps encode)."""
    if not _plain_mean_pooling(model):
        return None
    tokenizer, transformer = model.tokenizer, model[0].auto_model
    max_length = int(model.max_seq_length)

    def tokens(texts: Sequence[str]):
        batch = tokenizer(list(texts), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"]

    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # The tracer warns of branches it fixes (attention-mask shortcuts, the same for every
            # input here: the tests compare vectors with and without padding), and torch 2.13 of
            # TorchScript's deprecation: a torch without it lands in the except below.
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(_MeanPooled(transformer).eval(), tokens(_PROBE),
                                                      check_trace=False))
    except Exception as exc:  # a model whose forward pass TorchScript cannot follow
        log.info("queries are embedded with encode: the model could not be traced (%s)", exc)
        return None

    def encode(texts: Sequence[str]) -> np.ndarray:
        with torch.inference_mode():
            return traced(*tokens(texts)).numpy().astype(np.float32, copy=False)

    return encode


def _plain_mean_pooling(model: SentenceTransformer) -> bool:
    names = [type(module).__name__ for module in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    config = model[1].get_config_dict()
    return config.get("pooling_mode") == "mean" and config.get("include_prompt", True) \
        and hasattr(model[0], "auto_model") and not getattr(model, "default_prompt_name", None)


class _MeanPooled(torch.nn.Module):
    """The transformer's token vectors, averaged over the real (unpadded) tokens, unit length."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=1)
