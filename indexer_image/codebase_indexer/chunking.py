"""Split a file into chunks: definitions by syntax (tree-sitter), everything else by line windows.

Definition chunks
    Functions, methods, classes and their equivalents in the 11 tree-sitter languages become
    chunks with a qualified symbol ("Class.method", "Outer.Inner.method", "geo.Matrix.scale")
    and a kind: function, method, constructor, class, interface, struct, enum, union, trait,
    impl, record, type, module, namespace, macro.
    Decorators, attributes and comments directly above a definition belong to its chunk.

Container chunks (class, struct, impl, module, namespace, ...)
    span the container's whole line range, but the body of every definition nested in them is
    elided: its signature lines (and a closing "}" / "end" line) stay, the body becomes one
    "..." line. Method bodies are therefore only in the method chunks, and a container chunk
    reads as an outline of its header, fields and member signatures. Only container chunks have
    content that differs from the file's lines start_line..end_line.

Window chunks (kind "window", symbol None)
    Lines outside every definition (imports, constants, script code) and whole files of other
    languages, or files that fail to parse, are cut into windows of at most `window_lines`
    lines that overlap by `overlap_lines` lines. Every non-blank line of a file is in a chunk.

Definitions that share a line
    A definition is sliced by its syntax node's byte range, not by whole lines, when other code
    shares its first or last line (minified or generated code: many functions on one line).
    Each such definition's chunk holds only its own text, and a container on such a line
    elides the bodies of the members that share it ("m(x){...}"), so no text is repeated once
    per definition. Code outside definitions on a line they share is not repeated in a window.

Size limit
    No chunk content is longer than `max_chars`. A longer definition is split on line
    boundaries into consecutive pieces that keep its symbol and kind (the pieces differ only by
    their line ranges); a single line longer than `max_chars` is cut by characters into pieces
    that all have that line as their range. `max_chunks` bounds the chunks of one file:
    past it, chunk_file raises TooManyChunks instead of producing more.

Symbols (parse_file)
    The same pass lists every definition as a Symbol, including those that are no chunk of
    their own: definitions nested in functions ("outer.inner") and class fields and properties
    where the grammar has them (kind "field" or "property"; interface method signatures are
    "method"). A symbol's lines are its own syntax (decorators and modifiers included, comments
    above it not); its signature is its header up to the body, whitespace collapsed.
"""
from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache

from tree_sitter import Language, Node, Parser, Query, QueryCursor

from .models import Chunk, Symbol

DEFAULT_MAX_CHUNK_CHARS = 1500
WINDOW_KIND = "window"
ELISION = "..."

# Kinds whose bodies are code, not declarations: definitions nested in them stay in their chunk.
_LEAF_KINDS = frozenset({"function", "method", "constructor"})
# Members that are symbols but never chunks of their own, nor scopes of other definitions.
MEMBER_KINDS = frozenset({"field", "property"})
MAX_SYMBOLS_PER_FILE = 5000
MAX_SIGNATURE_CHARS = 240
_WHITESPACE = re.compile(r"\s+")

_TEMPLATE_ARGUMENTS = re.compile(r"<[^<>]*>")

Row = tuple[int, str]  # (0-based line number, line text)

_NON_BLANK = re.compile(rb"\S")
# What may follow a definition on its last row and still leave it alone there: `};`, `),`, a comment.
_TRAILER = re.compile(rb"[\s;,)\]}]*(?:(?://|/\*|#|--).*)?", re.DOTALL)
_CLOSING = re.compile(r"[ \t]*(?:\}|end[ \t]*$)")


