"""Whether an indexed file changed on disk after it was indexed: one `stat` per file, no reading.

The indexer records each file's size and modification time (`files.size`, `files.mtime_ns`) as
it read it; a result is stale when the file on disk now has another size or time, or is gone.
Every tool that returns indexed content (search_code, grep_code, ...) marks its results with
`mark_stale`, so an agent knows to re-read the file before trusting the snippet.

`stale` is None (unknown) when the caller cannot see the files (the Kubernetes gateway: the
repository lives in the indexer pods' workspace or a git remote), when the file was indexed
before times were recorded, or when the path cannot be checked.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, MutableMapping
from pathlib import Path, PurePosixPath

import asyncpg

Recorded = tuple[int, int | None]  # (size in bytes, mtime in ns) at index time


async def recorded_times(conn: asyncpg.Connection, paths: Iterable[str]) -> dict[str, Recorded]:
    """The recorded (size, mtime_ns) of these indexed files (one indexed query)."""
    rows = await conn.fetch("SELECT path, size, mtime_ns FROM files WHERE path = ANY($1::text[])",
                            sorted(set(paths)))
    return {row["path"]: (row["size"], row["mtime_ns"]) for row in rows}


def is_stale(root: Path, path: str, recorded: Recorded | None) -> bool | None:
    """True if the file at `root/path` differs from what was indexed (or is gone), False if not,
    None if that cannot be told."""
    relative = PurePosixPath(path)
    if recorded is None or recorded[1] is None or relative.is_absolute() or ".." in relative.parts:
        return None
    try:
        now = os.stat(root.joinpath(*relative.parts))
    except FileNotFoundError:
        return True
    except OSError:
        return None
    return (now.st_size, now.st_mtime_ns) != recorded


def mark_stale(results: Iterable[MutableMapping], root: Path | None, recorded: dict[str, Recorded],
               *, path_key: str = "file_path") -> None:
    """Set each result's `stale` (see is_stale); None for all when the files cannot be seen."""
    for result in results:
        result["stale"] = None if root is None else is_stale(root, result[path_key], recorded.get(result[path_key]))
