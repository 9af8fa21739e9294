"""Issue 10: a run's assignment plan balances shards by weight where the path hash cannot (a few
hundred files per shard with a heavy tail), gives every file exactly one owner, is the same for the
same tree, and leaves paths it does not name (new files, files known only to the index) to the hash."""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

import pytest

from codebase_indexer.scanning import ScanOptions, SkipCounter, list_candidates
from codebase_indexer.shard_plans import READ_COST_DIVISOR, file_weights
from codebase_indexer.shards import MAX_SHARDS, InvalidShard, PlannedShard, Shard, assign, shard_of


def heavy_tailed(files: int, seed: int = 7) -> dict[str, int]:
    """Sizes like a real tree's: mostly small files and a few that weigh as much as hundreds of them
    (capped, as the indexer's file size limit caps them)."""
    rng = random.Random(seed)
    return {f"pkg{i % 41}/module_{i}.py": min(int(rng.paretovariate(1.3) * 2000), 200_000) for i in range(files)}


def largest_over_mean(weights: dict[str, int], owner_of, count: int) -> float:
    loads = [0] * count
    for path, weight in weights.items():
        loads[owner_of(path)] += weight
    return max(loads) / (sum(loads) / count)


def test_the_plan_gives_every_file_exactly_one_shard_within_range():
    weights = heavy_tailed(3000)
    for count in (1, 2, 3, 16, MAX_SHARDS):
        plan = assign(weights, count)
        assert plan.keys() == weights.keys()
        assert set(plan.values()) <= set(range(count))
        shards = [PlannedShard(Shard(i, count), plan) for i in range(count)]
        assert all(sum(s.owns(path) for s in shards) == 1 for path in weights), count


def test_the_plan_balances_a_heavy_tail_the_hash_rule_cannot():
    weights = heavy_tailed(16 * 340)  # ~340 files a shard, as Django's sdist at N = 16
    for count in (2, 4, 8, 16):
        plan = assign(weights, count)
        assert largest_over_mean(weights, plan.__getitem__, count) <= 1.01, count
    # Without the plan the same tree is out of balance at 16 shards: the test would catch a plan
    # that fell back to hashing.
    assert largest_over_mean(weights, lambda p: shard_of(p, 16), 16) > 1.15


def test_the_same_tree_gives_the_same_plan_whatever_the_order_or_process():
    weights = heavy_tailed(500)
    shuffled = list(weights.items())
    random.Random(1).shuffle(shuffled)
    assert assign(dict(shuffled), 8) == assign(weights, 8)
    equal = {f"f{i}.py": 100 for i in range(40)}  # ties broken by the path hash, not by dict order
    assert assign(equal, 4) == assign(dict(reversed(list(equal.items()))), 4)
    script = ("import sys, json; from codebase_indexer.shards import assign; "
              "print(json.dumps(assign({p: 100 for p in sys.argv[1:]}, 4), sort_keys=True))")
    outputs = {subprocess.run([sys.executable, "-c", script, *equal], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outputs) == 1


def test_a_path_the_plan_does_not_name_falls_back_to_the_hash_rule():
    plan = assign({"a.py": 10, "b.py": 5, "c.py": 1}, 4)
    shards = [PlannedShard(Shard(i, 4), plan) for i in range(4)]
    for late in ("created/after_the_plan.py", "deleted/before_it.go"):
        assert [s.index for s in (x.shard for x in shards if x.owns(late))] == [shard_of(late, 4)]
    assert [s.shard.index for s in shards if s.owns("a.py")] == [plan["a.py"]]
    assert PlannedShard(Shard(), {}).owns("anything")  # one shard owns everything


def test_the_heaviest_files_go_to_different_shards():
    plan = assign({"huge.py": 10_000, "big.py": 9_000, "mid.py": 5_000, **{f"s{i}.py": 10 for i in range(30)}}, 2)
    assert plan["huge.py"] != plan["big.py"]


def test_a_bad_shard_count_is_refused():
    with pytest.raises(InvalidShard, match="shard count"):
        assign({"a.py": 1}, MAX_SHARDS + 1)


def test_weights_are_the_bytes_to_embed_and_skipped_or_unchanged_files_weigh_almost_nothing(tmp_path):
    (tmp_path / "code.py").write_text("def f():\n    return 1\n" * 200)
    (tmp_path / "same.py").write_text("def g():\n    return 2\n" * 200)
    (tmp_path / "blob.dat").write_bytes(b"\x00\x01" * 4000)  # binary by its NUL bytes: never embedded
    candidates = list_candidates(tmp_path, ScanOptions(), SkipCounter())
    size = {c.path: c.size for c in candidates}
    full = file_weights(candidates)
    assert full["code.py"] == full["same.py"] > size["code.py"]
    assert full["blob.dat"] <= 1 + size["blob.dat"] // READ_COST_DIVISOR
    assert file_weights(list_candidates(tmp_path, ScanOptions(), SkipCounter())) == full  # same tree, same plan
    stored = {"same.py": hashlib.sha256((tmp_path / "same.py").read_bytes()).hexdigest()}
    incremental = file_weights(candidates, stored)
    assert incremental["code.py"] == full["code.py"]
    assert incremental["same.py"] <= 1 + size["same.py"] // READ_COST_DIVISOR
