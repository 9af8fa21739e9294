"""Symbols from the chunker's one tree-sitter pass: every definition, nested ones and members included."""
from __future__ import annotations

from pathlib import Path

import pytest

from codebase_indexer.chunking import MAX_SIGNATURE_CHARS, chunk_file, parse_file
from codebase_indexer.languages import TREE_SITTER_LANGUAGES, language_for_path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "polyglot"

# Every symbol of each fixture file: (qualified name, kind, start line, end line), in file order.
EXPECTED_SYMBOLS: dict[str, list[tuple[str, str, int, int]]] = {
    "backend/Accounts.cs": [
        ("Bank.Accounts", "namespace", 4, 52),
        ("IAuditable", "interface", 7, 10),
        ("AccountKind", "enum", 12, 16),
        ("Account", "class", 19, 44),
        ("Account._log", "field", 21, 21),
        ("Account.Account", "constructor", 23, 27),
        ("Account.Owner", "property", 29, 29),
        ("Account.Kind", "property", 30, 30),
        ("Account.Balance", "property", 31, 31),
        ("Account.Deposit", "method", 33, 41),
        ("Account.AuditTrail", "method", 43, 43),
        ("Transfer", "record", 46, 46),
        ("AccountExtensions", "class", 48, 51),
        ("AccountExtensions.IsEmpty", "method", 50, 50),
    ],
    "backend/Library.java": [
        ("Library", "class", 8, 40),
        ("Library.books", "field", 9, 9),
        ("Library.Book", "record", 12, 12),
        ("Library.Lendable", "interface", 15, 17),
        ("Library.Library", "constructor", 19, 21),
        ("Library.addBook", "method", 23, 28),
        ("Library.findByIsbn", "method", 30, 33),
        ("Library.Catalog", "class", 35, 39),
        ("Library.Catalog.describe", "method", 36, 38),
    ],
    "backend/inventory.py": [
        ("Item", "class", 10, 15),
        ("Item.sku", "field", 14, 14),
        ("Item.quantity", "field", 15, 15),
        ("Inventory", "class", 18, 38),
        ("Inventory.__init__", "method", 21, 23),
        ("Inventory.add", "method", 25, 31),
        ("Inventory.skus", "method", 33, 35),
        ("Inventory.total", "method", 37, 38),
        ("restock", "function", 41, 47),
    ],
    "backend/shapes.rs": [
        ("Area", "trait", 5, 7),
        ("Shape", "enum", 11, 14),
        ("Canvas", "struct", 16, 18),
        ("Shape", "impl", 20, 27),
        ("Shape.area", "method", 21, 26),
        ("Canvas", "impl", 29, 38),
        ("Canvas.new", "method", 30, 32),
        ("Canvas.total_area", "method", 35, 37),
        ("Shape", "impl", 40, 44),
        ("Shape.fmt", "method", 41, 43),
        ("largest", "function", 46, 48),
    ],
    "backend/store.go": [
        ("Getter", "interface", 13, 15),
        ("Store", "struct", 18, 21),
        ("Store.mu", "field", 19, 19),
        ("Store.data", "field", 20, 20),
        ("NewStore", "function", 24, 26),
        ("Store.Get", "method", 29, 37),
        ("Store.Put", "method", 40, 44),
    ],
    "native/buffer.c": [
        ("Buffer", "struct", 7, 11),
        ("Buffer.data", "field", 8, 8),
        ("Buffer.length", "field", 9, 9),
        ("Buffer.capacity", "field", 10, 10),
        ("stats", "struct", 13, 16),
        ("stats.appends", "field", 14, 14),
        ("stats.grows", "field", 15, 15),
        ("buffer_reserve", "function", 21, 39),
        ("buffer_append", "function", 41, 50),
        ("buffer_free", "function", 52, 57),
    ],
    "native/matrix.cpp": [
        ("geo", "namespace", 6, 49),
        ("geo.Matrix", "class", 8, 26),
        ("geo.Matrix.at", "method", 12, 14),
        ("geo.Matrix.set", "method", 16, 18),
        ("geo.Matrix.rows_", "field", 23, 23),
        ("geo.Matrix.cols_", "field", 24, 24),
        ("geo.Matrix.data_", "field", 25, 25),
        ("geo.Matrix.Matrix", "method", 28, 33),
        ("geo.Matrix.scale", "method", 35, 39),
        ("geo.identity", "function", 41, 47),
    ],
    "scripts/greeter.rb": [
        ("Greetings", "module", 4, 28),
        ("Greetings.Greeter", "class", 8, 27),
        ("Greetings.Greeter.initialize", "method", 11, 14),
        ("Greetings.Greeter.greet", "method", 16, 22),
        ("Greetings.Greeter.supported?", "method", 24, 26),
        ("greet_all", "function", 30, 32),
    ],
    "web/Counter.tsx": [
        ("CounterProps", "type", 3, 6),
        ("CounterProps.label", "field", 4, 4),
        ("CounterProps.start", "field", 5, 5),
        ("Counter", "function", 8, 15),
        ("CounterPanel", "class", 17, 31),
        ("CounterPanel.render", "method", 18, 26),
        ("CounterPanel.componentDidMount", "method", 28, 30),
        ("resetAll", "function", 33, 35),
    ],
    "web/cart.js": [
        ("Cart", "class", 9, 27),
        ("Cart.constructor", "method", 10, 13),
        ("Cart.add", "method", 15, 18),
        ("Cart.subtotal", "method", 20, 22),
        ("Cart.total", "method", 24, 26),
        ("describeCart", "function", 29, 32),
        ("emptyCart", "function", 34, 34),
    ],
    "web/queue.ts": [
        ("Job", "interface", 3, 7),
        ("Job.id", "field", 4, 4),
        ("Job.attempts", "field", 5, 5),
        ("Job.run", "method", 6, 6),
        ("JobState", "type", 9, 9),
        ("Priority", "enum", 11, 15),
        ("JobQueue", "class", 17, 44),
        ("JobQueue.jobs", "field", 18, 18),
        ("JobQueue.constructor", "method", 20, 20),
        ("JobQueue.enqueue", "method", 22, 28),
        ("JobQueue.drain", "method", 30, 43),
        ("createJob", "function", 46, 48),
    ],
}


