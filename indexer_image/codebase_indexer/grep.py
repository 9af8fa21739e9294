"""Exact and regex search over the lines of one project database (`grep_code`).

Every line of every indexed file is a row of `lines` (credential lines withheld) with a trigram
GIN index (pg_trgm): a LIKE / ILIKE / ~ / ~* narrows to candidate lines through the index and
the predicate itself confirms each one, so every matching line is found and `total_count` is
the true number even when `matches` stops at the limit. Regexes are PostgreSQL's (ARE, close to
PCRE: classes, `\\d \\w \\s`, non-greedy quantifiers, lookahead); `\\b` and `\\B` mean word
boundaries, as in PCRE, not a backspace.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from .connections import ConnectionBudget
from .search import SearchError, SearchFilters, answered_from, checked_limit, default_budget, filter_clause

MAX_PATTERN_CHARS = 1000
MAX_GREP_LIMIT = 500
DEFAULT_GREP_LIMIT = 50
MAX_LINE_TEXT_CHARS = 500  # a matching line is shown up to this many characters
# Members (fields, properties) are not what a line "is in": the enclosing definition is.
_ENCLOSING_KINDS_EXCLUDED = ["field", "property"]


async def grep_code(url: str, pattern: str, *, project_id: str, database_name: str,
                    regex: bool = False, case_sensitive: bool = True, language: str | None = None,
                    file_type: str | None = None, directory: str | None = None,
                    path_glob: str | None = None, limit: int = DEFAULT_GREP_LIMIT,
                    budget: ConnectionBudget | None = None) -> dict:
    """Every line of the project matching `pattern`, in path and line order; the `grep_code` result."""
    started = time.perf_counter()
    pattern = checked_pattern(pattern)
    limit = checked_limit(limit, MAX_GREP_LIMIT)
    where, params = filter_clause(SearchFilters(language, file_type, directory, path_glob),
                                  language_column="f.language")
    predicate, column, operand, raw_value = _predicate(pattern, regex=regex, case_sensitive=case_sensitive)
    raw = f"${len(params) + 2}"
    sql = (
        f"WITH hits AS ("
        f" SELECT l.file_id, f.path, l.line, l.text, count(*) OVER () AS total"
        f" FROM lines l JOIN files f ON f.id = l.file_id"
        f" WHERE {predicate} AND {where} ORDER BY f.path, l.line LIMIT {int(limit)}) "
        f"SELECT h.path, h.line, h.total, left(h.text, {MAX_LINE_TEXT_CHARS}) AS text, "
        f" {column.replace('$raw', raw)} AS column, "
        f" (SELECT s.qualified_name FROM symbols s WHERE s.file_id = h.file_id"
        f"   AND s.start_line <= h.line AND s.end_line >= h.line"
        f"   AND s.kind <> ALL(${len(params) + 3}::text[])"
        f"   ORDER BY s.start_line DESC, s.end_line LIMIT 1) AS symbol "
        f"FROM hits h ORDER BY h.path, h.line"
    )
    budget = budget or default_budget()
    try:
        async with budget.pool(url) as pool, pool.acquire() as conn, conn.transaction(), index_errors():
            # A generic plan cannot know how selective the pattern is: plan each one for itself.
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            if regex:
                await _check_regex(conn, operand, pattern)
            rows = await conn.fetch(sql, operand, *params, raw_value, _ENCLOSING_KINDS_EXCLUDED)
    except asyncpg.QueryCanceledError:
        raise SearchError(
            f"grep was stopped by the {budget.limits.statement_timeout:g} s statement timeout; make the "
            "pattern more selective (a literal of 3 or more characters narrows through the index), "
            "or add a directory, language or file_type filter") from None
    except asyncpg.ProgramLimitExceededError as exc:
        raise SearchError(f"the regular expression {pattern!r} is too complex for the server: {exc}") from None
    total = rows[0]["total"] if rows else 0
    return {
        "matches": [_match(row) for row in rows],
        "total_count": total,
        "truncated": total > len(rows),
        **answered_from(project_id, database_name, started),
    }


@asynccontextmanager
async def index_errors() -> AsyncIterator[None]:
    """A database indexed before grep and symbols existed (schema version 3) says what to do."""
    try:
        yield
    except asyncpg.UndefinedTableError:
        raise SearchError("this project's index predates exact search and symbols: re-index it "
                          "(index_repository; nothing is embedded again) and retry") from None


def checked_pattern(pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise SearchError("pattern is empty: give the text or regular expression to look for")
    if "\x00" in pattern or "\n" in pattern:
        raise SearchError("pattern contains a NUL or newline character: grep_code matches within one line")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise SearchError(f"pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}")
    return pattern


def like_escape(text: str) -> str:
    """`text` as a LIKE pattern matching itself (with the default escape character `\\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def pcre_to_postgres(pattern: str) -> str:
    """`\\b` / `\\B` (word boundary / not one, as in PCRE) as PostgreSQL spells them (`\\y` / `\\Y`);
    everything else unchanged. Inside a bracket expression a backslash escape is left alone."""
    out: list[str] = []
    i, in_brackets = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escape = pattern[i + 1]
            out.append({"b": "\\y", "B": "\\Y"}.get(escape, char + escape) if not in_brackets else char + escape)
            i += 2
            continue
        if char == "[" and not in_brackets:
            in_brackets = True
            out.append(char)
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):  # a leading ] is a literal member
                out.append("]")
                i += 1
        elif char == "]" and in_brackets:
            in_brackets = False
            out.append(char)
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _predicate(pattern: str, *, regex: bool, case_sensitive: bool) -> tuple[str, str, str, str]:
    """(condition on l.text with $1, the 1-based match column with $raw, $1's value, $raw's value)."""
    if regex:
        operator, flags = ("~", "") if case_sensitive else ("~*", "i")
        translated = pcre_to_postgres(pattern)
        return f"l.text {operator} $1", f"regexp_instr(h.text, $raw, 1, 1, 0, '{flags}')", translated, translated
    like = f"%{like_escape(pattern)}%"
    if case_sensitive:
        return "l.text LIKE $1", "strpos(h.text, $raw)", like, pattern
    return "l.text ILIKE $1", "strpos(lower(h.text), lower($raw))", like, pattern


async def _check_regex(conn: asyncpg.Connection, operand: str, pattern: str) -> None:
    """Compile the regex once up front: an invalid one is an error even where no line is a candidate."""
    try:
        await conn.fetchval("SELECT '' ~ $1", operand)
    except asyncpg.InvalidRegularExpressionError as exc:
        reason = str(exc).removeprefix("invalid regular expression: ")
        raise SearchError(f"invalid regular expression {pattern!r}: {reason}; "
                          "for a plain string, call grep without regex") from None


def _match(row: asyncpg.Record) -> dict:
    return {
        "file_path": row["path"],
        "line": row["line"],
        "column": max(1, row["column"] or 1),
        "line_text": row["text"],
        "symbol": row["symbol"],
    }
