"""find_symbol, get_file_outline and read_code on a real project database."""
from __future__ import annotations

import shutil

import pytest

from codebase_indexer.provisioning import ensure_project_database
from codebase_indexer.search import SearchError
from codebase_indexer.symbols import MAX_READ_LINES, find_symbol, get_file_outline, read_code
from tests.conftest import FIXTURES
from tests.repo_files import write_tree

from .conftest import Project

LONG_FILE_LINES = 700


class Indexed:
    def __init__(self, project: Project) -> None:
        self.database = project.database

    def _ids(self) -> dict:
        return {"project_id": self.database.project_id, "database_name": self.database.database_name}

    async def find(self, name: str, **kwargs) -> list[tuple[str, str, str, int]]:
        result = await find_symbol(self.database.reader_url, name, **self._ids(), **kwargs)
        return [(s["qualified_name"], s["kind"], s["file_path"], s["start_line"]) for s in result["symbols"]]

    async def outline(self, path: str) -> dict:
        return await get_file_outline(self.database.reader_url, path, **self._ids())

    async def read(self, path: str, **kwargs) -> dict:
        return await read_code(self.database.reader_url, path, **self._ids(), **kwargs)


@pytest.fixture(scope="module")
async def indexed(postgres_url, embedder, tmp_path_factory) -> Indexed:
    root = tmp_path_factory.mktemp("symbols") / "repo"
    shutil.copytree(FIXTURES / "polyglot", root)
    key = "AKIA" + "Z7QX3V5W2Y4T6R8P"
    write_tree(root, {
        "long/numbers.txt": "".join(f"line {n}\n" for n in range(1, LONG_FILE_LINES + 1)),
        "long/settings.py": f"REGION = 'eu'\nKEY_ID = '{key}'\nRETRIES = 3",  # no final newline
    })
    project = Project(await ensure_project_database(postgres_url, "symbols-polyglot"), embedder)
    await project.index(root, full=True)
    return Indexed(project)


async def test_exact_names_find_every_definition_of_that_name(indexed):
    assert sorted(await indexed.find("add")) == [
        ("Cart.add", "method", "web/cart.js", 15), ("Inventory.add", "method", "backend/inventory.py", 25)]
    assert await indexed.find("Add") == []  # exact is case-sensitive


@pytest.mark.parametrize("name", ["Matrix.scale", "geo.Matrix.scale", "geo::Matrix::scale"])
async def test_qualified_names_match_the_whole_name_or_its_end(name, indexed):
    assert await indexed.find(name) == [("geo.Matrix.scale", "method", "native/matrix.cpp", 35)]


async def test_a_partial_qualifier_does_not_match_inside_a_segment(indexed):
    assert await indexed.find("atrix.scale") == []


async def test_prefix_and_kind_and_language(indexed):
    assert [s[0] for s in await indexed.find("buffer_", match="prefix")] == [
        "buffer_free", "buffer_append", "buffer_reserve"]  # shortest first
    assert [s[0] for s in await indexed.find("Store", kind="struct")] == ["Store"]
    assert {s[1] for s in await indexed.find("Shape")} == {"enum", "impl"}
    assert [s[2] for s in await indexed.find("Shape", kind="impl", language="rust")] == ["backend/shapes.rs"] * 2
    assert [s[0] for s in await indexed.find("Library.Catalog.d", match="prefix")] == ["Library.Catalog.describe"]


async def test_fuzzy_is_case_insensitive_and_tolerates_typos(indexed):
    assert (await indexed.find("JOBQUEUE", match="fuzzy"))[0][0] == "JobQueue"
    assert (await indexed.find("inventry", match="fuzzy"))[0][0] == "Inventory"
    assert (await indexed.find("totalarea", match="fuzzy"))[0][0] == "Canvas.total_area"


async def test_fields_and_properties_are_symbols(indexed):
    assert await indexed.find("Balance") == [("Account.Balance", "property", "backend/Accounts.cs", 31)]
    assert await indexed.find("Item.quantity") == [("Item.quantity", "field", "backend/inventory.py", 15)]


async def test_find_symbol_result_shape_and_total(indexed):
    result = await find_symbol(indexed.database.reader_url, "total", limit=1, match="prefix",
                               project_id="p", database_name="d")
    assert result["total_count"] == 3 and result["truncated"] is True  # total, total_area, total (Cart)
    (symbol,) = result["symbols"]
    assert set(symbol) == {"name", "qualified_name", "kind", "language", "file_path", "start_line",
                           "end_line", "signature"}


