"""Hybrid ranking: how the dense and lexical legs' candidates are fused and ordered.

Pure functions over candidates that carry both legs' scores, so the quality bench's tuner
(bench/tune_ranking.py) runs exactly the code search_code runs. Every constant of DEFAULT_RULES
names the tuning run that chose it (docs/retrieval-quality.md has the protocol and the runs).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

import numpy as np

from .lexical import identifier_parts

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# English function words carry no evidence about which code is meant ("the", "of", "a", ...).
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "if", "in", "into",
    "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with",
    "which", "when", "where", "what", "who", "whose", "not", "no", "given", "value", "values",
    "returns", "return"))


@dataclass(frozen=True)
class Candidate:
    """One chunk found by either leg, with both legs' scores for it."""

    chunk_id: int
    path: str
    symbol: str | None
    cosine: float  # similarity of the query and the chunk vectors
    lexical: float  # IDF-weighted lexical score (0 when no query word is in the chunk)
    semantic_rank: int | None  # 1-based rank in the dense leg's list, None when not in it
    lexical_rank: int | None


@dataclass(frozen=True)
class RankingRules:
    # "rrf": weighted Reciprocal Rank Fusion of the legs' ranks; "score": a weighted sum of each
    # leg's score scaled to 0..1 over the candidates (semantic_weight and lexical_weight weigh both).
    fusion: str
    rrf_k: float
    semantic_weight: float
    lexical_weight: float
    # A chunk whose symbol or file name holds query words is raised by this share of its score
    # per fraction of the query's words it holds.
    name_match_boost: float


# Chosen on the tuning packages only (docs/retrieval-quality.md). Every value below comes from the
# run of 2026-12-02, `bench/tune_ranking.py` (grid over fusion, k, lexical weight, name boost and a
# same-file decay, since dropped): tuning mean hybrid MRR@10 0.539 with the rules before it
# (RRF k=5, lexical weight 0.5) -> 0.560.
DEFAULT_RULES = RankingRules(
    fusion="score",  # 0.560 vs 0.551 for the best RRF (k=5, lexical 0.7, boost 0.5)
    rrf_k=5,  # used by fusion="rrf" only: the value of the click-only grid before that run
    semantic_weight=1.0,
    lexical_weight=0.3,  # of 0.2 / 0.3 / 0.5 / 0.7: 0.557 / 0.560 / 0.553 / below
    name_match_boost=0.5,  # of 0 / 0.25 / 0.5: 0.556 / 0.559 / 0.560
)


# Pseudo-relevance feedback on the dense leg (Rocchio): the query vector q becomes
# q + FEEDBACK_WEIGHT x mean(its FEEDBACK_DEPTH nearest chunk vectors), and the dense leg is searched
# again with it. Off: `bench/tune_feedback.py`, 2026-12-02, found no depth (3 / 5 / 10) and weight
# (0.25 / 0.5 / 1.0) that lifts the tuning mean (0.5590 without; best 0.5554 at 5 / 0.25). A single
# target per query is what such feedback helps least: the nearest chunks are mostly other functions.
FEEDBACK_DEPTH = 0
FEEDBACK_WEIGHT = 0.0


# A second, short vector per chunk (store.name_text: kind, name words, signature): the dense leg scores
# a chunk max(chunk cosine, NAME_VECTOR_WEIGHT x name cosine); 0 leaves name vectors out of search.
# `bench/tune_vectors.py --primary code` and `--second signature --weights 0.95 --sums 0.5,0.75,1.0
# --means 0.5,0.75,1.0`, 2026-12-02: tuning mean 0.5590 without; the signature text at weight
# 0.8 / 0.9 / 0.95 / 1.0 / 1.05: 0.5614 / 0.5639 / 0.5663 / 0.5654 / 0.5642 (name words alone: at most
# 0.5625). The sum c1 + 0.5 x c2 scored 0.5683 but lowers every chunk without a name (a window, module
# code) against the definitions; scored neutrally, (c1 + 0.5 x c2) / 1.5 with c2 = c1 for those, 0.5639.
NAME_VECTOR_WEIGHT = 0.95


def moved_towards(query: np.ndarray, neighbours: np.ndarray, weight: float) -> np.ndarray:
    """q + weight x mean(neighbours), scaled back to unit length (the chunk vectors are unit length):
    feedback's and the alternative phrasings' query vector."""
    moved = np.asarray(query, dtype=np.float32) + weight * np.asarray(neighbours, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(moved))
    return moved / norm if norm else np.asarray(query, dtype=np.float32)


# search_code's `alternatives` (the caller's other phrasings): the dense leg searches with
# q + ALTERNATIVES_WEIGHT x mean(their vectors). `bench/tune_alternatives.py`, 2026-12-02, with one
# rule-written alternative per query (a hypothetical signature of the query's content words): weight
# 0.25 / 0.5 / 1.0 -> tuning mean 0.5614 / 0.5598 / 0.5538, none 0.5607.
ALTERNATIVES_WEIGHT = 0.25


