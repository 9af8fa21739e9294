"""search_code's identifier rule: a query that is itself an identifier (`parse_config`,
`UserService.get`, `HTTPClient`) puts the chunks defining exactly that symbol first.

Semantic and lexical ranking both blur an exact name: an agent that types one wants its
definition, not the code most like it. The definitions come from the `symbols` table; each maps to
the chunk that holds it (its own chunk, else the smallest one around its first line).
"""
from __future__ import annotations

import re

import asyncpg

# One identifier, or several joined by `.` or `::` (a qualified name). Nothing else: no spaces.
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::)[A-Za-z_$][\w$]*)*")
MAX_IDENTIFIER_CHARS = 200


def identifier_query(query: str) -> str | None:
    """The query as a (dotted) symbol name when it is one identifier, else None."""
    text = query.strip()
    if len(text) > MAX_IDENTIFIER_CHARS or not _IDENTIFIER.fullmatch(text):
        return None
    return text.replace("::", ".")


async def defining_chunks(conn: asyncpg.Connection, name: str, where: str, params: list,
                          limit: int) -> list[int]:
    """Ids of the chunks holding definitions named exactly `name` (or ending in `.name` when it is
    qualified), best first: the whole qualified name, then the shortest; `where` filters on c and f
    with parameters from $2."""
    try:
        rows = await conn.fetch(
            f"SELECT DISTINCT ON (c.id) c.id, s.qualified_name = $1 AS whole, length(s.qualified_name) AS size, "
            f" f.path, s.start_line "
            f"FROM symbols s JOIN files f ON f.id = s.file_id "
            f"CROSS JOIN LATERAL (SELECT c.* FROM chunks c WHERE c.file_id = s.file_id "
            f"  AND c.start_line <= s.start_line AND c.end_line >= s.start_line "
            f"  ORDER BY c.symbol = s.qualified_name DESC, c.end_line - c.start_line, c.start_line LIMIT 1) c "
            f"WHERE s.name = regexp_replace($1, '^.*\\.', '') "
            f" AND (s.qualified_name = $1 OR right(s.qualified_name, length($1) + 1) = '.' || $1) "
            f" AND {where} ORDER BY c.id",
            name, *params)
    except asyncpg.UndefinedTableError:  # a database from before symbols, not migrated yet
        return []
    ranked = sorted(rows, key=lambda r: (not r["whole"], r["size"], r["path"], r["start_line"]))
    return [row["id"] for row in ranked[:limit]]


def identifier_first(ranked_ids: list[int], defining: list[int], limit: int) -> list[int]:
    """The defining chunks, then the rest of the ranking without them, `limit` in all."""
    first = set(defining)
    return (defining + [i for i in ranked_ids if i not in first])[:limit]
