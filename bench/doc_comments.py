"""Doc comments out of source, line numbers kept: the queries and targets of the quality bench.

Each `strip_*` function returns the source with every doc comment blanked (its lines become
empty lines, so every other line keeps its number) and the (query, first line, last line) of each
documented function. The query is the doc comment's first sentence (CodeSearchNet's method).

- Python: docstrings of modules, classes and functions are blanked (a `pass` keeps a body valid);
  targets are functions and methods.
- JavaScript: every `/** ... */` comment is blanked; targets are the statement right below one
  that declares a function: `function f`, `var f = function`, `var f = wrap(function f(...) {...})`
  (ramda's `_curryN(function name(...))`), `obj.f = function`, class methods.
- Go: the `//` comment block directly above a top-level declaration is blanked; targets are
  functions and methods. A Go doc comment opens with the function's name, which is dropped.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from tree_sitter import Language, Node, Parser

MIN_QUERY_WORDS = 4


@dataclass(frozen=True)
class Documented:
    query: str
    start_line: int  # 1-based, inclusive
    end_line: int


def first_sentence(text: str) -> str:
    paragraph = text.strip().split("\n\n")[0]
    sentence = re.split(r"(?<=[.!?])\s", " ".join(paragraph.split()), maxsplit=1)[0]
    return sentence.strip()


def _usable(query: str) -> bool:
    return len(query.split()) >= MIN_QUERY_WORDS


# --- Python ---------------------------------------------------------------------------------------

def strip_python(source: str) -> tuple[str, list[Documented]]:
    tree = ast.parse(source)
    lines = source.splitlines()
    found: list[Documented] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            continue
        doc = ast.get_docstring(node)
        if not doc or not node.body or not isinstance(node.body[0], ast.Expr):
            continue
        expr = node.body[0]
        lines[expr.lineno - 1] = " " * expr.col_offset + "pass"
        for number in range(expr.lineno, expr.end_lineno or expr.lineno):
            lines[number] = ""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            query = first_sentence(doc)
            if _usable(query):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                found.append(Documented(query, first, node.end_lineno or node.lineno))
    return "\n".join(lines) + "\n", found


# --- tree-sitter languages ------------------------------------------------------------------------

def _parser(module: str) -> Parser:
    return Parser(Language(__import__(module).language()))


def _blank(data: bytes, spans: list[tuple[int, int]]) -> str:
    """The source with each byte span replaced by its newlines only."""
    out = bytearray()
    cursor = 0
    for start, end in sorted(spans):
        out += data[cursor:start]
        out += b"\n" * data[start:end].count(b"\n")
        cursor = end
    out += data[cursor:]
    return out.decode("utf-8", errors="replace")


def _walk(node: Node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _next_statement(comment: Node) -> Node | None:
    sibling = comment.next_named_sibling
    if sibling is None or sibling.start_point.row > comment.end_point.row + 1:
        return None
    return sibling


# --- JavaScript -----------------------------------------------------------------------------------

_JS_FUNCTIONS = frozenset({"function_expression", "arrow_function", "generator_function", "function"})


def _jsdoc_text(comment: str) -> str:
    """The description of a JSDoc comment: its lines without `*`, up to the first `@tag`."""
    body = comment.removeprefix("/**").removesuffix("*/")
    kept: list[str] = []
    for line in body.splitlines():
        line = re.sub(r"^\s*\*? ?", "", line)
        if line.lstrip().startswith("@"):
            break
        kept.append(line)
    return "\n".join(kept)


def _declares_function(statement: Node) -> bool:
    """`function f`, `var f = function`, `var f = wrap(function f() {})`, `a.f = function`, a method."""
    kind = statement.type
    if kind in ("function_declaration", "generator_function_declaration", "method_definition"):
        return True
    if kind == "export_statement":
        declaration = statement.child_by_field_name("declaration")
        return declaration is not None and _declares_function(declaration)
    if kind in ("variable_declaration", "lexical_declaration"):
        values = [d.child_by_field_name("value") for d in statement.named_children
                  if d.type == "variable_declarator"]
    elif kind == "expression_statement" and statement.named_children and \
            statement.named_children[0].type == "assignment_expression":
        values = [statement.named_children[0].child_by_field_name("right")]
    else:
        return False
    return any(_is_function_value(v) for v in values if v is not None)


def _is_function_value(value: Node) -> bool:
    if value.type in _JS_FUNCTIONS:
        return True
    if value.type == "call_expression":  # ramda: _curry2(function add(a, b) {...})
        arguments = value.child_by_field_name("arguments")
        return arguments is not None and any(a.type in _JS_FUNCTIONS for a in arguments.named_children)
    return False


def strip_javascript(source: str) -> tuple[str, list[Documented]]:
    data = source.encode("utf-8")
    tree = _parser("tree_sitter_javascript").parse(data)
    spans: list[tuple[int, int]] = []
    found: list[Documented] = []
    for node in _walk(tree.root_node):
        if node.type != "comment" or not data[node.start_byte:node.end_byte].startswith(b"/**"):
            continue
        spans.append((node.start_byte, node.end_byte))
        statement = _next_statement(node)
        if statement is None or not _declares_function(statement):
            continue
        query = first_sentence(_jsdoc_text(data[node.start_byte:node.end_byte].decode("utf-8", "replace")))
        if _usable(query):
            found.append(Documented(query, statement.start_point.row + 1, statement.end_point.row + 1))
    return _blank(data, spans), found


# --- Go -------------------------------------------------------------------------------------------

_GO_DECLARATIONS = frozenset({"function_declaration", "method_declaration", "type_declaration",
                              "const_declaration", "var_declaration"})
_GO_FUNCTIONS = frozenset({"function_declaration", "method_declaration"})


def _go_comment_block(declaration: Node) -> list[Node]:
    """The `//` comments directly above a declaration, top first."""
    block: list[Node] = []
    row = declaration.start_point.row
    sibling = declaration.prev_named_sibling
    while sibling is not None and sibling.type == "comment" and sibling.end_point.row == row - 1:
        block.insert(0, sibling)
        row = sibling.start_point.row
        sibling = sibling.prev_named_sibling
    return block


def _go_doc_text(block: list[Node], data: bytes) -> str:
    lines = []
    for comment in block:
        text = data[comment.start_byte:comment.end_byte].decode("utf-8", "replace")
        lines.append(re.sub(r"^//\s?", "", text) if text.startswith("//") else text.strip("/*"))
    return "\n".join(lines)


def strip_go(source: str) -> tuple[str, list[Documented]]:
    data = source.encode("utf-8")
    tree = _parser("tree_sitter_go").parse(data)
    spans: list[tuple[int, int]] = []
    found: list[Documented] = []
    for declaration in tree.root_node.named_children:
        if declaration.type not in _GO_DECLARATIONS:
            continue
        block = _go_comment_block(declaration)
        if not block:
            continue
        spans.append((block[0].start_byte, block[-1].end_byte))
        if declaration.type not in _GO_FUNCTIONS:
            continue
        sentence = first_sentence(_go_doc_text(block, data))
        query = " ".join(sentence.split()[1:])  # "Execute uses the args ..." -> "uses the args ..."
        if _usable(query):
            found.append(Documented(query, declaration.start_point.row + 1, declaration.end_point.row + 1))
    return _blank(data, spans), found


STRIPPERS: dict[str, Callable[[str], tuple[str, list[Documented]]]] = {
    "python": strip_python,
    "javascript": strip_javascript,
    "go": strip_go,
}
