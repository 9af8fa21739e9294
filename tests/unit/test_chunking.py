"""chunk_file: definitions by syntax, outlines for containers, line windows for the rest."""
from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import pytest

from codebase_indexer.chunking import DEFAULT_MAX_CHUNK_CHARS, chunk_file
from codebase_indexer.languages import language_for_path
from codebase_indexer.models import Chunk

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "polyglot"
FIXTURE_FILES = sorted(p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*") if p.is_file())
CONTAINER_KINDS = {"class", "interface", "struct", "enum", "trait", "impl", "record", "module",
                   "namespace", "type", "union"}

# Every definition chunk of each fixture file: (symbol, kind, start_line, end_line).
EXPECTED_DEFINITIONS: dict[str, list[tuple[str, str, int, int]]] = {
    "backend/inventory.py": [
        ("Item", "class", 10, 15),
        ("Inventory", "class", 18, 38),
        ("Inventory.__init__", "method", 21, 23),
        ("Inventory.add", "method", 25, 31),
        ("Inventory.skus", "method", 33, 35),
        ("Inventory.total", "method", 37, 38),
        ("restock", "function", 41, 47),
    ],
    "web/cart.js": [
        ("Cart", "class", 6, 27),
        ("Cart.constructor", "method", 10, 13),
        ("Cart.add", "method", 15, 18),
        ("Cart.subtotal", "method", 20, 22),
        ("Cart.total", "method", 24, 26),
        ("describeCart", "function", 29, 32),
        ("emptyCart", "function", 34, 34),
    ],
    "web/queue.ts": [
        ("Job", "interface", 3, 7),
        ("JobState", "type", 9, 9),
        ("Priority", "enum", 11, 15),
        ("JobQueue", "class", 17, 44),
        ("JobQueue.constructor", "method", 20, 20),
        ("JobQueue.enqueue", "method", 22, 28),
        ("JobQueue.drain", "method", 30, 43),
        ("createJob", "function", 46, 48),
    ],
    "web/Counter.tsx": [
        ("CounterProps", "type", 3, 6),
        ("Counter", "function", 8, 15),
        ("CounterPanel", "class", 17, 31),
        ("CounterPanel.render", "method", 18, 26),
        ("CounterPanel.componentDidMount", "method", 28, 30),
        ("resetAll", "function", 33, 35),
    ],
    "backend/store.go": [
        ("Getter", "interface", 12, 15),
        ("Store", "struct", 17, 21),
        ("NewStore", "function", 23, 26),
        ("Store.Get", "method", 28, 37),
        ("Store.Put", "method", 39, 44),
    ],
    "backend/shapes.rs": [
        ("Area", "trait", 4, 7),
        ("Shape", "enum", 9, 14),
        ("Canvas", "struct", 16, 18),
        ("Shape", "impl", 20, 27),
        ("Shape.area", "method", 21, 26),
        ("Canvas", "impl", 29, 38),
        ("Canvas.new", "method", 30, 32),
        ("Canvas.total_area", "method", 34, 37),
        ("Shape", "impl", 40, 44),
        ("Shape.fmt", "method", 41, 43),
        ("largest", "function", 46, 48),
    ],
    "backend/Library.java": [
        ("Library", "class", 7, 40),
        ("Library.Book", "record", 11, 12),
        ("Library.Lendable", "interface", 14, 17),
        ("Library.Library", "constructor", 19, 21),
        ("Library.addBook", "method", 23, 28),
        ("Library.findByIsbn", "method", 30, 33),
        ("Library.Catalog", "class", 35, 39),
        ("Library.Catalog.describe", "method", 36, 38),
    ],
    "native/buffer.c": [
        ("Buffer", "struct", 7, 11),
        ("stats", "struct", 13, 16),
        ("buffer_reserve", "function", 20, 39),
        ("buffer_append", "function", 41, 50),
        ("buffer_free", "function", 52, 57),
    ],
    "native/matrix.cpp": [
        ("geo", "namespace", 6, 49),
        ("geo.Matrix", "class", 8, 26),
        ("geo.Matrix.at", "method", 12, 14),
        ("geo.Matrix.set", "method", 16, 18),
        ("geo.Matrix.Matrix", "method", 28, 33),
        ("geo.Matrix.scale", "method", 35, 39),
        ("geo.identity", "function", 41, 47),
    ],
    "scripts/greeter.rb": [
        ("Greetings", "module", 4, 28),
        ("Greetings.Greeter", "class", 7, 27),
        ("Greetings.Greeter.initialize", "method", 11, 14),
        ("Greetings.Greeter.greet", "method", 16, 22),
        ("Greetings.Greeter.supported?", "method", 24, 26),
        ("greet_all", "function", 30, 32),
    ],
    "backend/Accounts.cs": [
        ("Bank.Accounts", "namespace", 4, 52),
        ("IAuditable", "interface", 6, 10),
        ("AccountKind", "enum", 12, 16),
        ("Account", "class", 18, 44),
        ("Account.Account", "constructor", 23, 27),
        ("Account.Deposit", "method", 33, 41),
        ("Account.AuditTrail", "method", 43, 43),
        ("Transfer", "record", 46, 46),
        ("AccountExtensions", "class", 48, 51),
        ("AccountExtensions.IsEmpty", "method", 50, 50),
    ],
}


def fixture_text(relative_path: str) -> str:
    return (FIXTURE / relative_path).read_text(encoding="utf-8")


def chunk_fixture(relative_path: str, **options: int) -> list[Chunk]:
    return chunk_file(relative_path, fixture_text(relative_path),
                      language_for_path(relative_path), **options)


def file_lines(text: str, start_line: int, end_line: int) -> str:
    return "\n".join(text.split("\n")[start_line - 1:end_line])


def by_symbol(chunks: list[Chunk], symbol: str, kind: str | None = None) -> Chunk:
    matches = [c for c in chunks if c.symbol == symbol and (kind is None or c.kind == kind)]
    assert len(matches) == 1, f"{symbol}: {matches}"
    return matches[0]


def assert_every_nonblank_line_covered(text: str, chunks: list[Chunk]) -> None:
    covered = {line for c in chunks for line in range(c.start_line, c.end_line + 1)}
    missing = [number for number, line in enumerate(text.split("\n"), start=1)
               if line.strip() and number not in covered]
    assert not missing, f"lines in no chunk: {missing}"


# --- the polyglot fixture -----------------------------------------------------------------------

@pytest.mark.parametrize("relative_path", sorted(EXPECTED_DEFINITIONS))
def test_definitions_have_qualified_symbols_kinds_and_line_ranges(relative_path: str) -> None:
    chunks = chunk_fixture(relative_path)
    definitions = [(c.symbol, c.kind, c.start_line, c.end_line) for c in chunks if c.kind != "window"]
    assert definitions == EXPECTED_DEFINITIONS[relative_path]
    assert {c.language for c in chunks} == {language_for_path(relative_path)}


def test_fixture_has_one_file_per_tree_sitter_language() -> None:
    languages = sorted(language_for_path(path) for path in EXPECTED_DEFINITIONS)
    assert languages == sorted(["python", "javascript", "typescript", "tsx", "go", "rust", "java",
                                "c", "cpp", "ruby", "csharp"])
    assert {"README.md", "config.yaml"} <= set(FIXTURE_FILES)


@pytest.mark.parametrize("relative_path", FIXTURE_FILES)
def test_every_nonblank_line_is_in_a_chunk(relative_path: str) -> None:
    chunks = chunk_fixture(relative_path)
    assert_every_nonblank_line_covered(fixture_text(relative_path), chunks)
    assert [c.start_line for c in chunks] == sorted(c.start_line for c in chunks)


@pytest.mark.parametrize("relative_path", FIXTURE_FILES)
def test_non_container_chunks_are_the_exact_file_lines(relative_path: str) -> None:
    text = fixture_text(relative_path)
    for chunk in chunk_fixture(relative_path):
        if chunk.kind not in CONTAINER_KINDS:
            assert chunk.content == file_lines(text, chunk.start_line, chunk.end_line), chunk


@pytest.mark.parametrize(("relative_path", "container", "signature", "body_line"), [
    ("backend/inventory.py", "Inventory", "def add(self, sku: str, quantity: int = 1) -> Item:",
     "item = self._items.setdefault(sku, Item(sku))"),
    ("web/cart.js", "Cart", "add(name, price, quantity = 1) {", "this.items.push("),
    ("web/queue.ts", "JobQueue", "async drain(): Promise<number> {", "await job.run();"),
    ("web/Counter.tsx", "CounterPanel", "render() {", "<Counter key={title}"),
    ("backend/shapes.rs", "Canvas", "pub fn total_area(&self) -> f64 {", ".map(Area::area)"),
    ("backend/Library.java", "Library", "public void addBook(Book book) {",
     "throw new IllegalArgumentException"),
    ("backend/Library.java", "Library", "static class Catalog {", "return book.title()"),
    ("native/matrix.cpp", "geo.Matrix", "double at(std::size_t row, std::size_t col) const {",
     "return data_[row * cols_ + col];"),
    ("scripts/greeter.rb", "Greetings.Greeter", "def greet", 'when "fr" then'),
    ("backend/Accounts.cs", "Account", "public void Deposit(decimal amount)",
     "_log.Add($\"deposit {amount}\");"),
])
def test_container_chunk_keeps_signatures_but_not_method_bodies(
        relative_path: str, container: str, signature: str, body_line: str) -> None:
    chunks = chunk_fixture(relative_path)
    outlines = [c.content for c in chunks if c.symbol == container and signature in c.content]
    assert len(outlines) == 1
    outline = outlines[0]
    assert body_line not in outline
    assert "..." in outline
    assert any(body_line in c.content for c in chunks if c.kind in {"method", "function"})


def test_container_outline_keeps_fields_docstring_and_closing_lines() -> None:
    outline = by_symbol(chunk_fixture("backend/Accounts.cs"), "Account").content.split("\n")
    assert outline[:4] == [
        "    /// <summary>A bank account with a running balance.</summary>",
        "    public class Account : IAuditable",
        "    {",
        "        private readonly List<string> _log = new();",
    ]
    assert "        public decimal Balance { get; private set; }" in outline
    assert outline[-1] == "    }"
    python_outline = by_symbol(chunk_fixture("backend/inventory.py"), "Inventory").content
    assert '"""Items on hand, keyed by SKU."""' in python_outline
    assert "    def total(self) -> int:\n        ..." in python_outline


def test_decorators_attributes_and_doc_comments_belong_to_the_definition() -> None:
    python = chunk_fixture("backend/inventory.py")
    assert by_symbol(python, "Item").content.startswith("@dataclasses.dataclass\nclass Item:")
    assert by_symbol(python, "Inventory.skus").content.startswith("    @property\n    def skus")
    java = chunk_fixture("backend/Library.java")
    assert by_symbol(java, "Library.findByIsbn").content.lstrip().startswith("@Deprecated")
    assert by_symbol(java, "Library").content.startswith("/** A lending library")
    rust = chunk_fixture("backend/shapes.rs")
    assert by_symbol(rust, "Shape", "enum").content.startswith(
        "/// A shape on the plane.\n#[derive(Debug, Clone, PartialEq)]")
    go = chunk_fixture("backend/store.go")
    assert by_symbol(go, "Store.Get").content.startswith("// Get returns the value stored under key.")


def test_top_level_code_outside_definitions_becomes_windows() -> None:
    text = fixture_text("backend/inventory.py")
    windows = [c for c in chunk_fixture("backend/inventory.py") if c.kind == "window"]
    assert [(w.start_line, w.end_line, w.symbol) for w in windows] == [(1, 7, None), (50, 52, None)]
    assert windows[0].content.startswith('"""Inventory tracking')
    assert "DEFAULT_CAPACITY = 100" in windows[0].content
    assert windows[1].content == file_lines(text, 50, 52)


def test_a_comment_separated_by_a_blank_line_stays_out_of_the_definition() -> None:
    chunks = chunk_fixture("web/queue.ts")
    assert by_symbol(chunks, "Job").content.startswith("export interface Job {")
    assert chunks[0].kind == "window" and chunks[0].content.startswith("// A small typed job queue")


# --- sizes ---------------------------------------------------------------------------------------

def long_python_function(body_lines: int) -> str:
    body = "".join(f"    total += compute_value_{i}(argument_{i})\n" for i in range(body_lines))
    return f"import os\n\n\ndef big(argument):\n    total = 0\n{body}    return total\n"


def test_oversized_definition_is_split_into_contiguous_pieces_under_max_chars() -> None:
    text = long_python_function(200)
    chunks = [c for c in chunk_file("big.py", text, "python", max_chars=500) if c.symbol == "big"]
    assert len(chunks) > 1
    assert all(c.kind == "function" and len(c.content) <= 500 for c in chunks)
    assert chunks[0].start_line == 4
    assert chunks[-1].end_line == 206  # def on line 4, "total = 0", 200 body lines, return
    for previous, current in pairwise(chunks):
        assert current.start_line == previous.end_line + 1
    for chunk in chunks:
        assert chunk.content == file_lines(text, chunk.start_line, chunk.end_line)


def test_oversized_class_outline_is_split_too() -> None:
    methods = "".join(f"    def method_{i}(self, value):\n        return value + {i}\n\n"
                      for i in range(80))
    text = f"class Wide:\n    '''Many methods.'''\n\n{methods}"
    chunks = chunk_file("wide.py", text, "python", max_chars=400)
    outline = [c for c in chunks if c.symbol == "Wide"]
    assert len(outline) > 1 and all(c.kind == "class" and len(c.content) <= 400 for c in outline)
    assert outline[0].start_line == 1
    assert all(later.start_line > earlier.end_line for earlier, later in pairwise(outline))
    assert not any("return value" in c.content for c in outline)
    assert by_symbol(chunks, "Wide.method_79", "method").content.endswith("return value + 79")


def test_a_single_huge_line_is_cut_by_characters() -> None:
    huge = "x" * 5000
    text = f"def f():\n    s = '{huge}'\n    return s\n"
    chunks = chunk_file("huge.py", text, "python", max_chars=1000)
    assert all(len(c.content) <= 1000 and c.symbol == "f" for c in chunks)
    line_two = [c for c in chunks if c.start_line == c.end_line == 2]
    assert "".join(c.content for c in line_two) == f"    s = '{huge}'"
    assert_every_nonblank_line_covered(text, chunks)


def test_default_max_chars_holds_for_every_fixture_chunk() -> None:
    for relative_path in FIXTURE_FILES:
        assert all(len(c.content) <= DEFAULT_MAX_CHUNK_CHARS for c in chunk_fixture(relative_path))


# --- line windows --------------------------------------------------------------------------------

def test_markdown_falls_back_to_overlapping_line_windows() -> None:
    text = "\n".join(f"Paragraph line {n} of the guide." for n in range(1, 101)) + "\n"
    chunks = chunk_file("docs/guide.md", text, "markdown", window_lines=40, overlap_lines=8)
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 40), (33, 72), (65, 100)]
    assert all(c.kind == "window" and c.symbol is None and c.language == "markdown" for c in chunks)
    for chunk in chunks:
        assert chunk.content == file_lines(text, chunk.start_line, chunk.end_line)


