"""Name vectors: a second, short vector per chunk with a symbol (its kind, name words and signature),
and the dense leg that scores a chunk by the better of its two cosines."""
from __future__ import annotations

import asyncpg
import pytest
from pgvector.asyncpg import register_vector

from codebase_indexer import ranking, search, store
from codebase_indexer.postgres import database_url

from .conftest import write_tree

# A function whose body says nothing of what its name and parameters say, among others.
BODY = "\n".join(f"    total = total * 31 + ord(ch) % {n}" for n in range(3, 40))
REPO = {
    "app/mail.py": ("def send_welcome_email(recipient_address, template_name):\n"
                    "    total = 0\n    for ch in recipient_address:\n" + BODY + "\n    return total\n"),
    "app/paths.py": "def join_url_parts(base, *parts):\n    return '/'.join([base, *parts])\n",
    "app/numbers.py": "def clamp(value, low, high):\n    return max(low, min(high, value))\n",
    "app/notes.txt": "Remember to water the plants on Tuesday.\n",
}


@pytest.fixture
async def indexed(project, tmp_path):
    summary = await project.index(write_tree(tmp_path / "repo", REPO))
    return project, summary


async def _rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    await register_vector(conn)
    try:
        return await conn.fetch("SELECT c.symbol, c.kind, c.embedding, c.name_embedding FROM chunks c "
                                "JOIN files f ON f.id = c.file_id ORDER BY f.path, c.start_line")
    finally:
        await conn.close()


async def test_each_chunk_with_a_symbol_gets_a_vector_of_its_name_and_signature(indexed):
    project, summary = indexed
    rows = {row["symbol"]: row for row in await _rows(project.database.url)}
    expected = "function send welcome email\ndef send_welcome_email(recipient_address, template_name)"
    stored = rows["send_welcome_email"]["name_embedding"].to_numpy()
    assert float(stored @ project.embedder.embed([expected])[0]) > 0.999
    assert rows[None]["name_embedding"] is None  # the text file's window chunk has no name
    # Every chunk vector (the long function makes two chunks) and one name vector per definition.
    assert summary.embeddings_computed == len(await _rows(project.database.url)) + 3


async def test_the_dense_leg_finds_a_function_by_its_name_when_its_body_says_otherwise(indexed, monkeypatch):
    project, _ = indexed
    vector = project.embedder.embed(["send a welcome email to a recipient using a template"])[0]
    conn = await asyncpg.connect(project.database.url)
    await register_vector(conn)
    try:
        rows = await conn.fetch("SELECT id, embedding, name_embedding FROM chunks WHERE symbol = 'send_welcome_email'")
        weight = ranking.NAME_VECTOR_WEIGHT
        with_names = await search._semantic_hits(conn, vector, "TRUE", [], 4)
        monkeypatch.setattr(ranking, "NAME_VECTOR_WEIGHT", 0.0)
        without = dict(await search._semantic_hits(conn, vector, "TRUE", [], 4))
    finally:
        await conn.close()
    assert with_names[0][0] in {row["id"] for row in rows}
    for row in rows:  # each piece of the long function: the better of its two cosines
        chunk_cosine = float(vector @ row["embedding"].to_numpy())
        name_cosine = float(vector @ row["name_embedding"].to_numpy())
        assert name_cosine > chunk_cosine + 0.1  # the long body hides what the function is for
        assert dict(with_names)[row["id"]] == pytest.approx(max(chunk_cosine, weight * name_cosine), abs=1e-4)
        assert without[row["id"]] == pytest.approx(chunk_cosine, abs=1e-4)


async def test_an_index_of_before_name_vectors_gets_them_on_its_next_run(indexed, postgres_url, tmp_path):
    """Version 9 adds the column (typed and indexed, the model being known) and has every file read
    again: the chunk vectors come from the embedding cache, only the names are embedded."""
    project, _ = indexed
    conn = await asyncpg.connect(database_url(postgres_url, project.database.database_name))
    try:
        await conn.execute("ALTER TABLE chunks DROP COLUMN name_embedding")
        await conn.execute("DELETE FROM embedding_cache WHERE content_hash NOT IN (SELECT content_hash FROM chunks)")
        await conn.execute("DELETE FROM schema_migrations WHERE version >= 9")
    finally:
        await conn.close()
    with pytest.raises(search.SearchError, match="predates name vectors.*index it again"):
        await project.search("send a welcome email", limit=1)  # a reader cannot migrate: it says what to do
    again = await project.index(tmp_path / "repo")
    rows = await _rows(project.database.url)
    assert (again.files_indexed, again.embeddings_computed) == (4, 3)  # the names only
    assert all((row["name_embedding"] is None) == (row["symbol"] is None) for row in rows)
    conn = await asyncpg.connect(project.database.url)
    try:
        assert await conn.fetchval("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                   "WHERE attrelid = 'chunks'::regclass AND attname = 'name_embedding'") \
            == "vector(384)"
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'chunks_name_embedding_hnsw'") == 1
    finally:
        await conn.close()
    found = await project.search("send a welcome email to a recipient using a template", mode="semantic", limit=1)
    assert found["results"][0]["symbol"] == "send_welcome_email"


def test_name_text_names_the_definition_and_only_a_definition():
    from codebase_indexer.models import Chunk

    method = Chunk(3, 9, "Client.send", "method", "python", "def send(self, request):\n    ...")
    window = Chunk(1, 2, None, "window", "python", "x = 1\n")
    assert store.name_text(method, "def send(self, request, *, stream=False)") == \
        "method client send\ndef send(self, request, *, stream=False)"
    assert store.name_text(method, None) == "method client send\nClient.send"
    assert store.name_text(window, None) is None
