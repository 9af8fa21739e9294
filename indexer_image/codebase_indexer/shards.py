"""Which files a shard of a run owns: a stable hash of the relative path, cut into equal shares.

A run of parallelism N is N shards (on Kubernetes, the indexes of one Indexed Job). Shard i owns
the files whose path hash falls in [i/N, (i+1)/N) of the hash space. The hash is BLAKE2b of the
path's UTF-8 bytes, never Python's `hash()` (salted per process), so every shard, every pod and
every later run agrees on who owns a file without talking to the others: each file belongs to
exactly one shard, whether it exists on disk (to index) or only in the index (to delete).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .scanning import SkipCounter

MAX_SHARDS = 64  # the CRDs' bound on parallelism; more pods than this would mostly wait on PostgreSQL
SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in every pod of an Indexed Job
SHARD_COUNT_ENV = "CODEBASE_MCP_SHARD_COUNT"  # IndexerSettings.shard_count (a test checks they agree)
_HASH_BITS = 64


class InvalidShard(ValueError):
    """A shard index or count out of range; the message names the setting."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based). `Shard()` is the whole repository in one process."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise InvalidShard(f"the shard count must be between 1 and {MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise InvalidShard(f"the shard index must be between 0 and {self.count - 1}, got {self.index}")

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, path: str) -> bool:
        return self.whole or shard_of(path, self.count) == self.index

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


WHOLE = Shard()  # the whole repository in one process


def shard_of(path: str, count: int) -> int:
    """The shard (0 … count-1) owning a repository-relative path."""
    # surrogateescape: a path that is not valid UTF-8 still hashes the same everywhere.
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=_HASH_BITS // 8).digest()
    return (int.from_bytes(digest, "big") * count) >> _HASH_BITS


def shard_from_env(env: Mapping[str, str] | None = None, *, index: str | None = None,
                   count: str | None = None) -> Shard:
    """The shard of this process: `index`/`count` when given, else the environment
    (`JOB_COMPLETION_INDEX`, `CODEBASE_MCP_SHARD_COUNT`); a process without them is the whole run."""
    env = os.environ if env is None else env
    raw_index = index if index is not None else env.get(SHARD_INDEX_ENV, "")
    raw_count = count if count is not None else env.get(SHARD_COUNT_ENV, "")
    return Shard(index=_integer(raw_index, "the shard index", SHARD_INDEX_ENV, 0),
                 count=_integer(raw_count, "the shard count", SHARD_COUNT_ENV, 1))


def _integer(raw: str, what: str, variable: str, default: int) -> int:
    raw = raw.strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        raise InvalidShard(f"{what} ({variable}) must be a small whole number, got {raw[:20]!r}")
    return int(raw)


def chunk_budget(run_budget: int, shard: Shard) -> int:
    """A shard's share of the run's chunk budget (rounded up, so N shards never allow less)."""
    return -(-run_budget // shard.count)


class ShardSkips(SkipCounter):
    """Counts only the skips of paths this shard owns, so N shards' counts add up to one run's."""

    def __init__(self, shard: Shard) -> None:
        super().__init__()
        self.shard = shard

    def add(self, reason: str, path: str) -> None:
        if self.shard.owns(path):
            super().add(reason, path)