def test_line_windows_also_respect_max_chars() -> None:
    text = "\n".join("word " * 20 for _ in range(100))
    chunks = chunk_file("notes.txt", text, "text", max_chars=300, window_lines=40, overlap_lines=2)
    assert all(len(c.content) <= 300 for c in chunks)
    assert_every_nonblank_line_covered(text, chunks)
    assert all(b.start_line > a.start_line for a, b in pairwise(chunks))


def test_readme_and_config_are_windows() -> None:
    for relative_path in ("README.md", "config.yaml"):
        chunks = chunk_fixture(relative_path)
        assert chunks and all(c.kind == "window" and c.symbol is None for c in chunks)
        assert chunks[0].start_line == 1


def test_windows_skip_blank_edges() -> None:
    text = "\n\n\nfirst\n\n\nsecond\n\n\n"
    chunks = chunk_file("a.yaml", text, "yaml")
    assert [(c.start_line, c.end_line, c.content) for c in chunks] == [(4, 7, "first\n\n\nsecond")]


# --- robustness ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   \n\t\n  ", "\n\n\n"])
@pytest.mark.parametrize("language", ["python", "cpp", "markdown", "text"])
def test_empty_or_blank_files_have_no_chunks(text: str, language: str) -> None:
    assert chunk_file("empty", text, language) == []


