"""Definitions and stored text of one project database: find_symbol, get_file_outline, read_code.

All three read what the indexer stored (the `symbols` and `lines` tables), never the disk, so they
answer where the gateway cannot see the repository (on Kubernetes the workspace is the cluster's).
"""
from __future__ import annotations

import time
from pathlib import PurePosixPath
from typing import Literal, get_args

import asyncpg

from .connections import ConnectionBudget
from .grep import index_errors, like_escape
from .search import SearchError, answered_from, checked_limit, default_budget

SymbolMatch = Literal["exact", "prefix", "fuzzy"]
SYMBOL_MATCHES: tuple[str, ...] = get_args(SymbolMatch)
SymbolKind = Literal["function", "method", "constructor", "class", "interface", "struct", "enum", "union",
                     "trait", "impl", "record", "type", "module", "namespace", "macro", "field", "property"]
SYMBOL_KINDS: tuple[str, ...] = get_args(SymbolKind)
MAX_SYMBOL_LIMIT = 100
DEFAULT_SYMBOL_LIMIT = 20
MAX_NAME_CHARS = 300
MAX_PATH_CHARS = 1000
MAX_READ_LINES = 500
# How alike a fuzzy name must be (pg_trgm similarity of the names, 0..1), and how far it counts.
FUZZY_THRESHOLD = 0.3
MAX_FUZZY_COUNT = 1000

_SYMBOL_COLUMNS = ("s.name, s.qualified_name, s.kind, s.language, f.path, s.start_line, s.end_line, "
                   "s.signature")


async def find_symbol(url: str, name: str, *, project_id: str, database_name: str,
                      kind: str | None = None, match: str = "exact", language: str | None = None,
                      limit: int = DEFAULT_SYMBOL_LIMIT, budget: ConnectionBudget | None = None) -> dict:
    """Definitions named `name` (or `Outer.name`); exact and prefix matching are case-sensitive,
    best first the whole qualified name, then the shortest. Fuzzy is case-insensitive and
    tolerates typos, most similar first; its total_count stops at MAX_FUZZY_COUNT."""
    started = time.perf_counter()
    wanted = checked_symbol_name(name)
    limit = checked_limit(limit, MAX_SYMBOL_LIMIT)
    if match not in SYMBOL_MATCHES:
        raise SearchError(f"match must be one of {', '.join(SYMBOL_MATCHES)}, not {match!r}")
    filters, filter_values = _symbol_filters(kind, language)
    if match == "fuzzy":
        rows, total = await _fuzzy(url, budget, wanted, filters, filter_values, limit)
    else:
        condition, values = _name_condition(wanted, match)
        values.append(wanted)
        sql = (f"SELECT {_SYMBOL_COLUMNS}, count(*) OVER () AS total FROM symbols s "
               f"JOIN files f ON f.id = s.file_id WHERE {condition} {_numbered(filters, len(values))} "
               f"ORDER BY s.qualified_name = ${len(values)} DESC, length(s.qualified_name), f.path, s.start_line "
               f"LIMIT {int(limit)}")
        (rows,) = await _fetch(url, budget, [(sql, [*values, *filter_values])], plan_each=match == "prefix")
        total = rows[0]["total"] if rows else 0
    return {
        "symbols": [_symbol(row) for row in rows],
        "total_count": total,
        "truncated": total > len(rows),
        **answered_from(project_id, database_name, started),
    }


def _symbol_filters(kind: str | None, language: str | None) -> tuple[str, list]:
    """`AND ...` conditions on s with placeholders `?` (numbered by _numbered), and their values."""
    conditions, values = "", []
    if kind is not None:
        conditions += " AND s.kind = ?"
        values.append(checked_kind(kind))
    if language:
        conditions += " AND s.language = ?"
        values.append(language.strip().lower())
    return conditions, values