def symbols_of(relative_path: str):
    text = (FIXTURE / relative_path).read_text(encoding="utf-8")
    return parse_file(relative_path, text, language_for_path(relative_path)).symbols


def test_the_fixture_covers_every_tree_sitter_language():
    assert {language_for_path(path) for path in EXPECTED_SYMBOLS} == set(TREE_SITTER_LANGUAGES)


@pytest.mark.parametrize("relative_path", sorted(EXPECTED_SYMBOLS))
def test_symbols_of_each_language(relative_path):
    found = [(s.qualified_name, s.kind, s.start_line, s.end_line) for s in symbols_of(relative_path)]
    assert found == EXPECTED_SYMBOLS[relative_path]


@pytest.mark.parametrize("relative_path", sorted(EXPECTED_SYMBOLS))
def test_every_parent_encloses_its_children(relative_path):
    symbols = symbols_of(relative_path)
    for symbol in symbols:
        assert symbol.name == symbol.qualified_name.rsplit(".", 1)[-1]
        assert 0 < len(symbol.signature) <= MAX_SIGNATURE_CHARS
        if symbol.parent_position is None:
            continue
        parent = symbols[symbol.parent_position]
        assert parent.qualified_name == symbol.parent
        assert parent.start_line <= symbol.start_line <= symbol.end_line <= parent.end_line


def test_signatures_are_headers_without_bodies():
    by_name = {s.qualified_name: s.signature for s in symbols_of("backend/inventory.py")}
    assert by_name["Inventory.add"] == "def add(self, sku: str, quantity: int = 1) -> Item"
    assert by_name["Item.quantity"] == "quantity: int = 0"
    go = {s.qualified_name: s.signature for s in symbols_of("backend/store.go")}
    assert go["Store.Get"] == "func (s *Store) Get(key string) (string, error)"
    c = {s.qualified_name: s.signature for s in symbols_of("native/buffer.c")}
    assert c["Buffer"] == "struct Buffer"  # typedef of an anonymous struct: the name is added


def test_definitions_nested_in_functions_are_symbols_but_not_chunks():
    text = (
        "class Outer:\n"
        "    def method(self):\n"
        "        def helper(a):\n"
        "            class Local:\n"
        "                def inner(self):\n"
        "                    return a\n"
        "            return Local\n"
        "        return helper\n"
    )
    symbols = [(s.qualified_name, s.kind, s.start_line, s.end_line) for s in parse_file("a.py", text, "python").symbols]
    assert symbols == [
        ("Outer", "class", 1, 8),
        ("Outer.method", "method", 2, 8),
        ("Outer.method.helper", "function", 3, 7),
        ("Outer.method.helper.Local", "class", 4, 6),
        ("Outer.method.helper.Local.inner", "method", 5, 6),
    ]
    assert {c.symbol for c in chunk_file("a.py", text, "python")} == {"Outer", "Outer.method"}


def test_languages_without_a_grammar_and_unparsable_files_have_no_symbols():
    assert parse_file("notes.md", "# Title\n\ndef not_code():\n", "markdown").symbols == []
    assert parse_file("empty.py", "   \n", "python").symbols == []


def test_inline_object_types_are_not_fields():
    text = "class P extends Base<{ titles: string[] }> {\n  render() { return 1; }\n}\n"
    names = [s.qualified_name for s in parse_file("p.ts", text, "typescript").symbols]
    assert names == ["P", "P.render"]
