"""The user CLI, run as a user runs it: `codebase-mcp index` then `codebase-mcp search` (processes);
its error paths through its entry point in process (same exit codes and messages, no process start)."""
from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import threading

import pytest

from codebase_gateway.cli import main as cli_main

from .conftest import write_tree


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codebase_gateway.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ), timeout=300)


@pytest.mark.slow
def test_index_then_search_from_the_terminal(postgres_url, tmp_path, unique_project_id):
    repo = write_tree(tmp_path / "shop", {
        "cart.py": "def add_item_to_cart(cart, item):\n    cart.append(item)\n",
        ".codebase-mcp/config.json": json.dumps({"version": 1, "project": {"name": unique_project_id}}),
    })
    indexed = cli("index", str(repo))
    assert indexed.returncode == 0, indexed.stderr
    assert f"project {unique_project_id}" in indexed.stdout and "indexed 1 files (1 chunks)" in indexed.stdout

    found = cli("search", "put a product in the shopping cart", cwd=repo)
    assert found.returncode == 0, found.stderr
    first = found.stdout.splitlines()[0].split()
    assert first[0] == "cart.py:1-2" and first[2] == "add_item_to_cart"

    as_json = json.loads(cli("search", "cart", "--json", "--limit", "1", cwd=repo).stdout)
    assert as_json["project_id"] == unique_project_id and len(as_json["results"]) == 1


async def test_unknown_project_and_bad_path_give_clear_errors(postgres_url, tmp_path, capsys):
    # In a thread: the CLI runs its own event loop, as it does in its process.
    missing = await asyncio.to_thread(cli_main, ["search", "anything", "--project", "never-indexed-project"])
    assert missing == 1 and "has not been indexed" in capsys.readouterr().err
    bad = await asyncio.to_thread(cli_main, ["index", str(tmp_path / "nope")])
    assert bad == 1 and "is not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_index_watch_prints_one_line_per_run_and_stops_when_the_folder_goes(postgres_url, tmp_path, unique_project_id):
    repo = write_tree(tmp_path / "shop", {"cart.py": "def add_item_to_cart(cart, item):\n    cart.append(item)\n",
                                          ".gitignore": "*.log\n"})
    process = subprocess.Popen(
        [sys.executable, "-m", "codebase_gateway.cli", "index", str(repo), "--project", unique_project_id,
         "--watch", "--watch-debounce", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()

    def next_line(timeout: float = 120) -> str:  # never blocks the suite: a missing line fails the test
        return lines.get(timeout=timeout)

    try:
        summary = "".join(next_line() for _ in range(3))  # the index's summary, as without --watch
        assert f"project {unique_project_id}" in summary and "indexed 2 files" in summary, summary
        assert next_line().startswith(f"watching {repo}")

        # The watch is registered a moment after that line (watchfiles gives no signal): a save in that
        # moment is not seen, so the edit is repeated until one is (known gap, see docs/freshness.md).
        (repo / "notes.log").write_text("not indexed\n")
        for attempt in range(6):
            edit = f"def remove_item_from_cart(cart, item):\n    cart.remove(item)  # save {attempt}\n"
            (repo / "cart.py").write_text(edit)
            try:
                run = next_line(timeout=10)
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError("no run line after six saves")
        assert " run 1: indexed 1 files" in run and "0 deleted" in run, run

        shutil.rmtree(repo)
        assert process.wait(timeout=60) == 1
        assert f"the repository folder {repo}" in process.stderr.read()
    finally:
        process.kill()


def test_commands_that_only_read_start_without_the_gateway_or_operator_stack(capsys):
    """`grep`, `search` and the rest leave fastmcp and kopf unimported (seconds of start-up each);
    `serve` and `operator` still parse their own flags."""
    probe = ("import sys\nfrom codebase_gateway.cli import main\n"
             "try:\n    main(['grep', '--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted({'fastmcp', 'kopf'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "[]"

    for command, flag in (("serve", "--allowed-root"), ("operator", "--max-active-jobs")):
        with pytest.raises(SystemExit) as help_exit:
            cli_main([command, "--help"])
        assert help_exit.value.code == 0 and flag in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        cli_main(["serve", "--no-such-flag"])
    assert refused.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
