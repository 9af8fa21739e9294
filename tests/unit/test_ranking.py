"""ranking.ranked: fusion of the two legs, name matches."""
from __future__ import annotations

import dataclasses

import numpy as np

from codebase_indexer.ranking import (
    DEFAULT_RULES,
    DOC_STOP_WORDS,
    Candidate,
    lexical_query,
    moved_towards,
    name_words,
    query_words,
    ranked,
)


def candidate(chunk_id: int, path: str = "pkg/a.py", symbol: str | None = None, cosine: float = 0.5,
              lexical: float = 0.0, semantic_rank: int | None = None, lexical_rank: int | None = None) -> Candidate:
    return Candidate(chunk_id, path, symbol, cosine, lexical, semantic_rank, lexical_rank)


def order(candidates: list[Candidate], query: str = "anything", **rules) -> list[int]:
    return [chunk_id for chunk_id, _ in ranked(candidates, query, dataclasses.replace(DEFAULT_RULES, **rules))]


def test_query_words_split_identifiers_drop_function_words_and_stem() -> None:
    assert query_words("Returns the parsed HTTPHeaders of a response") == {"pars", "http", "header", "respons"}
    assert name_words("src/http_client.py", "Client.parse_headers") == {"client", "pars", "header", "http"}


def test_rrf_puts_a_chunk_found_by_both_legs_first() -> None:
    both = candidate(1, semantic_rank=2, lexical_rank=2)
    semantic_only = candidate(2, semantic_rank=1)
    lexical_only = candidate(3, lexical_rank=1)
    assert order([semantic_only, lexical_only, both], fusion="rrf")[0] == 1


def test_score_fusion_uses_both_scores_of_every_candidate() -> None:
    # Found by the lexical leg only, yet its cosine is the best: score fusion sees it, rank fusion cannot.
    close_and_matching = candidate(1, cosine=0.80, lexical=2.0, lexical_rank=1)
    close_only = candidate(2, cosine=0.79, lexical=0.0, semantic_rank=1)
    far = candidate(3, cosine=0.30, lexical=0.1, semantic_rank=2)
    assert order([close_only, far, close_and_matching], fusion="score", semantic_weight=1.0,
                 lexical_weight=0.3) == [1, 2, 3]


def test_name_match_boost_raises_the_chunk_named_like_the_query() -> None:
    named = candidate(1, symbol="parse_headers", semantic_rank=2)
    other = candidate(2, symbol="render_body", semantic_rank=1)
    assert order([named, other], "parse the headers", fusion="rrf", name_match_boost=0.0) == [2, 1]
    assert order([named, other], "parse the headers", fusion="rrf", name_match_boost=0.5) == [1, 2]


def test_no_candidates_rank_to_nothing() -> None:
    assert ranked([], "query") == []
    assert order([], fusion="score") == []


def test_feedback_moves_the_query_towards_its_neighbours_and_keeps_unit_length() -> None:
    query = np.array([1.0, 0.0, 0.0])
    neighbours = np.array([[0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
    moved = moved_towards(query, neighbours, 0.5)
    assert abs(float(np.linalg.norm(moved)) - 1.0) < 1e-6
    assert float(moved @ neighbours.mean(axis=0)) > float(query @ neighbours.mean(axis=0))
    assert float(moved @ query) > 0.8  # still mostly the query at weight 0.5


def test_lexical_query_drops_doc_phrasing_but_never_an_identifier() -> None:
    assert lexical_query("Returns the given value as a new Header object.", DOC_STOP_WORDS) == "the as a Header"
    assert lexical_query("Return get_value of Value.object", DOC_STOP_WORDS) == "get_value of Value.object"
    assert lexical_query("Returns the value", frozenset()) == "Returns the value"
    assert lexical_query("returns given value", DOC_STOP_WORDS) == "returns given value"  # nothing left