class TooManyChunks(ValueError):
    """A file would produce more than the allowed number of chunks."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} chunks")
        self.limit = limit


class _Source:
    """A file as lines of text and as the UTF-8 bytes tree-sitter parsed, with each row's offset.

    Byte-range work goes through regular expressions with positions, never through slices of
    whole lines: a minified file is one line of a megabyte holding thousands of definitions.
    """

    def __init__(self, text: str, lines: list[str]) -> None:
        self.lines = lines
        self.data = text.encode("utf-8", errors="replace")
        self.row_starts = [0] + [match.end() for match in re.finditer(b"\n", self.data)]

    def row_end(self, row: int) -> int:
        """Offset of the newline ending `row` (or of the end of the data)."""
        return self.row_starts[row + 1] - 1 if row + 1 < len(self.row_starts) else len(self.data)

    def blank(self, start: int, end: int) -> bool:
        return _NON_BLANK.search(self.data, start, end) is None

    def only_trailer(self, start: int, end: int) -> bool:
        return start >= end or _TRAILER.fullmatch(self.data, start, end) is not None

    def starts_line(self, node: Node) -> bool:
        return self.blank(self.row_starts[node.start_point.row], node.start_byte)

    def rows(self, start: int, end: int, elided: list[tuple[int, int]]) -> list[Row]:
        """The rows of bytes start..end, each (from, to) range of `elided` (in order) shown as "..."."""
        pieces, cursor = [], start
        for elided_start, elided_end in elided:
            pieces += [self.data[cursor:elided_start], ELISION.encode()]
            cursor = elided_end
        pieces.append(self.data[cursor:end])
        first_row = bisect.bisect_right(self.row_starts, start) - 1
        text = b"".join(pieces).decode("utf-8", errors="replace")
        return [(first_row + offset, line.removesuffix("\r")) for offset, line in enumerate(text.split("\n"))]


@dataclass(frozen=True)
class _Rule:
    """How one tree-sitter node type becomes a definition."""

    kind: str  # "function" turns into "method" inside a type (see _LanguageSpec.function_scopes)
    name: Callable[[Node], str | None] | None = None  # default: the node's "name" field
    pattern: str | None = None  # query pattern capturing @def; default: any node of the type
    kind_of: Callable[[Node], str] | None = None  # a kind that depends on the node
    qualifies: bool = True  # whether nested symbols are prefixed with this one's name


@dataclass(frozen=True)
class _LanguageSpec:
    load: Callable[[], object]  # the grammar wheel's language() function
    rules: dict[str, _Rule]
    # Parent node types that belong to the definition they wrap (decorators, export, typedef).
    wrappers: frozenset[str] = frozenset()
    # Sibling node types directly above a definition that belong to it (doc comments, attributes).
    leading: frozenset[str] = frozenset({"comment"})
    # Kinds of containers in which a "function" stays a function rather than a method.
    function_scopes: frozenset[str] = frozenset({"namespace", "module"})
    # Node types that are symbols only (fields, properties, member signatures), captured @member.
    members: dict[str, _Rule] = field(default_factory=dict)


@dataclass
class _Definition:
    symbol: str
    kind: str
    first: int  # 0-based first row, leading comments and decorators included
    last: int  # 0-based last row
    header_last: int  # last row kept when this definition is elided inside its container
    qualifies: bool
    start_byte: int  # content span: whole rows, except where other code shares the first/last row
    end_byte: int
    shares_rows: bool  # other code on its first or last row: sliced by bytes, not by rows
    body: tuple[int, int] | None  # byte range elided when it sits inside a container's shared row
    children: list[_Definition] = field(default_factory=list)
    chunked: bool = True  # False: a symbol only (nested in a function, or a member)
    symbol_index: int | None = None  # its position in the file's symbol list


# --- names --------------------------------------------------------------------------------------

def _text(node: Node | None) -> str | None:
    if node is None or node.text is None:
        return None
    return node.text.decode("utf-8", errors="replace")


def _name_field(node: Node) -> str | None:
    return _text(node.child_by_field_name("name"))


def _field_name(field_name: str) -> Callable[[Node], str | None]:
    return lambda node: _text(node.child_by_field_name(field_name))


def _type_name(type_text: str | None) -> str | None:
    """A type reference without pointers, references and generic arguments: "*Store[T]" -> "Store"."""
    if not type_text:
        return None
    for opener in ("<", "["):
        type_text = type_text.split(opener, 1)[0]
    return type_text.strip().lstrip("*&").strip() or None


def _go_method_name(node: Node) -> str | None:
    receiver = node.child_by_field_name("receiver")
    parameter = receiver.named_children[0] if receiver is not None and receiver.named_children else None
    receiver_type = _type_name(_text(parameter.child_by_field_name("type"))) if parameter else None
    name = _name_field(node)
    if name is None:
        return None
    return f"{receiver_type}.{name}" if receiver_type else name


def _go_type_kind(node: Node) -> str:
    type_node = node.child_by_field_name("type")
    kinds = {"struct_type": "struct", "interface_type": "interface"}
    return kinds.get(type_node.type if type_node is not None else "", "type")


def _rust_impl_name(node: Node) -> str | None:
    return _type_name(_text(node.child_by_field_name("type")))


def _function_declarator_name(node: Node) -> str | None:
    """The declared name of a C/C++ function_definition: "buffer_free", "Matrix::scale"."""
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "function_declarator":
        inner = declarator.child_by_field_name("declarator")
        if inner is None and declarator.named_children:
            inner = declarator.named_children[-1]
        declarator = inner
    name = _text(declarator.child_by_field_name("declarator")) if declarator is not None else None
    if name is None or "::" not in name:
        return name
    scope, _, member = name.rpartition("::")
    while (stripped := _TEMPLATE_ARGUMENTS.sub("", scope)) != scope:
        scope = stripped  # "Box<std::vector<int>>::get" -> "Box::get"
    return f"{scope}::{member}"


def _c_function_kind(node: Node) -> str:
    name = _function_declarator_name(node) or ""
    return "method" if "::" in name else "function"


def _c_tag_name(node: Node) -> str | None:
    """A struct/union/enum name, or the typedef name of an anonymous one."""
    name = _name_field(node)
    if name is None and node.parent is not None and node.parent.type == "type_definition":
        name = _text(node.parent.child_by_field_name("declarator"))
    return name


def _declared_name(node: Node) -> str | None:
    """The name a field declaration declares ("data" of `char *data;`, "books" of Java's
    `List<Book> books = ...`); None for a member function declaration (`void scale(double);`)."""
    declarator = node.child_by_field_name("declarator")
    while declarator is not None:
        if declarator.type == "function_declarator":
            return None
        if declarator.type in ("field_identifier", "identifier"):
            return _text(declarator)
        declarator = declarator.child_by_field_name("declarator") or declarator.child_by_field_name("name")
    return None


def _csharp_field_name(node: Node) -> str | None:
    """The first name of a C# field declaration (`private int _x = 1, y;` -> "_x")."""
    for child in node.named_children:
        if child.type == "variable_declaration":
            declarators = [c for c in child.named_children if c.type == "variable_declarator"]
            return _name_field(declarators[0]) if declarators else None
    return None


