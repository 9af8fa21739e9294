"""Which language a file is, by its name."""
from __future__ import annotations

from pathlib import PurePosixPath

# Languages chunked by syntax (tree-sitter grammar wheels).
TREE_SITTER_LANGUAGES = (
    "python", "javascript", "typescript", "tsx", "go", "rust",
    "java", "c", "cpp", "ruby", "csharp",
)

_BY_EXTENSION = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".rb": "ruby",
    ".cs": "csharp",
    # Line-window languages: known names make the language filter useful.
    ".md": "markdown", ".rst": "rst", ".txt": "text",
    ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini",
    ".sh": "shell", ".bash": "shell", ".sql": "sql", ".html": "html", ".css": "css",
    ".kt": "kotlin", ".swift": "swift", ".php": "php", ".scala": "scala", ".lua": "lua",
}
_BY_NAME = {"makefile": "make", "dockerfile": "dockerfile"}


def language_for_path(path: str) -> str:
    """The language name of a repository-relative path; "text" when unknown."""
    pure = PurePosixPath(path)
    by_name = _BY_NAME.get(pure.name.lower())
    if by_name:
        return by_name
    return _BY_EXTENSION.get(pure.suffix.lower(), "text")
