"""Identifier-aware text for full-text search: `getUserName` and `get_user_name` both match "user name"."""
from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*|[0-9]+")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def identifier_parts(word: str) -> list[str]:
    """`parseHTTPResponse_v2` -> ["parse", "http", "response", "v2"] (lowercase)."""
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(p.lower() for p in _CAMEL_PART.findall(piece))
    return [p for p in parts if p]


def searchable_text(*texts: str | None) -> str:
    """The text fed to `to_tsvector`: the words, plus each compound identifier's parts."""
    out: list[str] = []
    for text in texts:
        if not text:
            continue
        for word in _WORD.findall(text):
            out.append(word.lower())
            parts = identifier_parts(word)
            if len(parts) > 1:
                out.extend(parts)
    return " ".join(out)