@pytest.mark.parametrize("language", sorted(language_for_path(p) for p in EXPECTED_DEFINITIONS))
def test_garbage_never_raises_and_is_still_covered(language: str) -> None:
    generator = random.Random(language)
    garbage = bytes(generator.randrange(256) for _ in range(20_000)).decode("latin-1")
    garbage += "\n" + "{" * 3000 + "\ndef class fn func ( [ \x00 \ud800 }\n"
    chunks = chunk_file("garbage", garbage, language, max_chars=700)
    assert all(len(c.content) <= 700 for c in chunks)
    assert_every_nonblank_line_covered(garbage, chunks)


def test_syntax_errors_keep_the_well_formed_definitions() -> None:
    text = "def good(x):\n    return x\n\n\ndef broken(:\n    pass pass\n"
    chunks = chunk_file("broken.py", text, "python")
    assert by_symbol(chunks, "good").content == "def good(x):\n    return x"
    assert_every_nonblank_line_covered(text, chunks)


def test_crlf_line_endings_keep_line_numbers_and_drop_carriage_returns() -> None:
    text = "import os\r\n\r\ndef main():\r\n    return os.getcwd()\r\n"
    chunk = by_symbol(chunk_file("main.py", text, "python"), "main")
    assert (chunk.start_line, chunk.end_line) == (3, 4)
    assert chunk.content == "def main():\n    return os.getcwd()"


