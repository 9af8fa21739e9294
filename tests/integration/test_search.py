"""Searching a project: modes, filters (with LIKE metacharacters), isolation, result shape."""
from __future__ import annotations

import pytest

from codebase_indexer import ranking, store
from codebase_indexer.provisioning import ensure_project_database
from codebase_indexer.search import SearchError

from .conftest import Project, write_tree

REPO = {
    "src/auth/login.py": ("def verify_password(user, password):\n"
                          "    \"\"\"Check a password against the stored hash.\"\"\"\n"
                          "    return hash_password(password) == user.password_hash\n"),
    "src/auth/tokens.ts": ("export function issueAccessToken(userId: string): string {\n"
                           "  return sign({ sub: userId }, SECRET);\n}\n"),
    "src/db/pool.go": ("package db\n\nfunc OpenConnectionPool(dsn string) (*Pool, error) {\n"
                       "\treturn connect(dsn, 10)\n}\n"),
    "src/100%_done/report.py": "def render_report(rows):\n    return '\\n'.join(str(r) for r in rows)\n",
    "src/100x_done/other.py": "def render_other(rows):\n    return rows\n",
    "docs/guide.md": "# Guide\n\nHow to log in and get an access token.\n",
}


@pytest.fixture(scope="module")
async def indexed(postgres_url, embedder, tmp_path_factory) -> Project:
    """REPO indexed once for the tests that only search it."""
    project = Project(await ensure_project_database(postgres_url, "search-tests"), embedder)
    await project.index(write_tree(tmp_path_factory.mktemp("search") / "repo", REPO))
    return project


@pytest.fixture
async def reindexed(project, tmp_path):
    """REPO in a project of its own, for a test that writes to it."""
    await project.index(write_tree(tmp_path / "repo", REPO))
    return project


async def test_result_object_has_the_documented_shape(indexed):
    result = await indexed.search("check a user's password", limit=3)
    assert set(result) == {"results", "total_count", "project_id", "database_name", "latency_ms"}
    top = result["results"][0]
    assert set(top) == {"chunk_id", "file_path", "start_line", "end_line", "symbol", "language",
                        "content", "similarity_score", "context_before", "context_after"}
    assert top["file_path"] == "src/auth/login.py" and top["symbol"] == "verify_password"
    assert result["total_count"] == len(result["results"]) <= 3
    assert result["database_name"] == indexed.database.database_name


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
async def test_every_mode_finds_the_function(indexed, mode):
    result = await indexed.search("open a database connection pool", mode=mode, limit=3)
    assert result["results"][0]["file_path"] == "src/db/pool.go"


async def test_lexical_matches_identifier_parts(indexed):
    result = await indexed.search("access token", mode="lexical")
    assert "src/auth/tokens.ts" in [r["file_path"] for r in result["results"]]


async def test_filters_language_extension_directory_glob(indexed):
    by_language = await indexed.search("function", language="go", limit=10)
    assert {r["file_path"] for r in by_language["results"]} == {"src/db/pool.go"}
    by_type = await indexed.search("token", file_type="TS", limit=10)
    assert {r["file_path"] for r in by_type["results"]} == {"src/auth/tokens.ts"}
    by_directory = await indexed.search("password", directory="./src/auth/", limit=10)
    assert {r["file_path"] for r in by_directory["results"]} <= {"src/auth/login.py", "src/auth/tokens.ts"}
    by_glob = await indexed.search("function", path_glob="src/**/*.py", limit=10)
    assert {r["file_path"] for r in by_glob["results"]} == {
        "src/auth/login.py", "src/100%_done/report.py", "src/100x_done/other.py"}


async def test_percent_and_underscore_in_directory_are_literal(indexed):
    result = await indexed.search("render rows", directory="src/100%_done", limit=10)
    assert {r["file_path"] for r in result["results"]} == {"src/100%_done/report.py"}
    assert (await indexed.search("render", directory="src/1%", limit=10))["results"] == []


@pytest.mark.parametrize("kwargs, message", [
    ({"limit": 0}, "limit"), ({"limit": 51}, "limit"), ({"mode": "fuzzy"}, "mode"),
    ({"directory": "../etc"}, "leaves the repository"), ({"file_type": "p y;"}, "file_type"),
    ({"file_type": ".ts"}, "starts with a dot"),
])
async def test_bad_arguments_are_refused_clearly(indexed, kwargs, message):
    with pytest.raises(SearchError, match=message):
        await indexed.search("anything", **kwargs)


async def test_oversized_and_empty_queries_are_refused(indexed):
    with pytest.raises(SearchError, match="limit is"):
        await indexed.search("x" * 5000)
    with pytest.raises(SearchError, match="empty"):
        await indexed.search("   ")


async def test_context_lines_come_from_stored_content(indexed):
    result = await indexed.search("open a database connection pool", limit=1)
    top = result["results"][0]
    assert top["context_before"] == "package db\n"
    assert top["context_after"] == ""


async def test_two_projects_never_see_each_others_chunks(indexed, other_project, tmp_path):
    await other_project.index(write_tree(tmp_path / "other", {"secret.py": "def launch_rockets():\n    pass\n"}))
    mine = await indexed.search("launch rockets", limit=50)
    theirs = await other_project.search("verify password", limit=50)
    assert "secret.py" not in {r["file_path"] for r in mine["results"]}
    assert {r["file_path"] for r in theirs["results"]} == {"secret.py"}


