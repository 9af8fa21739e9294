"""Which files a shard of a run owns: the run's assignment plan, else a stable hash of the path.

A run of parallelism N is N shards (on Kubernetes, the indexes of one Indexed Job). The hash rule:
shard i owns the files whose path hash falls in [i/N, (i+1)/N) of the hash space. The hash is
BLAKE2b of the path's UTF-8 bytes, never Python's `hash()` (salted per process), so every shard,
every pod and every later run agrees on who owns a file without talking to the others: each file
belongs to exactly one shard, whether it exists on disk (to index) or only in the index (to delete).

Hashing cannot balance a heavy-tailed size distribution when a shard holds only a few hundred
files, so a run of N > 1 also has an assignment plan (`assign`, kept per run by shard_plans.py):
the files of the tree, heaviest first, each to the lightest shard so far. A path the plan names
belongs to the plan's shard; any other path (created after the plan, or known only to the index)
to the hash rule's, so ownership stays total and every shard agrees.
"""
from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

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
    """The shard (0 … count-1) owning a repository-relative path by the hash rule."""
    return (_path_hash(path) * count) >> _HASH_BITS


def _path_hash(path: str) -> int:
    # surrogateescape: a path that is not valid UTF-8 still hashes the same everywhere.
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=_HASH_BITS // 8).digest()
    return int.from_bytes(digest, "big")


class Owner(Protocol):
    """Decides which paths one shard owns: a `Shard` (the hash rule) or a `PlannedShard`."""

    def owns(self, path: str) -> bool: ...


@dataclass(frozen=True)
class PlannedShard:
    """A shard of a run with an assignment plan (path → shard index): the plan's owner for a path it
    names, the hash rule's for any other."""

    shard: Shard
    plan: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)

    def owner_of(self, path: str) -> int:
        planned = self.plan.get(path)
        return shard_of(path, self.shard.count) if planned is None else planned

    def owns(self, path: str) -> bool:
        return self.shard.whole or self.owner_of(path) == self.shard.index


def assign(weights: Mapping[str, int], count: int) -> dict[str, int]:
    """Each path to a shard (0 … count-1) so the shards' summed weights come out even: heaviest
    first, each to the lightest shard so far (LPT). Equal weights are taken in path-hash order and
    equal loads go to the lower index, so the same weights always give the same plan."""
    if not 1 <= count <= MAX_SHARDS:
        raise InvalidShard(f"the shard count must be between 1 and {MAX_SHARDS}, got {count}")
    loads = [(0, index) for index in range(count)]
    plan: dict[str, int] = {}
    for path in sorted(weights, key=lambda p: (-weights[p], _path_hash(p), p)):
        load, index = heapq.heappop(loads)
        plan[path] = index
        heapq.heappush(loads, (load + max(0, weights[path]), index))
    return plan


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

    def __init__(self, shard: Owner) -> None:
        super().__init__()
        self.shard = shard

    def add(self, reason: str, path: str) -> None:
        if self.shard.owns(path):
            super().add(reason, path)


class HeldSkips(SkipCounter):
    """Every skip, kept until the shard knows what it owns (the plan comes after the listing)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[str, str]] = []

    def add(self, reason: str, path: str) -> None:
        self.held.append((reason, path))

    def replay(self, into: SkipCounter) -> SkipCounter:
        for reason, path in self.held:
            into.add(reason, path)
        return into