# --- language tables ----------------------------------------------------------------------------

_FUNCTION_VALUES = "[(arrow_function) (function_expression) (generator_function)]"

_PYTHON = _LanguageSpec(
    load=lambda: __import__("tree_sitter_python").language(),
    rules={"class_definition": _Rule("class"), "function_definition": _Rule("function")},
    wrappers=frozenset({"decorated_definition"}),
    members={"assignment": _Rule("field", name=_field_name("left"), pattern=(
        "(class_definition body: (block (expression_statement (assignment left: (identifier)) @member)))"))},
)

_JAVASCRIPT_RULES = {
    "class_declaration": _Rule("class"),
    "function_declaration": _Rule("function"),
    "generator_function_declaration": _Rule("function"),
    "method_definition": _Rule("function"),
    "variable_declarator": _Rule(
        "function", pattern=f"(variable_declarator value: {_FUNCTION_VALUES}) @def"),
    # `export default function () {}` and friends: named after the export.
    **{
        node_type: _Rule(kind, name=lambda _node: "default",
                         pattern=f"(export_statement value: ({node_type}) @def)")
        for node_type, kind in (("function_expression", "function"), ("arrow_function", "function"),
                                ("generator_function", "function"), ("class", "class"))
    },
}
_JAVASCRIPT_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration"})
_JAVASCRIPT = _LanguageSpec(
    load=lambda: __import__("tree_sitter_javascript").language(),
    rules={
        **_JAVASCRIPT_RULES,
        "field_definition": _Rule(
            "function", name=_field_name("property"),
            pattern=f"(field_definition value: {_FUNCTION_VALUES}) @def"),
    },
    wrappers=_JAVASCRIPT_WRAPPERS,
    leading=frozenset({"comment", "decorator"}),
    members={"field_definition": _Rule("field", name=_field_name("property"),
                                       pattern="(class_body (field_definition) @member)")},
)

_TYPESCRIPT_RULES = {
    **_JAVASCRIPT_RULES,
    "abstract_class_declaration": _Rule("class"),
    "interface_declaration": _Rule("interface"),
    "enum_declaration": _Rule("enum"),
    "type_alias_declaration": _Rule("type"),
    "internal_module": _Rule("namespace"),
    "public_field_definition": _Rule(
        "function", pattern=f"(public_field_definition value: {_FUNCTION_VALUES}) @def"),
}


def _typescript_spec(load: Callable[[], object]) -> _LanguageSpec:
    return _LanguageSpec(load=load, rules=_TYPESCRIPT_RULES, wrappers=_JAVASCRIPT_WRAPPERS,
                         leading=frozenset({"comment", "decorator"}), members=_TYPESCRIPT_MEMBERS)


