"""The schema of a project database, as versioned migrations.

The embedding columns get their dimension when the project's model is first
recorded (`record_embedding_model`), because an HNSW index needs a fixed one.
"""
from __future__ import annotations

import json

import asyncpg

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
    CREATE TABLE project_meta (
        key   text PRIMARY KEY,
        value jsonb NOT NULL
    );
    CREATE TABLE files (
        id           bigserial PRIMARY KEY,
        path         text NOT NULL UNIQUE,
        extension    text NOT NULL,
        language     text NOT NULL,
        content_hash text NOT NULL,
        size         bigint NOT NULL,
        content      text NOT NULL,
        chunk_count  integer NOT NULL,
        indexed_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE chunks (
        id            bigserial PRIMARY KEY,
        file_id       bigint NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        start_line    integer NOT NULL,
        end_line      integer NOT NULL,
        symbol        text,
        kind          text NOT NULL,
        language      text NOT NULL,
        content       text NOT NULL,
        content_hash  text NOT NULL,
        embedding     vector NOT NULL,
        search_vector tsvector NOT NULL
    );
    CREATE INDEX chunks_file_id ON chunks (file_id);
    CREATE INDEX chunks_language ON chunks (language);
    CREATE INDEX chunks_search_vector ON chunks USING gin (search_vector);
    CREATE TABLE embedding_cache (
        model        text NOT NULL,
        content_hash text NOT NULL,
        embedding    vector NOT NULL,
        PRIMARY KEY (model, content_hash)
    );
    CREATE TABLE index_runs (
        run_id       text PRIMARY KEY,
        mode         text NOT NULL,
        state        text NOT NULL,
        files_total  integer NOT NULL DEFAULT 0,
        files_done   integer NOT NULL DEFAULT 0,
        chunks_done  integer NOT NULL DEFAULT 0,
        summary      jsonb,
        error        text,
        started_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        finished_at  timestamptz
    );
    """),
    (2, """
    CREATE INDEX files_path_pattern ON files (path text_pattern_ops);
    """),
    (3, """
    -- Document frequencies of lexemes, for IDF-weighted lexical ranking.
    CREATE TABLE lexeme_stats (
        lexeme text PRIMARY KEY,
        df     integer NOT NULL
    );
    INSERT INTO lexeme_stats (lexeme, df)
        SELECT word, ndoc FROM ts_stat('SELECT search_vector FROM chunks');
    """),
    (4, """
    -- Exact and regex search over lines (grep_code), and definitions (find_symbol, outlines).
    -- pg_trgm is a trusted extension: the database's owner role may create it without being
    -- a superuser (provisioning also creates it as the admin, beside pgvector).
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    -- Every line of every file (credential lines withheld); the trigram index narrows a
    -- LIKE / ILIKE / ~ / ~* to candidate lines, the predicate itself confirms them.
    CREATE TABLE lines (
        file_id bigint NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        line    integer NOT NULL,
        text    text NOT NULL,
        PRIMARY KEY (file_id, line)
    );
    CREATE INDEX lines_text_trgm ON lines USING gin (text gin_trgm_ops);
    CREATE TABLE symbols (
        file_id         bigint NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        position        integer NOT NULL,
        parent_position integer,
        name            text NOT NULL,
        qualified_name  text NOT NULL,
        kind            text NOT NULL,
        language        text NOT NULL,
        start_line      integer NOT NULL,
        end_line        integer NOT NULL,
        signature       text NOT NULL,
        parent          text,
        PRIMARY KEY (file_id, position)
    );
    -- text_pattern_ops: equality and LIKE 'prefix%' whatever the database's collation.
    CREATE INDEX symbols_name ON symbols (name text_pattern_ops);
    CREATE INDEX symbols_qualified_name ON symbols (qualified_name text_pattern_ops);
    CREATE INDEX symbols_name_trgm ON symbols USING gin (lower(name) gin_trgm_ops);
    CREATE INDEX symbols_qualified_trgm ON symbols USING gin (lower(qualified_name) gin_trgm_ops);
    CREATE INDEX symbols_enclosing ON symbols (file_id, start_line, end_line);
    -- Files indexed before this version have neither: their next run re-reads every file (the
    -- embedding cache keeps that from embedding anything again).
    UPDATE files SET content_hash = 'pending-lines-and-symbols';
    """),
    (5, """
    -- find_symbol's fuzzy match ranks by trigram distance: a GiST index returns the nearest names
    -- first and stops at the limit, where a GIN one must recheck every name sharing a trigram.
    DROP INDEX IF EXISTS symbols_name_trgm;
    DROP INDEX IF EXISTS symbols_qualified_trgm;
    CREATE INDEX symbols_name_gist ON symbols USING gist (lower(name) gist_trgm_ops);
    CREATE INDEX symbols_qualified_gist ON symbols USING gist (lower(qualified_name) gist_trgm_ops);
    """),
    (6, """
    -- A run of parallelism N is N shards (shards.py): each reports its own progress here and
    -- `index_runs` carries their sums; the paths a shard found gone wait in `index_run_gone`
    -- until the last shard's whole-run step deletes them.
    ALTER TABLE index_runs ADD COLUMN shard_count integer NOT NULL DEFAULT 1;
    CREATE TABLE index_run_shards (
        run_id       text NOT NULL REFERENCES index_runs (run_id) ON DELETE CASCADE,
        shard_index  integer NOT NULL,
        shard_count  integer NOT NULL,
        state        text NOT NULL,
        files_total  integer NOT NULL DEFAULT 0,
        files_done   integer NOT NULL DEFAULT 0,
        chunks_done  integer NOT NULL DEFAULT 0,
        summary      jsonb,
        error        text,
        started_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        finished_at  timestamptz,
        PRIMARY KEY (run_id, shard_index)
    );
    CREATE TABLE index_run_gone (
        run_id text NOT NULL REFERENCES index_runs (run_id) ON DELETE CASCADE,
        path   text NOT NULL,
        PRIMARY KEY (run_id, path)
    );
    """),
    (7, """
    -- The file's modification time when it was read (ns since the epoch): with `size`, what a
    -- search compares with the disk to say whether a result is stale (freshness.py).
    ALTER TABLE files ADD COLUMN mtime_ns bigint;
    """),
    (8, """
    -- A run of parallelism N > 1 assigns the files of its tree to shards once, by weight
    -- (shard_plans.py): every shard and every retry of one reads the same plan. Deleted by the
    -- run's whole-run step, or by the next run's plan when the run failed.
    CREATE TABLE index_run_plans (
        run_id      text PRIMARY KEY REFERENCES index_runs (run_id) ON DELETE CASCADE,
        shard_count integer NOT NULL CHECK (shard_count BETWEEN 2 AND 64),
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE index_run_plan_files (
        run_id      text NOT NULL REFERENCES index_run_plans (run_id) ON DELETE CASCADE,
        path        text NOT NULL,
        shard_index integer NOT NULL CHECK (shard_index BETWEEN 0 AND 63),
        PRIMARY KEY (run_id, path)
    );
    """),
    (9, """
    -- A second, short vector per chunk with a symbol: its name words and signature (store.name_text).
    -- The dense leg takes candidates from both HNSW indexes and scores each chunk by the better of
    -- its two cosines (search.py). Typed and indexed here when the model is already recorded.
    ALTER TABLE chunks ADD COLUMN name_embedding vector;
    DO $$
    DECLARE
        dim integer := (SELECT (value ->> 'dimensions')::integer FROM project_meta WHERE key = 'embedding');
    BEGIN
        IF dim IS NOT NULL THEN
            EXECUTE format('ALTER TABLE chunks ALTER COLUMN name_embedding TYPE vector(%s)', dim);
            CREATE INDEX chunks_name_embedding_hnsw ON chunks USING hnsw (name_embedding vector_cosine_ops);
        END IF;
    END $$;
    -- Chunks indexed before this version have no name vector: the next run reads every file again
    -- (the embedding cache keeps their chunk vectors; only the short name texts are embedded).
    UPDATE files SET content_hash = 'pending-name-vectors';
    """),
]

LATEST_VERSION = MIGRATIONS[-1][0]


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply the migrations not yet applied, each in its own transaction; return the version."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, sql in MIGRATIONS:
        async with conn.transaction():
            # Serialise concurrent migrators (two indexers starting at once).
            await conn.execute("SELECT pg_advisory_xact_lock(7201)")
            done = await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version)
            if not done:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    return LATEST_VERSION


class EmbeddingModelMismatch(ValueError):
    """The project was indexed with another embedding model."""


async def recorded_embedding_model(conn: asyncpg.Connection) -> tuple[str, int] | None:
    value = await conn.fetchval("SELECT value FROM project_meta WHERE key = 'embedding'")
    if value is None:
        return None
    data = json.loads(value)
    return data["model"], int(data["dimensions"])


async def record_embedding_model(conn: asyncpg.Connection, model: str, dimensions: int,
                                 *, replace: bool = False) -> None:
    """Fix the project's model and the embedding columns' dimension.

    With `replace`, a different model is accepted and every stored vector dropped
    (a full re-index follows); otherwise a different model is refused.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7202)")
        recorded = await recorded_embedding_model(conn)
        if recorded == (model, dimensions):
            return
        if recorded is not None and not replace:
            raise EmbeddingModelMismatch(
                f"this project was indexed with embedding model {recorded[0]!r} "
                f"({recorded[1]} dimensions), not {model!r} ({dimensions}); re-index it "
                f"with a full re-index to switch models, or configure {recorded[0]!r}"
            )
        await conn.execute("DELETE FROM files")  # cascades to chunks: the vectors are of another space
        dim = int(dimensions)
        for column in ("embedding", "name_embedding"):
            await conn.execute(f"DROP INDEX IF EXISTS chunks_{column}_hnsw")
            await conn.execute(f"ALTER TABLE chunks ALTER COLUMN {column} TYPE vector({dim})")
            await conn.execute(f"CREATE INDEX chunks_{column}_hnsw ON chunks USING hnsw ({column} vector_cosine_ops)")
        await conn.execute(
            "INSERT INTO project_meta (key, value) VALUES ('embedding', $1::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            json.dumps({"model": model, "dimensions": dim}),
        )

