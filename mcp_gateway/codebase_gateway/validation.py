"""Checks on tool arguments. Each failure is an InvalidArgument that says what was wrong and what to do.

The checks know nothing of MCP: the server turns InvalidArgument into the agent's tool error
(server.py, one place), and the terminal CLI prints it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import overload

from codebase_indexer.identifiers import InvalidProjectId, normalize_project_id
from codebase_indexer.outcomes import TOOL_STATUSES, state_of_tool_status
from codebase_indexer.search import MAX_QUERY_CHARS, SearchError, checked_alternatives, file_extension

# search_code's arguments are checked here against the data plane's own bounds, before the
# project is resolved, so that a bad argument is an MCP error whatever the project. Bounds a
# JSON schema can state (limits, modes) are in the tools' signatures instead (server.py).
MAX_LIST_LIMIT = 100
# About 20k tokens at ~4 characters a token: what an agent can take in one response.
MAX_RESPONSE_CHARS = 80_000
JOB_STATES = TOOL_STATUSES  # the original server's words


class InvalidArgument(ValueError):
    """An argument the gateway refuses; the message says what was wrong and what to do."""


def directory_path(value: str, roots: Iterable[Path] = (), *, what: str = "directory") -> Path:
    """An absolute, existing directory without `..` components, symlinks resolved, inside `roots`.

    The roots are checked before anything touches the file system, so a caller learns nothing about
    paths outside them (a missing path and an existing one get the same error), and an error never
    shows where a symbolic link leads.
    """
    raw = _absolute_path(value, what)
    roots = [Path(root) for root in roots]
    if roots and not is_within(raw, roots):
        raise _outside(value, roots, what)
    resolved = resolved_path(raw)
    if resolved is None:
        raise InvalidArgument(f"{what} {value!r} cannot be resolved: it goes through a loop of symbolic links")
    if roots and not is_within(resolved, [root.resolve() for root in roots]):
        raise _outside(value, roots, what, through_link=True)
    if not resolved.exists():
        raise InvalidArgument(f"{what} {value!r} does not exist")
    if not resolved.is_dir():
        raise InvalidArgument(f"{what} {value!r} is not a directory")
    return resolved


def _absolute_path(value: str, what: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what} is empty: give an absolute path such as /home/me/project")
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character")
    raw = Path(os.path.expanduser(value.strip()))
    if not raw.is_absolute():
        raise InvalidArgument(f"{what} {value!r} is relative: give an absolute path such as /home/me/project")
    if ".." in raw.parts:
        raise InvalidArgument(f"{what} {value!r} contains '..': give the path without parent references")
    return Path(os.path.normpath(raw))


def resolved_path(path: Path) -> Path | None:
    """`path` with every symbolic link followed, or None for a loop of links."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError on Python < 3.13, OSError (ELOOP) after
        return None


def is_within(path: Path, roots: Iterable[Path]) -> bool:
    """Whether `path` is one of `roots` or below one, comparing the paths as written.

    A root is also matched in its resolved form, so a root given through a symbolic link
    (macOS's /tmp) still contains the paths written under its real name.
    """
    for root in roots:
        for form in {Path(os.path.normpath(root)), Path(root).resolve()}:
            if path == form or path.is_relative_to(form):
                return True
    return False


def _outside(value: str, roots: list[Path], what: str, *, through_link: bool = False) -> InvalidArgument:
    allowed = ", ".join(str(root) for root in roots)
    how = " through a symbolic link" if through_link else ""
    return InvalidArgument(f"{what} {value!r} leads outside the allowed roots{how} ({allowed}); "
                     "give a directory under one of them")


@overload
def project_id(value: str) -> str: ...
@overload
def project_id(value: None) -> None: ...
def project_id(value: str | None) -> str | None:
    """The canonical project id, or None when not given."""
    if value is None:
        return None
    try:
        return normalize_project_id(value)
    except InvalidProjectId as exc:
        raise InvalidArgument(f"invalid project_id: {exc}") from None


def query(value: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidArgument("query is empty: describe the code you are looking for")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidArgument(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}. "
                        "Shorten it to the essential words")
    return text


def alternatives(value: list[str] | None) -> tuple[str, ...]:
    """search_code's other phrasings of the query, by the data plane's bounds."""
    try:
        return checked_alternatives(value)
    except SearchError as exc:
        raise InvalidArgument(str(exc)) from None


def file_type(value: str | None) -> str | None:
    """A file extension without the dot, e.g. `py`, by the data plane's rule."""
    try:
        return file_extension(value)
    except SearchError as exc:
        raise InvalidArgument(str(exc)) from None


def directory_prefix(value: str | None) -> str | None:
    """A directory filter relative to the repository root (characters like `%` stay literal)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if "\x00" in text or len(text) > 1_000:
        raise InvalidArgument("directory must be a path relative to the repository root, e.g. 'src/api'")
    if ".." in PurePosixPath(text).parts:
        raise InvalidArgument(f"directory {value!r} contains '..': give a path inside the repository")
    return text


def job_state(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in JOB_STATES:
        raise InvalidArgument(f"status must be one of {', '.join(JOB_STATES)}, got {value!r}")
    return state_of_tool_status(value)


def job_id(value: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > 253:
        raise InvalidArgument("job_id is empty or too long: use a job_id returned by start_indexing_background")
    return text


def capped_search_response(response: dict, max_chars: int = MAX_RESPONSE_CHARS) -> dict:
    """Drop trailing results (then shorten contents) until the JSON fits; say `truncated`."""
    response = dict(response, truncated=False)
    if _json_size(response) <= max_chars:
        return response
    results = list(response.get("results", []))
    while results and _json_size(dict(response, results=results)) > max_chars:
        results.pop()
    if not results and response.get("results"):
        first = dict(response["results"][0])
        budget = max(0, max_chars // 2)
        first["content"] = first.get("content", "")[:budget]
        for key in ("context_before", "context_after"):
            if key in first:
                first[key] = type(first[key])()
        results = [first]
    return dict(response, results=results, truncated=True)


def capped_listing(response: dict, key: str, max_chars: int = MAX_RESPONSE_CHARS) -> dict:
    """Drop trailing items of `response[key]` until the JSON fits; say `truncated`."""
    items = list(response[key])
    while items and _json_size(dict(response, **{key: items})) > max_chars:
        items.pop()
    return dict(response, **{key: items}, truncated=len(items) < len(response[key]))


def capped_matches(response: dict, key: str, max_chars: int = MAX_RESPONSE_CHARS) -> dict:
    """capped_listing for results that already say `truncated` (more matched than the limit):
    truncated when either cut happened."""
    capped = capped_listing(response, key, max_chars)
    return dict(capped, truncated=capped["truncated"] or bool(response.get("truncated")))


def _json_size(value: dict) -> int:
    return len(json.dumps(value, default=str))