_TYPESCRIPT_MEMBERS = {
    "public_field_definition": _Rule("field", pattern="(class_body (public_field_definition) @member)"),
    # Members of interfaces and of object types that are declared on their own, not inline ones.
    "property_signature": _Rule("field", pattern=(
        "[(interface_body (property_signature) @member)"
        " (type_alias_declaration value: (object_type (property_signature) @member))]")),
    "method_signature": _Rule("method", pattern="(interface_body (method_signature) @member)"),
}


_GO = _LanguageSpec(
    load=lambda: __import__("tree_sitter_go").language(),
    rules={
        "function_declaration": _Rule("function"),
        "method_declaration": _Rule("method", name=_go_method_name),
        "type_spec": _Rule("type", kind_of=_go_type_kind),
        "type_alias": _Rule("type"),
    },
    wrappers=frozenset({"type_declaration"}),
    members={"field_declaration": _Rule("field", pattern="(field_declaration name: (field_identifier)) @member")},
)

_RUST = _LanguageSpec(
    load=lambda: __import__("tree_sitter_rust").language(),
    rules={
        "function_item": _Rule("function"),
        "struct_item": _Rule("struct"),
        "enum_item": _Rule("enum"),
        "union_item": _Rule("union"),
        "trait_item": _Rule("trait"),
        "impl_item": _Rule("impl", name=_rust_impl_name),
        "mod_item": _Rule("module", pattern="(mod_item body: (declaration_list)) @def"),
        "macro_definition": _Rule("macro"),
    },
    leading=frozenset({"line_comment", "block_comment", "attribute_item"}),
    members={"field_declaration": _Rule("field", pattern=(
        "([(struct_item) (union_item)] body: (field_declaration_list (field_declaration) @member))"))},
)

_JAVA = _LanguageSpec(
    load=lambda: __import__("tree_sitter_java").language(),
    rules={
        "class_declaration": _Rule("class"),
        "interface_declaration": _Rule("interface"),
        "annotation_type_declaration": _Rule("interface"),
        "enum_declaration": _Rule("enum"),
        "record_declaration": _Rule("record"),
        # Abstract and interface methods without a body stay in their type's chunk.
        "method_declaration": _Rule("function", pattern="(method_declaration body: (_)) @def"),
        "constructor_declaration": _Rule("constructor"),
    },
    leading=frozenset({"line_comment", "block_comment"}),
    members={"field_declaration": _Rule("field", name=_declared_name)},
)

_C_RULES = {
    "function_definition": _Rule("function", name=_function_declarator_name),
    "struct_specifier": _Rule(
        "struct", name=_c_tag_name, pattern="(struct_specifier body: (_)) @def"),
    "union_specifier": _Rule("union", name=_c_tag_name, pattern="(union_specifier body: (_)) @def"),
    "enum_specifier": _Rule("enum", name=_c_tag_name, pattern="(enum_specifier body: (_)) @def"),
}
_C_MEMBERS = {"field_declaration": _Rule("field", name=_declared_name)}
_C = _LanguageSpec(
    load=lambda: __import__("tree_sitter_c").language(),
    rules=_C_RULES,
    wrappers=frozenset({"type_definition"}),
    members=_C_MEMBERS,
)

_CPP = _LanguageSpec(
    load=lambda: __import__("tree_sitter_cpp").language(),
    rules={
        **_C_RULES,
        "function_definition": _Rule(
            "function", name=_function_declarator_name, kind_of=_c_function_kind),
        "class_specifier": _Rule(
            "class", name=_c_tag_name, pattern="(class_specifier body: (_)) @def"),
        "namespace_definition": _Rule("namespace"),
    },
    wrappers=frozenset({"type_definition", "template_declaration"}),
    members=_C_MEMBERS,
)

_RUBY = _LanguageSpec(
    load=lambda: __import__("tree_sitter_ruby").language(),
    rules={
        "module": _Rule("module"),
        "class": _Rule("class"),
        "method": _Rule("function"),
        "singleton_method": _Rule("method"),
    },
    function_scopes=frozenset(),  # a def in a Ruby module is a (mixin or module) method
)