@pytest.mark.parametrize("arguments, message", [
    ({"name": ""}, "name is empty"),
    ({"name": "x" * 301}, "at most 300 characters"),
    ({"name": "x", "kind": "klass"}, "kind must be one of"),
    ({"name": "x", "match": "regex"}, "match must be one of exact, prefix, fuzzy"),
    ({"name": "x", "limit": 101}, "limit must be a whole number from 1 to 100"),
])
async def test_find_symbol_refuses_bad_arguments(indexed, arguments, message):
    with pytest.raises(SearchError, match=message):
        await find_symbol(indexed.database.reader_url, project_id="p", database_name="d", **arguments)


async def test_the_outline_nests_members_under_their_containers(indexed):
    outline = await indexed.outline("backend/inventory.py")
    shape = [(s["qualified_name"], s["kind"], s["start_line"], s["end_line"],
              [c["name"] for c in s["children"]]) for s in outline["symbols"]]
    assert shape == [
        ("Item", "class", 10, 15, ["sku", "quantity"]),
        ("Inventory", "class", 18, 38, ["__init__", "add", "skus", "total"]),
        ("restock", "function", 41, 47, []),
    ]
    assert outline["symbols"][1]["children"][1]["signature"] == "def add(self, sku: str, quantity: int = 1) -> Item"
    assert outline["line_count"] == 52 and outline["language"] == "python" and outline["symbol_count"] == 9
    cpp = await indexed.outline("./native/matrix.cpp")
    (namespace,) = cpp["symbols"]
    matrix = namespace["children"][0]
    assert (namespace["name"], matrix["qualified_name"]) == ("geo", "geo.Matrix")
    assert [c["name"] for c in matrix["children"]] == ["at", "set", "rows_", "cols_", "data_"]


async def test_read_code_returns_the_stored_lines(indexed):
    result = await indexed.read("backend/inventory.py", start_line=25, end_line=27)
    assert result["content"] == (
        "    def add(self, sku: str, quantity: int = 1) -> Item:\n"
        '        """Put stock on the shelf; refuses to go over capacity."""\n'
        "        if self.total() + quantity > self.capacity:")
    assert (result["start_line"], result["end_line"]) == (25, 27)
    assert (result["truncated"], result["next_start_line"]) == (False, None)
    whole = await indexed.read("backend/inventory.py")
    assert whole["content"] == (FIXTURES / "polyglot/backend/inventory.py").read_text().rstrip("\n")


async def test_read_code_reads_at_most_500_lines_a_call(indexed):
    first = await indexed.read("long/numbers.txt")
    assert (first["start_line"], first["end_line"], first["truncated"], first["next_start_line"]) == (1, 500, True, 501)
    assert first["content"].split("\n") == [f"line {n}" for n in range(1, MAX_READ_LINES + 1)]
    rest = await indexed.read("long/numbers.txt", start_line=first["next_start_line"])
    assert (rest["start_line"], rest["end_line"], rest["truncated"], rest["next_start_line"]) == (501, 700, False, None)
    past_end = await indexed.read("long/numbers.txt", start_line=690, end_line=900)
    assert (past_end["end_line"], past_end["truncated"], past_end["line_count"]) == (700, False, 700)


async def test_read_code_withholds_credential_lines(indexed):
    result = await indexed.read("long/settings.py")
    assert result["content"] == "REGION = 'eu'\n\nRETRIES = 3"
    assert result["withheld_lines"] == [2] and result["line_count"] == 3


@pytest.mark.parametrize("arguments, message", [
    ({"file_path": "../etc/passwd"}, "not relative to the repository root"),
    ({"file_path": "/etc/passwd"}, "not relative to the repository root"),
    ({"file_path": "backend/missing.py"}, "'backend/missing.py' is not in the index"),
    ({"file_path": "long/numbers.txt", "start_line": 701}, "past the end of long/numbers.txt, which has 700 lines"),
    ({"file_path": "long/numbers.txt", "start_line": 0}, "start_line must be a line number of 1 or more"),
    ({"file_path": "long/numbers.txt", "start_line": 5, "end_line": 4}, "end_line 4 is before start_line 5"),
])
async def test_read_code_refuses_bad_ranges_and_paths(indexed, arguments, message):
    with pytest.raises(SearchError, match=message):
        await read_code(indexed.database.reader_url, project_id="p", database_name="d", **arguments)