async def test_search_during_reindex_sees_the_previous_complete_file(reindexed, tmp_path):
    """A file's replacement is one transaction: until it commits, searches see the old file whole."""
    repo = write_tree(tmp_path / "repo2", {"src/db/pool.go": "package db\n\nfunc DrainQueue() {}\n"})
    conn = await store.connect(reindexed.database.url)
    try:
        from codebase_indexer.pipeline import prepare_file
        from codebase_indexer.scanning import ScanOptions, SkipCounter, list_candidates, read_source

        skips = SkipCounter()
        [candidate] = list_candidates(repo, ScanOptions(), skips)
        write = prepare_file(read_source(candidate, skips))
        write.vectors = list(reindexed.embedder.embed([store.embedding_text(c) for c in write.chunks]))
        transaction = conn.transaction()
        await transaction.start()
        await store.write_files(conn, [write], reindexed.embedder.model_name)
        during = await reindexed.search("open connection pool", directory="src/db", limit=5)
        symbols_during = [r["symbol"] for r in during["results"]]
        assert "OpenConnectionPool" in symbols_during and "DrainQueue" not in symbols_during
        await transaction.commit()
        after = await reindexed.search("drain queue", directory="src/db", limit=5)
        assert "DrainQueue" in [r["symbol"] for r in after["results"]]
        assert "OpenConnectionPool" not in [r["symbol"] for r in after["results"]]
    finally:
        await conn.close()


async def test_hybrid_candidates_carry_both_legs_scores(indexed):
    """A chunk only the lexical leg found still gets its cosine, and one only the dense leg found
    its lexical score: score fusion ranks every candidate on both."""
    import asyncpg
    from pgvector.asyncpg import register_vector

    from codebase_indexer import search

    vector = indexed.embedder.embed(["access token for a user"])[0]
    conn = await asyncpg.connect(indexed.database.url)
    await register_vector(conn)
    try:
        everything = dict(await search._semantic_hits(conn, vector, "TRUE", [], 50))
        semantic = await search._semantic_hits(conn, vector, "TRUE", [], 1)
        lexemes = await search._weighted_lexemes(conn, "access token for a user")
        lexical = await search._ranked_lexical_hits(conn, lexemes, "TRUE", [], 50)
        found = await search.hybrid_candidates(conn, vector, lexemes, semantic, lexical)
    finally:
        await conn.close()
    lexical_only = [c for c in found if c.semantic_rank is None]
    assert lexical_only and all(c.lexical > 0 and c.lexical_rank for c in lexical_only)
    for c in found:
        assert abs(c.cosine - everything[c.chunk_id]) < 1e-4
    assert {c.chunk_id for c in found} == {i for i, _ in semantic} | {i for i, _ in lexical}


async def test_feedback_moves_the_dense_query_towards_its_nearest_chunks(indexed):
    """Pseudo-relevance feedback reads the nearest chunks' vectors back from the index and searches
    again with the moved query; depth 0 is the plain dense leg."""
    import asyncpg
    import numpy as np
    from pgvector.asyncpg import register_vector

    from codebase_indexer import search

    vector = indexed.embedder.embed(["open a database connection pool"])[0]
    conn = await asyncpg.connect(indexed.database.url)
    await register_vector(conn)
    try:
        plain_vector, plain = await search.feedback_semantic_hits(conn, vector, "TRUE", [], 5, 0, 0.5)
        moved, hits = await search.feedback_semantic_hits(conn, vector, "TRUE", [], 5, 1, 0.5)
        nearest = await conn.fetchval("SELECT embedding FROM chunks WHERE id = $1", plain[0][0])
    finally:
        await conn.close()
    nearest = nearest.to_numpy() if hasattr(nearest, "to_numpy") else np.asarray(nearest)
    assert plain_vector is vector
    assert abs(float(np.linalg.norm(moved)) - 1.0) < 1e-5
    assert float(moved @ nearest) > float(vector @ nearest)  # moved towards the nearest chunk
    assert hits[0][0] == plain[0][0] and hits[0][1] > plain[0][1]


async def test_lexical_leg_leaves_doc_comment_phrasing_out_of_the_query(indexed):
    """"Returns" is in every chunk of code (`return`): the lexical leg drops it from a query phrased
    like a doc comment, yet keeps it when it is the whole query."""
    import asyncpg

    from codebase_indexer import search

    conn = await asyncpg.connect(indexed.database.url)
    try:
        phrased = await search._weighted_lexemes(conn, "Returns the access token", stop_words=ranking.DOC_STOP_WORDS)
        unfiltered = await search._weighted_lexemes(conn, "Returns the access token", stop_words=frozenset())
        alone = await search._weighted_lexemes(conn, "returns", stop_words=ranking.DOC_STOP_WORDS)
    finally:
        await conn.close()
    assert {lexeme for lexeme, _ in phrased} == {"access", "token"}
    assert "return" in {lexeme for lexeme, _ in unfiltered}
    assert [lexeme for lexeme, _ in alone] == ["return"]


async def test_alternatives_steer_the_semantic_search(indexed):
    """An alternative phrasing from the caller (here a hypothetical snippet) moves the query towards
    the code it describes; bad alternatives are refused with what to change."""
    def lead(result: dict) -> float:  # how far render_report is ahead of render_other
        score = {r["symbol"]: r["similarity_score"] for r in result["results"]}
        return score["render_report"] - score["render_other"]

    query = "render the rows"
    plain = await indexed.search(query, mode="semantic", limit=6)
    steered = await indexed.search(query, mode="semantic", limit=6,
                                   alternatives=["def render_report(rows): return '\\n'.join(str(r) for r in rows)"])
    assert lead(steered) > lead(plain) + 0.02
    with pytest.raises(SearchError, match="at most 5"):
        await indexed.search(query, alternatives=["x"] * 6)
    with pytest.raises(SearchError, match=r"alternatives\[1\] is empty"):
        await indexed.search(query, alternatives=["fine", "  "])