_CSHARP = _LanguageSpec(
    load=lambda: __import__("tree_sitter_c_sharp").language(),
    rules={
        "class_declaration": _Rule("class"),
        "struct_declaration": _Rule("struct"),
        "interface_declaration": _Rule("interface"),
        "enum_declaration": _Rule("enum"),
        "record_declaration": _Rule("record"),
        # Like Java packages, namespaces do not prefix symbols: "Account.Deposit" either way,
        # whether the file uses a block or a file-scoped namespace.
        "namespace_declaration": _Rule("namespace", qualifies=False),
        "method_declaration": _Rule("function", pattern="(method_declaration body: (_)) @def"),
        "constructor_declaration": _Rule("constructor"),
        "destructor_declaration": _Rule("method"),
    },
    members={
        "field_declaration": _Rule("field", name=_csharp_field_name),
        "property_declaration": _Rule("property"),
    },
)

_SPECS: dict[str, _LanguageSpec] = {
    "python": _PYTHON,
    "javascript": _JAVASCRIPT,
    "typescript": _typescript_spec(lambda: __import__("tree_sitter_typescript").language_typescript()),
    "tsx": _typescript_spec(lambda: __import__("tree_sitter_typescript").language_tsx()),
    "go": _GO,
    "rust": _RUST,
    "java": _JAVA,
    "c": _C,
    "cpp": _CPP,
    "ruby": _RUBY,
    "csharp": _CSHARP,
}


# --- parser cache -------------------------------------------------------------------------------

@cache
def _language_and_query(language: str) -> tuple[Language, Query]:
    spec = _SPECS[language]
    grammar = Language(spec.load())
    patterns = [rule.pattern or f"({node_type}) @def" for node_type, rule in spec.rules.items()]
    patterns += [rule.pattern or f"({node_type}) @member" for node_type, rule in spec.members.items()]
    return grammar, Query(grammar, " ".join(patterns))


# A Parser holds per-parse state, so each thread gets its own (languages and queries are shared).
_thread_parsers = threading.local()


def _parser(language: str) -> Parser:
    parsers: dict[str, Parser] = _thread_parsers.__dict__.setdefault("by_language", {})
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = Parser(_language_and_query(language)[0])
    return parser


# --- definitions --------------------------------------------------------------------------------

def _last_row(node: Node) -> int:
    """The last row a node occupies (a node ending at column 0 ends on the previous row)."""
    end_row, end_column = node.end_point
    return end_row - 1 if end_column == 0 and end_row > node.start_point.row else end_row


def _outer_node(node: Node, spec: _LanguageSpec) -> Node:
    """The node plus the wrappers that belong to it (decorated_definition, export, typedef, ...)."""
    while (parent := node.parent) is not None and parent.type in spec.wrappers:
        if sum(1 for sibling in parent.named_children if sibling.type == node.type) > 1:
            break  # e.g. `const a = () => 1, b = () => 2;`: the declaration is shared
        node = parent
    return node


def _leading_start(outer: Node, spec: _LanguageSpec, src: _Source) -> Node:
    """The first node of a definition: the comments and attributes directly above it, or itself."""
    first = outer
    sibling = outer.prev_named_sibling
    while (sibling is not None and sibling.type in spec.leading
           and _last_row(sibling) >= first.start_point.row - 1 and src.starts_line(sibling)):
        first = sibling
        sibling = sibling.prev_named_sibling
    return first


def _header_last(node: Node, src: _Source) -> int:
    """The last signature row: the row opening the body's "{", or the row before an indented body."""
    body = node.child_by_field_name("body")
    if body is None:
        return node.start_point.row
    row = body.start_point.row
    opens_with_brace = src.data[body.start_byte:body.start_byte + 1] == b"{"
    if src.starts_line(body) and not opens_with_brace and row > node.start_point.row:
        return row - 1
    return row


def _body_span(node: Node, src: _Source) -> tuple[int, int] | None:
    """What to elide of a definition's body: inside its braces when it has them, else all of it."""
    body = node.child_by_field_name("body")
    if body is None or body.end_byte - body.start_byte < 2:
        return None
    start, end = body.start_byte, body.end_byte
    if src.data[start:start + 1] == b"{" and src.data[end - 1:end] == b"}":
        start, end = start + 1, end - 1
    return (start, end) if end > start else None


def _qualified(parent: _Definition | None, name: str) -> str:
    name = name.replace("::", ".")
    if parent is None or not parent.qualifies:
        return name
    return f"{parent.symbol}.{name}"


def _kind(rule: _Rule, node: Node, parent: _Definition | None, spec: _LanguageSpec) -> str:
    kind = rule.kind_of(node) if rule.kind_of else rule.kind
    if kind == "function" and parent is not None and parent.kind not in spec.function_scopes \
            and parent.kind not in _LEAF_KINDS:  # a function nested in a function stays a function
        return "method"
    return kind


