"""Issue 10: which files a shard owns. The split must be the same in every process (every pod, every
later run), give each file to exactly one shard, and be even enough that N pods finish together."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from codebase_indexer.scanning import SkipCounter
from codebase_indexer.shards import MAX_SHARDS, InvalidShard, Shard, ShardSkips, chunk_budget, shard_from_env, shard_of

PATHS = [f"pkg{i % 37}/module_{i}.py" for i in range(2000)] + ["README.md", "src/é/ünïcode.rs", "a b/c.go"]


def test_every_file_belongs_to_exactly_one_shard():
    for count in (1, 2, 3, 4, 8, 16, MAX_SHARDS):
        shards = [Shard(index, count) for index in range(count)]
        owners = {path: [shard.index for shard in shards if shard.owns(path)] for path in PATHS}
        assert all(len(found) == 1 for found in owners.values()), count
        assert all(found == [shard_of(path, count)] for path, found in owners.items())


def test_the_split_is_the_same_in_another_process_with_another_hash_seed():
    script = "import sys; from codebase_indexer.shards import shard_of; print([shard_of(p, 7) for p in sys.argv[1:]])"
    sample = PATHS[:50] + PATHS[-3:]
    outputs = {subprocess.run([sys.executable, "-c", script, *sample], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
               for seed in ("1", "2")}
    assert outputs == {str([shard_of(p, 7) for p in sample])}


def test_the_split_is_pinned_so_an_upgrade_cannot_reshuffle_a_running_run():
    # Pods of one run may run different builds during a rollout: the function is part of the contract.
    assert [shard_of(p, 4) for p in ("README.md", "src/main.py", "pkg/a.go", "docs/x.md")] == [1, 0, 3, 1]
    assert [shard_of(p, 16) for p in ("README.md", "src/main.py")] == [7, 2]
    assert shard_of("README.md", 1) == 0


def test_shares_are_even_by_file_count():
    for count in (2, 4, 8, 16):
        sizes = [sum(1 for p in PATHS if shard_of(p, count) == i) for i in range(count)]
        assert max(sizes) / (len(PATHS) / count) < 1.25, (count, sizes)


def test_a_shard_comes_from_the_indexed_jobs_environment():
    assert shard_from_env({}) == Shard(0, 1)
    assert shard_from_env({"JOB_COMPLETION_INDEX": "3", "CODEBASE_MCP_SHARD_COUNT": "4"}) == Shard(3, 4)
    assert shard_from_env({"JOB_COMPLETION_INDEX": "3"}, index="1", count="2") == Shard(1, 2)


@pytest.mark.parametrize("env, named", [
    ({"JOB_COMPLETION_INDEX": "4", "CODEBASE_MCP_SHARD_COUNT": "4"}, "index"),
    ({"JOB_COMPLETION_INDEX": "-1", "CODEBASE_MCP_SHARD_COUNT": "4"}, "JOB_COMPLETION_INDEX"),
    ({"CODEBASE_MCP_SHARD_COUNT": "0"}, "count"),
    ({"CODEBASE_MCP_SHARD_COUNT": str(MAX_SHARDS + 1)}, "count"),
    ({"CODEBASE_MCP_SHARD_COUNT": "2; rm -rf /"}, "CODEBASE_MCP_SHARD_COUNT"),
])
def test_a_bad_shard_setting_is_refused_naming_it(env, named):
    with pytest.raises(InvalidShard, match=named):
        shard_from_env(env)


def test_skips_are_counted_by_the_shard_that_owns_the_path():
    counters = [ShardSkips(Shard(i, 3)) for i in range(3)]
    whole = SkipCounter()
    for path in PATHS[:300]:
        for counter in (*counters, whole):
            counter.add("too_large", path)
    assert sum(c.counts["too_large"] for c in counters) == whole.counts["too_large"] == 300


def test_the_chunk_budget_is_shared_without_losing_any():
    assert chunk_budget(100, Shard(0, 1)) == 100
    assert chunk_budget(100, Shard(2, 3)) * 3 >= 100 and chunk_budget(100, Shard(2, 3)) == 34


def test_the_indexer_refuses_a_bad_shard_before_touching_anything(capsys):
    from codebase_indexer.indexer_main import EXIT_USAGE, main

    code = main(["--database-url", "postgresql://nowhere/db", "--project", "p", "--source", "/tmp",
                 "--shard-index", "4", "--shard-count", "4"])
    report = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == EXIT_USAGE and '"InvalidArguments"' in report and "--shard-index" in report


def test_the_shard_count_variable_is_the_indexer_settings_own():
    from codebase_indexer.configuration import variable
    from codebase_indexer.settings import IndexerSettings
    from codebase_indexer.shards import SHARD_COUNT_ENV

    assert variable(IndexerSettings, "shard_count") == SHARD_COUNT_ENV
