"""grep_code on a real project database: every matching line, the true total, special characters, filters."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from codebase_indexer.connections import ConnectionLimits
from codebase_indexer.grep import MAX_PATTERN_CHARS, grep_code, pcre_to_postgres
from codebase_indexer.provisioning import ensure_project_database
from codebase_indexer.search import SearchError, connection_budget
from tests.conftest import FIXTURES
from tests.repo_files import write_tree

from .conftest import Project

SPECIAL = {
    "special/chars.txt": (
        "100% done\n"
        "100 percent done\n"
        "under_score\n"
        "underXscore\n"
        "back\\slash C:\\path\\to\n"
        "a.b*c+d?(e)[f]{g}|h^$\n"
        "aXbbc+d\n"
        "Grüße aus Köln\n"
        "ÉCOLE école\n"
    ),
    # A line on which a regex with back-references backtracks for seconds (see the timeout test).
    "special/runaway.txt": "a" * 101 + "b\n",
}


class Indexed:
    """One polyglot repository (the fixture plus files of special characters), indexed once."""

    def __init__(self, project: Project, root: Path) -> None:
        self.project = project
        self.root = root

    async def grep(self, pattern: str, **kwargs) -> dict:
        database = self.project.database
        return await grep_code(database.reader_url, pattern, project_id=database.project_id,
                               database_name=database.database_name, **kwargs)

    def expected(self, matches) -> set[tuple[str, int]]:
        """(path, line) of every line of the files on disk for which `matches(line)` holds."""
        found = set()
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                    if matches(line):
                        found.add((path.relative_to(self.root).as_posix(), number))
        return found


@pytest.fixture(scope="module")
async def indexed(postgres_url, embedder, tmp_path_factory) -> Indexed:
    root = tmp_path_factory.mktemp("grep") / "repo"
    shutil.copytree(FIXTURES / "polyglot", root)
    write_tree(root, SPECIAL)
    project = Project(await ensure_project_database(postgres_url, "grep-polyglot"), embedder)
    await project.index(root, full=True)
    return Indexed(project, root)


def pairs(result: dict) -> set[tuple[str, int]]:
    return {(m["file_path"], m["line"]) for m in result["matches"]}


@pytest.mark.parametrize("literal", ["capacity", "return", "%", "_", "\\", "a.b*c+d?(e)[f]{g}|h^$",
                                     "C:\\path", "Köln", "école", "::"])
async def test_a_literal_finds_exactly_the_lines_that_hold_it(indexed, literal):
    result = await indexed.grep(literal, limit=500)
    assert pairs(result) == indexed.expected(lambda line: literal in line)
    assert result["total_count"] == len(result["matches"]) and not result["truncated"]


@pytest.mark.parametrize("literal", ["CAPACITY", "école", "KÖLN", "jobqueue"])
async def test_case_insensitive_literals(indexed, literal):
    result = await indexed.grep(literal, case_sensitive=False, limit=500)
    assert pairs(result) == indexed.expected(lambda line: literal.lower() in line.lower())
    assert result["matches"], literal


@pytest.mark.parametrize("pattern", [r"def \w+\(self", r"^\s*return\b", r"[A-Z][a-z]+Store\b",
                                     r"(Get|Put)\(", r"\bItem\b", r"buffer_(reserve|append)",
                                     r"[0-9]+% done$", r"a.b+c\+d"])
async def test_a_regex_finds_exactly_the_lines_it_matches(indexed, pattern):
    compiled = re.compile(pattern)
    result = await indexed.grep(pattern, regex=True, limit=500)
    assert pairs(result) == indexed.expected(lambda line: compiled.search(line) is not None)
    assert result["matches"], pattern


async def test_case_insensitive_regex(indexed):
    result = await indexed.grep(r"^\s*def (greet|add)", regex=True, case_sensitive=False, limit=500)
    compiled = re.compile(r"^\s*def (greet|add)", re.IGNORECASE)
    assert pairs(result) == indexed.expected(lambda line: compiled.search(line) is not None)


async def test_the_total_count_is_true_when_the_matches_are_capped(indexed):
    everything = indexed.expected(lambda line: "return" in line)
    result = await indexed.grep("return", limit=3)
    assert len(result["matches"]) == 3 and result["truncated"] is True
    assert result["total_count"] == len(everything) > 3
    ordered = sorted(everything)[:3]
    assert [(m["file_path"], m["line"]) for m in result["matches"]] == ordered


async def test_a_match_names_its_line_column_and_enclosing_definition(indexed):
    result = await indexed.grep("item.quantity += quantity")
    (match,) = result["matches"]
    assert match == {"file_path": "backend/inventory.py", "line": 30, "column": 9,
                     "line_text": "        item.quantity += quantity", "symbol": "Inventory.add"}
    java = (await indexed.grep('book.title() + " ("'))["matches"][0]
    assert java["symbol"] == "Library.Catalog.describe"
    field = (await indexed.grep("quantity: int = 0"))["matches"][0]
    assert field["symbol"] == "Item"  # a field's line is in its class, not "in" the field
    outside = (await indexed.grep("DEFAULT_CAPACITY = 100"))["matches"][0]
    assert outside["symbol"] is None
    assert set(result) == {"matches", "total_count", "truncated", "project_id", "database_name", "latency_ms"}


async def test_filters_narrow_by_language_directory_and_glob(indexed):
    go = await indexed.grep("key", language="go", limit=500)
    assert {m["file_path"] for m in go["matches"]} == {"backend/store.go"}
    native = await indexed.grep("size", directory="native", limit=500)
    assert {m["file_path"] for m in native["matches"]} == {"native/buffer.c", "native/matrix.cpp"}
    ts = await indexed.grep("job", path_glob="**/*.ts", case_sensitive=False, limit=500)
    assert {m["file_path"] for m in ts["matches"]} == {"web/queue.ts"}
    typed = await indexed.grep("return", file_type="rs", limit=500)
    assert {m["file_path"] for m in typed["matches"]} == set()  # Rust returns by expression here
    assert (await indexed.grep("Canvas", file_type="rs"))["total_count"] == 3  # lines 16, 29, 31


async def test_an_invalid_regex_is_an_error_naming_the_problem(indexed):
    with pytest.raises(SearchError, match=r"invalid regular expression '\(unclosed'.*parenthes"):
        await indexed.grep("(unclosed", regex=True)
    with pytest.raises(SearchError, match=r"invalid regular expression.*brackets"):
        await indexed.grep("[a-", regex=True)
    assert (await indexed.grep("(unclosed"))["total_count"] == 0  # literal: fine


async def test_bad_patterns_and_limits_are_refused(indexed):
    with pytest.raises(SearchError, match="pattern is empty"):
        await indexed.grep("")
    with pytest.raises(SearchError, match=f"the limit is {MAX_PATTERN_CHARS}"):
        await indexed.grep("x" * (MAX_PATTERN_CHARS + 1))
    with pytest.raises(SearchError, match="NUL or newline"):
        await indexed.grep("a\nb")
    for limit in (0, 501, True):
        with pytest.raises(SearchError, match="limit must be a whole number from 1 to 500"):
            await indexed.grep("x", limit=limit)


async def test_the_statement_timeout_stops_a_runaway_regex(indexed):
    budget = connection_budget(ConnectionLimits(statement_timeout=0.05))
    try:
        with pytest.raises(SearchError, match="stopped by the 0.05 s statement timeout"):
            # Four groups tied by back-references: every split of the 101 a's is tried (seconds).
            await grep_code(indexed.project.database.reader_url, r"^(a+)(a+)(a+)(a+)\4\3\2\1b",
                            regex=True, project_id="p", database_name="d", budget=budget)
    finally:
        await budget.close()


def test_word_boundaries_are_translated_outside_brackets():
    assert pcre_to_postgres(r"\bfoo\B") == r"\yfoo\Y"
    assert pcre_to_postgres(r"[\b]x\\b") == r"[\b]x\\b"  # a class member and an escaped backslash stay
    assert pcre_to_postgres(r"[]\b]\b") == r"[]\b]\y"


async def test_changed_and_deleted_files_are_searched_as_they_are_now(project, tmp_path):
    repo = write_tree(tmp_path / "repo", {"a.py": "def old_name():\n    pass\n", "b.py": "old_name()\n"})
    await project.index(repo)
    grep = lambda p: grep_code(project.database.url, p, project_id="p", database_name="d")  # noqa: E731
    assert pairs(await grep("old_name")) == {("a.py", 1), ("b.py", 1)}
    (repo / "a.py").write_text("def new_name():\n    pass\n")
    (repo / "b.py").unlink()
    await project.index(repo)
    assert pairs(await grep("old_name")) == set()
    assert pairs(await grep("new_name")) == {("a.py", 1)}


async def test_credential_lines_are_not_searchable(project, tmp_path):
    key = "AKIA" + "Z7QX3V5W2Y4T6R8P"
    repo = write_tree(tmp_path / "repo", {"conf.py": f"REGION = 'eu'\nKEY_ID = '{key}'\nOTHER = 1\n"})
    await project.index(repo)
    result = await grep_code(project.database.url, "=", project_id="p", database_name="d")
    assert pairs(result) == {("conf.py", 1), ("conf.py", 3)}