def _signature(node: Node, name: str, src: _Source) -> str:
    """A definition's header: its text up to the body (or its first line), whitespace collapsed."""
    body = node.child_by_field_name("body")
    if body is not None and body.start_byte > node.start_byte:
        end = body.start_byte
    else:
        end = min(node.end_byte, src.row_end(node.start_point.row))
    text = src.data[node.start_byte:end].decode("utf-8", errors="replace")
    text = _WHITESPACE.sub(" ", text).strip().rstrip("{:;").rstrip()
    if name not in text:  # `typedef struct { ... } Buffer;`: the name comes after the body
        text = f"{text} {name}".strip()
    if len(text) > MAX_SIGNATURE_CHARS:
        text = text[:MAX_SIGNATURE_CHARS - 1] + "…"
    return text


class _Symbols:
    """The symbols of one file, in order of their start, each knowing its syntactic parent."""

    def __init__(self) -> None:
        self.symbols: list[Symbol] = []

    def add(self, node: Node, outer: Node, name: str, qualified: str, kind: str,
            parent: _Definition | None, src: _Source) -> int | None:
        if len(self.symbols) >= MAX_SYMBOLS_PER_FILE:
            return None
        name = name.replace("::", ".").rsplit(".", 1)[-1]
        self.symbols.append(Symbol(
            name=name,
            qualified_name=qualified,
            kind=kind,
            start_line=outer.start_point.row + 1,
            end_line=_last_row(outer) + 1,
            signature=_signature(node, name, src),
            parent=parent.symbol if parent is not None else None,
            position=len(self.symbols),
            parent_position=parent.symbol_index if parent is not None else None,
        ))
        return len(self.symbols) - 1


def _definitions(root: Node, language: str, src: _Source,
                 max_chunks: int | None) -> tuple[list[_Definition], list[Symbol]]:
    """Top-level definitions of a parsed file, each with its nested definitions as children, and
    the file's symbols (these definitions, those nested in functions, and members).

    Every definition outside a function makes at least one chunk: past `max_chunks` of them,
    TooManyChunks at once.
    """
    spec = _SPECS[language]
    query = _language_and_query(language)[1]
    captures = QueryCursor(query).captures(root)
    definition_ids = {node.id for node in captures.get("def", [])}
    captured = {node.id: node for nodes in captures.values() for node in nodes}
    top_level: list[_Definition] = []
    symbols = _Symbols()
    count = 0
    open_definitions: list[tuple[int, _Definition]] = []  # (end byte, definition), outermost first
    for node in sorted(captured.values(), key=lambda n: (n.start_byte, -n.end_byte)):
        while open_definitions and open_definitions[-1][0] <= node.start_byte:
            open_definitions.pop()
        parent = open_definitions[-1][1] if open_definitions else None
        if node.id not in definition_ids:
            _add_member(node, spec, parent, src, symbols)
            continue
        # A definition nested in a function is part of that function's chunk: a symbol only.
        chunked = parent is None or (parent.chunked and parent.kind not in _LEAF_KINDS)
        rule = spec.rules[node.type]
        name = (rule.name or _name_field)(node)
        kind = _kind(rule, node, parent, spec)
        if name is None and (kind not in _LEAF_KINDS or not chunked):
            continue  # an anonymous namespace or struct: its members belong to the outer scope
        outer = _outer_node(node, spec)
        definition = _definition(node, outer, rule, _qualified(parent, name or "<anonymous>"), kind, spec, src)
        definition.chunked = chunked
        if name is not None:
            definition.symbol_index = symbols.add(node, outer, name, definition.symbol, kind, parent, src)
        if chunked:
            (parent.children if parent is not None else top_level).append(definition)
            count += 1
        open_definitions.append((node.end_byte, definition))
        if max_chunks is not None and count > max_chunks:
            raise TooManyChunks(max_chunks)
    return top_level, symbols.symbols


def _add_member(node: Node, spec: _LanguageSpec, parent: _Definition | None, src: _Source,
                symbols: _Symbols) -> None:
    """A field, property or member signature of the container holding it (none outside one)."""
    if parent is None or parent.kind in _LEAF_KINDS:
        return
    rule = spec.members[node.type]
    name = (rule.name or _name_field)(node)
    if name:
        symbols.add(node, node, name, _qualified(parent, name), rule.kind, parent, src)