def test_nested_functions_stay_inside_their_function() -> None:
    text = "def outer():\n    def inner():\n        return 1\n    return inner()\n"
    chunks = chunk_file("nested.py", text, "python")
    assert [(c.symbol, c.kind, c.start_line, c.end_line) for c in chunks] == [("outer", "function", 1, 4)]


def test_unknown_language_uses_windows() -> None:
    text = "SELECT 1;\nSELECT 2;\n"
    chunks = chunk_file("q.sql", text, "sql")
    assert [(c.start_line, c.end_line, c.kind) for c in chunks] == [(1, 2, "window")]


@pytest.mark.parametrize(("language", "source", "expected"), [
    ("typescript", "namespace Util {\n  export function pad(s: string) {\n    return s;\n  }\n}\n",
     [("Util", "namespace", 1, 5), ("Util.pad", "function", 2, 4)]),
    ("javascript", "export default function () {\n  const helper = () => 1;\n  return helper();\n}\n",
     [("default", "function", 1, 4)]),
    ("cpp", "template <typename T>\nT Box<T>::get() const {\n  return value;\n}\n",
     [("Box.get", "method", 1, 4)]),
    ("rust", "mod inner {\n    pub fn f() {}\n}\n",
     [("inner", "module", 1, 3), ("inner.f", "function", 2, 2)]),
    ("csharp", "namespace Shop;\n\npublic class Cart\n{\n    public void Add() { }\n}\n",
     [("Cart", "class", 3, 6), ("Cart.Add", "method", 5, 5)]),
    ("ruby", "class A::B\n  class << self\n    def build\n      new\n    end\n  end\nend\n",
     [("A.B", "class", 1, 7), ("A.B.build", "method", 3, 5)]),
])
def test_language_specific_definitions(language: str, source: str,
                                       expected: list[tuple[str, str, int, int]]) -> None:
    chunks = chunk_file("snippet", source, language)
    assert [(c.symbol, c.kind, c.start_line, c.end_line) for c in chunks if c.kind != "window"] == expected
    assert_every_nonblank_line_covered(source, chunks)