def _numbered(conditions: str, before: int) -> str:
    """The `?` placeholders of `conditions` as $n, numbered after `before` other parameters."""
    parts = conditions.split("?")
    return "".join(part + (f"${before + i + 1}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))


async def _fuzzy(url: str, budget: ConnectionBudget | None, wanted: str, filters: str, filter_values: list,
                 limit: int) -> tuple[list, int]:
    """The names nearest `wanted` by trigram distance (the qualified name when it is dotted)."""
    target = "lower(s.qualified_name)" if "." in wanted else "lower(s.name)"
    where = f"{target} % $1 {_numbered(filters, 1)}"
    nearest = (f"SELECT {_SYMBOL_COLUMNS} FROM (SELECT s.*, {target} <-> $1 AS distance FROM symbols s "
               f"WHERE {where} ORDER BY {target} <-> $1 LIMIT {int(limit)}) s JOIN files f ON f.id = s.file_id "
               f"ORDER BY s.distance, length(s.qualified_name), f.path, s.start_line")
    count = f"SELECT count(*) AS total FROM (SELECT 1 FROM symbols s WHERE {where} LIMIT {MAX_FUZZY_COUNT}) x"
    values = [wanted.lower(), *filter_values]
    rows, counted = await _fetch(url, budget, [(nearest, values), (count, values)], plan_each=True, fuzzy=True)
    return rows, counted[0]["total"]


async def get_file_outline(url: str, file_path: str, *, project_id: str, database_name: str,
                           budget: ConnectionBudget | None = None) -> dict:
    """The file's definitions, nested (members and methods under their class), with lines and signatures."""
    started = time.perf_counter()
    path = checked_file_path(file_path)
    async with (budget or default_budget()).pool(url) as pool, pool.acquire() as conn, index_errors():
        file = await _indexed_file(conn, path, project_id)
        rows = await conn.fetch(
            "SELECT position, parent_position, name, qualified_name, kind, start_line, end_line, signature "
            "FROM symbols WHERE file_id = $1 ORDER BY position", file["id"])
    return {
        "file_path": path,
        "language": file["language"],
        "line_count": file["line_count"],
        "symbols": _nested(rows),
        "symbol_count": len(rows),
        **answered_from(project_id, database_name, started),
    }


async def read_code(url: str, file_path: str, *, project_id: str, database_name: str,
                    start_line: int = 1, end_line: int | None = None, max_chars: int | None = None,
                    budget: ConnectionBudget | None = None) -> dict:
    """Lines start_line..end_line of a file as stored, at most MAX_READ_LINES a call and, with
    `max_chars`, as many whole lines as fit in that many characters (at least one, cut if it must);
    `truncated` and `next_start_line` say where to go on. Lines withheld for holding a credential
    read as empty and are listed in `withheld_lines`."""
    started = time.perf_counter()
    path = checked_file_path(file_path)
    first, last = _checked_range(start_line, end_line)
    async with (budget or default_budget()).pool(url) as pool, pool.acquire() as conn, index_errors():
        file = await _indexed_file(conn, path, project_id)
        line_count = file["line_count"]
        if first > line_count:
            raise SearchError(f"start_line {first} is past the end of {path}, which has {line_count} lines")
        last = min(last if last is not None else line_count, line_count, first + MAX_READ_LINES - 1)
        rows = await conn.fetch("SELECT line, text FROM lines WHERE file_id = $1 AND line BETWEEN $2 AND $3 "
                                "ORDER BY line", file["id"], first, last)
    stored = {row["line"]: row["text"] for row in rows}
    texts = [stored.get(n, "") for n in range(first, last + 1)]
    if max_chars is not None:
        texts = _fitting(texts, max_chars)
        last = first + len(texts) - 1
    wanted_last = end_line if end_line is not None else line_count
    truncated = last < min(wanted_last, line_count)
    return {
        "file_path": path,
        "language": file["language"],
        "start_line": first,
        "end_line": last,
        "line_count": line_count,
        "content": "\n".join(texts),
        "withheld_lines": [n for n in range(first, last + 1) if n not in stored],
        "truncated": truncated,
        "next_start_line": last + 1 if truncated else None,
        **answered_from(project_id, database_name, started),
    }


def _fitting(texts: list[str], max_chars: int) -> list[str]:
    """The leading lines that fit in max_chars characters (joined by newlines); at least the first,
    cut to max_chars."""
    kept: list[str] = []
    size = -1
    for text in texts:
        size += len(text) + 1
        if size > max_chars:
            break
        kept.append(text)
    return kept or [texts[0][:max_chars]]


def checked_symbol_name(name: str) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise SearchError("name is empty: give a symbol name such as parse_config or Client.send")
    if len(text) > MAX_NAME_CHARS or "\x00" in text or "\n" in text:
        raise SearchError(f"name must be one line of at most {MAX_NAME_CHARS} characters")
    return text.replace("::", ".").replace("#", ".")


def checked_kind(kind: str) -> str:
    if kind not in SYMBOL_KINDS:
        raise SearchError(f"kind must be one of {', '.join(SYMBOL_KINDS)}, not {kind!r}")
    return kind


def checked_file_path(file_path: str) -> str:
    """A repository-relative POSIX path as the index stores it ("src/app.py")."""
    text = file_path.strip().replace("\\", "/") if isinstance(file_path, str) else ""
    while text.startswith("./"):
        text = text[2:]
    if not text or len(text) > MAX_PATH_CHARS or "\x00" in text:
        raise SearchError(f"file_path must be a repository-relative path of at most {MAX_PATH_CHARS} "
                          "characters, e.g. 'src/app.py' (grep_code and find_symbol show them)")
    if text.startswith("/") or ".." in PurePosixPath(text).parts:
        raise SearchError(f"file_path {file_path!r} is not relative to the repository root: give it as "
                          "grep_code, find_symbol and search_code show it, e.g. 'src/app.py'")
    return text


def _checked_range(start_line: int, end_line: int | None) -> tuple[int, int | None]:
    for label, value in (("start_line", start_line), ("end_line", end_line)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SearchError(f"{label} must be a line number of 1 or more, not {value!r}")
    if end_line is not None and end_line < start_line:
        raise SearchError(f"end_line {end_line} is before start_line {start_line}")
    return start_line, end_line


def _name_condition(wanted: str, match: str) -> tuple[str, list]:
    """SQL on `s` for the name, and its values ($1, ...). A dotted name is a qualified one: it
    matches that qualified name or one ending in ".<it>" (Client.send matches net.Client.send)."""
    last = wanted.rsplit(".", 1)[-1]
    qualified = "." in wanted
    if match == "exact":
        if not qualified:
            return "s.name = $1", [wanted]
        return ("s.name = $1 AND (s.qualified_name = $2 OR s.qualified_name LIKE $3)",
                [last, wanted, "%." + like_escape(wanted)])
    if match == "prefix":
        if not qualified:
            return "s.name LIKE $1", [like_escape(wanted) + "%"]
        return ("s.name LIKE $1 AND (s.qualified_name LIKE $2 OR s.qualified_name LIKE $3)",
                [like_escape(last) + "%", like_escape(wanted) + "%", "%." + like_escape(wanted) + "%"])
    raise ValueError(f"no plain condition for match {match!r}")


async def _fetch(url: str, budget: ConnectionBudget | None, queries: list[tuple[str, list]], *,
                 plan_each: bool, fuzzy: bool = False) -> list[list]:
    """The rows of each query, on one connection; `plan_each` plans every call for its own values
    (a LIKE prefix cannot use an index in a generic plan), `fuzzy` sets the similarity threshold."""
    budget = budget or default_budget()
    try:
        async with budget.pool(url) as pool, pool.acquire() as conn, index_errors():
            if not (plan_each or fuzzy):
                return [await conn.fetch(sql, *values) for sql, values in queries]
            async with conn.transaction():
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                if fuzzy:
                    await conn.execute(f"SET LOCAL pg_trgm.similarity_threshold = {FUZZY_THRESHOLD}")
                return [await conn.fetch(sql, *values) for sql, values in queries]
    except asyncpg.QueryCanceledError:
        raise SearchError(f"the symbol search was stopped by the {budget.limits.statement_timeout:g} s "
                          "statement timeout; give a longer name or a kind or language filter") from None


async def _indexed_file(conn: asyncpg.Connection, path: str, project_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT id, language, length(content) - length(replace(content, E'\\n', ''))"
        " + CASE WHEN content LIKE E'%\\n' THEN 0 ELSE 1 END AS line_count "
        "FROM files WHERE path = $1", path)
    if row is None:
        raise SearchError(f"{path!r} is not in the index of project {project_id!r}: give a path as "
                          "grep_code, find_symbol or search_code show it (relative to the repository root)")
    return row


def _nested(rows: list) -> list[dict]:
    by_position: dict[int, dict] = {}
    top: list[dict] = []
    for row in rows:
        node = {key: row[key] for key in ("name", "qualified_name", "kind", "start_line", "end_line", "signature")}
        node["children"] = []
        by_position[row["position"]] = node
        parent = by_position.get(row["parent_position"]) if row["parent_position"] is not None else None
        (parent["children"] if parent is not None else top).append(node)
    return top


def _symbol(row: asyncpg.Record) -> dict:
    return {
        "name": row["name"],
        "qualified_name": row["qualified_name"],
        "kind": row["kind"],
        "language": row["language"],
        "file_path": row["path"],
        "start_line": row["start_line"],
        "end_line": row["end_line"],
        "signature": row["signature"],
    }