def _definition(node: Node, outer: Node, rule: _Rule, symbol: str, kind: str, spec: _LanguageSpec,
                src: _Source) -> _Definition:
    lead = _leading_start(outer, spec, src)
    first, last = lead.start_point.row, _last_row(outer)
    row_start, row_end = src.row_starts[first], src.row_end(last)
    alone_at_start = src.blank(row_start, lead.start_byte)
    alone_at_end = src.only_trailer(outer.end_byte, row_end)
    return _Definition(
        symbol=symbol,
        kind=kind,
        first=first,
        last=last,
        header_last=_header_last(node, src),
        qualifies=rule.qualifies,
        start_byte=row_start if alone_at_start else lead.start_byte,
        end_byte=row_end if alone_at_end else outer.end_byte,
        shares_rows=not (alone_at_start and alone_at_end),
        body=_body_span(node, src),
    )


# --- rows and pieces ----------------------------------------------------------------------------

def _is_closing(line: str) -> bool:
    return _CLOSING.match(line) is not None


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def _definition_rows(definition: _Definition, src: _Source,
                     elided: list[tuple[int, int]] | None = None) -> list[Row]:
    """A definition's rows: the file's lines, or its own byte range when it shares a row."""
    if not definition.shares_rows and not elided:
        return [(row, src.lines[row]) for row in range(definition.first, definition.last + 1)]
    return src.rows(definition.start_byte, definition.end_byte, elided or [])


def _outline_rows(definition: _Definition, src: _Source) -> list[Row]:
    """A container's rows with the body of each nested definition replaced by one "..." row, or
    by "..." within the row for a member that shares its row with other code."""
    inline = [child.body for child in definition.children
              if child.shares_rows and child.first == child.last and child.body is not None]
    text_of = dict(_definition_rows(definition, src, inline))
    rows: list[Row] = []
    cursor = definition.first
    for child in definition.children:
        hidden_first = max(child.header_last + 1, cursor)
        closing_kept = child.last > child.header_last and _is_closing(text_of[child.last])
        hidden_last = child.last - 1 if closing_kept else child.last
        if hidden_first > hidden_last:
            continue
        rows.extend((row, text_of[row]) for row in range(cursor, hidden_first))
        indent = _indent(text_of[hidden_first]) or _indent(text_of[child.header_last]) + "    "
        rows.append((hidden_first, indent + ELISION))
        cursor = hidden_last + 1
    rows.extend((row, text_of[row]) for row in range(cursor, definition.last + 1))
    return rows


def _pack(rows: list[Row], max_chars: int, max_lines: int, overlap: int) -> Iterator[list[Row]]:
    """Consecutive groups of rows of at most max_lines rows and max_chars characters (joined by
    newlines; a single longer row is a group of its own), each overlapping the previous one by up
    to `overlap` rows while the overlap still leaves room for a new row."""
    start = 0
    while start < len(rows):
        end, size = start, -1
        while end < len(rows) and end - start < max_lines:
            grown = size + 1 + len(rows[end][1])
            if grown > max_chars and end > start:
                break
            size, end = grown, end + 1
        yield rows[start:end]
        if end >= len(rows):
            return
        start = end - _overlap_rows(rows, start, end, overlap, max_chars)


def _overlap_rows(rows: list[Row], start: int, end: int, overlap: int, max_chars: int) -> int:
    count = min(overlap, end - start - 1)
    while count > 0:
        size = sum(len(text) + 1 for _, text in rows[end - count:end + 1]) - 1
        if size <= max_chars:
            break
        count -= 1
    return count


def _chunks_of(rows: list[Row], symbol: str | None, kind: str, language: str,
               max_chars: int) -> Iterator[Chunk]:
    """One chunk for a group of rows, or character pieces of a single over-long row."""
    if len(rows) == 1 and len(rows[0][1]) > max_chars:
        row, text = rows[0]
        for offset in range(0, len(text), max_chars):
            yield Chunk(row + 1, row + 1, symbol, kind, language, text[offset:offset + max_chars])
        return
    content = "\n".join(text for _, text in rows)
    yield Chunk(rows[0][0] + 1, rows[-1][0] + 1, symbol, kind, language, content)


def _trim_blank(rows: list[Row]) -> list[Row]:
    start, end = 0, len(rows)
    while start < end and not rows[start][1].strip():
        start += 1
    while end > start and not rows[end - 1][1].strip():
        end -= 1
    return rows[start:end]