# Words of doc-comment phrasing ("Returns the given value", "Creates a new instance of ...") that
# say nothing about which code is meant; the lexical leg leaves them out of the query. A fixed list,
# written before measuring; whether to use it was chosen by `bench/tune_lexical.py`, 2026-12-02.
DOC_STOP_WORDS = frozenset((
    "return", "returns", "returned", "given", "specified", "provided", "whether", "object", "objects",
    "instance", "method", "function", "argument", "arguments", "parameter", "parameters", "value",
    "values", "used", "use", "using", "should", "can", "may", "must", "also", "any", "each", "every",
    "all", "some", "one", "new", "otherwise", "true", "false", "none", "null", "if", "else"))
# `bench/tune_lexical.py`, 2026-12-02 (stop list none / doc x LEXICAL_TERMS 4 / 6 / 8 / 10): tuning mean
# 0.5590 without, 0.5607 with, but held-out 0.5804 -> 0.5780: within noise on tuning and a loss where it
# counts, so it stays off (the protocol judges a change by the held-out mean).
LEXICAL_STOP_WORDS: frozenset[str] = frozenset()


def lexical_query(query: str, stop_words: frozenset[str] = LEXICAL_STOP_WORDS) -> str:
    """The query without its stop words (plain words only, "Returns" or "the": an identifier such
    as `get_value` or `Value.x` is never dropped); the query itself when nothing would be left."""
    tokens = query.split()
    kept = [t for t in tokens if not _plain_stop_word(t.strip(_PUNCTUATION), stop_words)]
    return " ".join(kept) if kept and len(kept) < len(tokens) else query


_PUNCTUATION = ",.;:!?()[]{}\"'`"


def _plain_stop_word(word: str, stop_words: frozenset[str]) -> bool:
    return word.isalpha() and (word.islower() or word.istitle()) and word.lower() in stop_words


def _stem(word: str) -> str:
    """A crude English stem, enough to match "parses"/"parsing" to the identifier part "parse"."""
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word  # "parse" ~ "parsed"


@lru_cache(maxsize=1024)
def query_words(query: str) -> frozenset[str]:
    """The query's content words, stemmed: identifiers split into parts, stop words dropped."""
    words: set[str] = set()
    for token in _WORD.findall(query):
        for part in identifier_parts(token) or [token.lower()]:
            if part not in STOP_WORDS and len(part) > 1:
                words.add(_stem(part))
    return frozenset(words)


@lru_cache(maxsize=65536)
def name_words(path: str, symbol: str | None) -> frozenset[str]:
    """The stemmed words of a chunk's symbol and its file's name (without the extension)."""
    words = identifier_parts(symbol.replace(".", "_")) if symbol else []
    words += identifier_parts(PurePosixPath(path).stem)
    return frozenset(_stem(w) for w in words)


def rrf_scores(candidates: list[Candidate], rules: RankingRules) -> dict[int, float]:
    """Weighted Reciprocal Rank Fusion of the two legs' ranks, 1.0 = first in both."""
    best = (rules.semantic_weight + rules.lexical_weight) / (rules.rrf_k + 1)
    scores = {}
    for c in candidates:
        score = 0.0
        if c.semantic_rank is not None:
            score += rules.semantic_weight / (rules.rrf_k + c.semantic_rank)
        if c.lexical_rank is not None:
            score += rules.lexical_weight / (rules.rrf_k + c.lexical_rank)
        scores[c.chunk_id] = score / best
    return scores


def score_fusion(candidates: list[Candidate], rules: RankingRules) -> dict[int, float]:
    """Weighted sum of the cosine (min-max over the candidates) and the lexical score (/ its best)."""
    if not candidates:
        return {}
    low = min(c.cosine for c in candidates)
    spread = (max(c.cosine for c in candidates) - low) or 1.0
    best_lexical = max(c.lexical for c in candidates) or 1.0
    total = rules.semantic_weight + rules.lexical_weight
    return {c.chunk_id: (rules.semantic_weight * (c.cosine - low) / spread
                         + rules.lexical_weight * max(c.lexical, 0.0) / best_lexical) / total
            for c in candidates}


def ranked(candidates: list[Candidate], query: str, rules: RankingRules = DEFAULT_RULES) -> list[tuple[int, float]]:
    """(chunk id, score), best first: fused, then raised for query words in names."""
    scores = rrf_scores(candidates, rules) if rules.fusion == "rrf" else score_fusion(candidates, rules)
    wanted = query_words(query)
    if rules.name_match_boost and wanted:
        for c in candidates:
            share = len(wanted & name_words(c.path, c.symbol)) / len(wanted)
            scores[c.chunk_id] *= 1 + rules.name_match_boost * share
    order = sorted(candidates, key=lambda c: (-scores[c.chunk_id], c.chunk_id))
    return [(c.chunk_id, scores[c.chunk_id]) for c in order]