def _window_chunks(lines: list[str], first: int, last: int, language: str, max_chars: int,
                   window_lines: int, overlap_lines: int) -> Iterator[Chunk]:
    rows = _trim_blank([(row, lines[row]) for row in range(first, last + 1)])
    for window in _pack(rows, max_chars, window_lines, overlap_lines):
        window = _trim_blank(window)
        if window:
            yield from _chunks_of(window, None, WINDOW_KIND, language, max_chars)


def _definition_chunks(definition: _Definition, src: _Source, language: str,
                       max_chars: int) -> Iterator[Chunk]:
    rows = _outline_rows(definition, src) if definition.children else _definition_rows(definition, src)
    for piece in _pack(rows, max_chars, max_lines=len(rows), overlap=0):
        yield from _chunks_of(piece, definition.symbol, definition.kind, language, max_chars)
    for child in definition.children:
        yield from _definition_chunks(child, src, language, max_chars)


def _uncovered_spans(top_level: list[_Definition], line_count: int) -> Iterator[tuple[int, int]]:
    cursor = 0
    for definition in sorted(top_level, key=lambda d: d.first):
        if definition.first > cursor:
            yield cursor, definition.first - 1
        cursor = max(cursor, definition.last + 1)
    if cursor < line_count:
        yield cursor, line_count - 1


def _syntax_parse(text: str, lines: list[str], language: str, max_chars: int, window_lines: int,
                  overlap_lines: int, max_chunks: int | None) -> tuple[Iterator[Chunk], list[Symbol]]:
    src = _Source(text, lines)
    tree = _parser(language).parse(src.data)
    top_level, symbols = _definitions(tree.root_node, language, src, max_chunks)

    def chunks() -> Iterator[Chunk]:
        for definition in top_level:
            yield from _definition_chunks(definition, src, language, max_chars)
        for first, last in _uncovered_spans(top_level, len(lines)):
            yield from _window_chunks(lines, first, last, language, max_chars, window_lines, overlap_lines)

    return chunks(), symbols


def _collected(chunks: Iterator[Chunk], max_chunks: int | None) -> list[Chunk]:
    """The chunks in a list, stopping with TooManyChunks as soon as there are too many."""
    collected: list[Chunk] = []
    for chunk in chunks:
        collected.append(chunk)
        if max_chunks is not None and len(collected) > max_chunks:
            raise TooManyChunks(max_chunks)
    return collected


@dataclass(frozen=True)
class ParsedFile:
    """What one parse of a file gives: its chunks (in order of start_line) and its symbols."""

    chunks: list[Chunk]
    symbols: list[Symbol]


def chunk_file(path: str, text: str, language: str, *, max_chars: int = DEFAULT_MAX_CHUNK_CHARS,
               window_lines: int = 40, overlap_lines: int = 8, max_chunks: int | None = None) -> list[Chunk]:
    """Chunks of one file, in order of start_line; TooManyChunks past `max_chunks` (None: no limit)."""
    return parse_file(path, text, language, max_chars=max_chars, window_lines=window_lines,
                      overlap_lines=overlap_lines, max_chunks=max_chunks).chunks


def parse_file(path: str, text: str, language: str, *, max_chars: int = DEFAULT_MAX_CHUNK_CHARS,
               window_lines: int = 40, overlap_lines: int = 8, max_chunks: int | None = None) -> ParsedFile:
    """Chunks and symbols of one file from one tree-sitter pass (no symbols without a grammar);
    TooManyChunks past `max_chunks` chunks (None: no limit)."""
    if not text.strip():
        return ParsedFile([], [])
    max_chars = max(1, max_chars)
    window_lines = max(1, window_lines)
    overlap_lines = min(max(0, overlap_lines), window_lines - 1)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    chunks: list[Chunk] | None = None
    symbols: list[Symbol] = []
    if language in _SPECS:
        try:
            syntax_chunks, symbols = _syntax_parse(text, lines, language, max_chars, window_lines,
                                                   overlap_lines, max_chunks)
            chunks = _collected(syntax_chunks, max_chunks)
        except TooManyChunks:
            raise
        except Exception:  # noqa: BLE001 - a grammar hiccup must not lose the file: use windows
            chunks, symbols = None, []
    if chunks is None:
        chunks = _collected(_window_chunks(lines, 0, len(lines) - 1, language, max_chars,
                                           window_lines, overlap_lines), max_chunks)
    chunks.sort(key=lambda chunk: chunk.start_line)
    return ParsedFile(chunks, symbols)
