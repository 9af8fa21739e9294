"""Freshness on a laptop: from saving a file to the change being searchable, and the watch's idle CPU.

A real `codebase-mcp serve` (stdio, watching on, the local model) indexes a real repository of at
least 1,000 files (the Python sources of pip, setuptools and networkx, copied from this
virtualenv), then 50 edits each append a function holding a new word to one file; the latency
of an edit is the time from the write until a lexical search_code finds the word there. The
idle CPU is the gateway's and its indexer worker's CPU time over a quiet period.

    .venv/bin/python bench/freshness.py [--edits 50] [--idle-seconds 20]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import psutil
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from codebase_indexer.settings import OFFLINE_MODEL_ENVIRONMENT

BENCH_DIR = Path(__file__).resolve().parent.parent / ".bench"
CORPUS_PACKAGES = ("pip", "setuptools", "networkx")
MIN_FILES = 1000


def corpus() -> Path:
    """The Python files of a few installed packages, as one repository (copied once)."""
    root = BENCH_DIR / "freshness" / "repo"
    if not root.is_dir():
        site = Path(sysconfig.get_paths()["purelib"])
        for package in CORPUS_PACKAGES:
            for source in (site / package).rglob("*.py"):
                target = root / package / source.relative_to(site / package)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
    files = sorted(root.rglob("*.py"))
    if len(files) < MIN_FILES:
        raise SystemExit(f"the corpus has {len(files)} files, fewer than {MIN_FILES}")
    return root


def gateway() -> Client:
    env = dict(os.environ, CODEBASE_MCP_HOME=str(BENCH_DIR / "home"), CODEBASE_MCP_WATCH="true",
               **OFFLINE_MODEL_ENVIRONMENT)
    env.pop("DATABASE_URL", None)
    command = str(Path(sys.executable).with_name("codebase-mcp"))
    return Client(StdioTransport(command=command, args=["serve"], env=env, keep_alive=False), timeout=3600)


async def found(client: Client, project: str, word: str) -> bool:
    result = (await client.call_tool("search_code", {"query": word, "project_id": project,
                                                     "mode": "lexical", "limit": 5})).data
    return any(word in r["content"] for r in result["results"])


async def until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("not reached in time")
        await asyncio.sleep(0.05)


async def watching(client: Client, project: str) -> bool:
    projects = (await client.call_tool("list_projects", {})).data["projects"]
    return any(p["name"] == project and p["watch"]["state"] == "watching" for p in projects)


def gateway_processes() -> list[psutil.Process]:
    """The bench's gateway and its children (the warm indexer), found by their command lines."""
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if p.is_running()]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def measure(edits: int, idle_seconds: float) -> None:
    root = corpus()
    files = sorted(root.rglob("*.py"))
    project = "bench-freshness"
    print(f"corpus: {len(files)} files under {root}")
    async with gateway() as client:
        started = time.monotonic()
        status = (await client.call_tool("index_repository", {"repo_path": str(root), "project_id": project})).data
        print(f"initial index: {status['status']} in {time.monotonic() - started:.0f} s: {status['status_message']}")
        await until(lambda: watching(client, project), 120)
        await found(client, project, "warmup")  # loads the query model
        processes = gateway_processes()
        before = cpu_seconds(processes)
        await asyncio.sleep(idle_seconds)
        idle = (cpu_seconds(processes) - before) / idle_seconds
        print(f"idle CPU while watching: {idle * 100:.2f}% of one core over {idle_seconds:.0f} s "
              f"({len(processes)} processes: gateway, indexer worker)")

        latencies = []
        for n in range(edits):
            target, word = files[(n * 37) % len(files)], f"zq{uuid.uuid4().hex[:12]}"
            saved = time.monotonic()
            with target.open("a", encoding="utf-8") as handle:
                handle.write(f"\n\ndef edited_{word}():\n    return '{word}'\n")
            await until(lambda word=word: found(client, project, word), 120)
            latencies.append(time.monotonic() - saved)
            await asyncio.sleep(0.3)
        latencies.sort()
        p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
        print(f"save -> searchable over {edits} edits: p50 {statistics.median(latencies):.2f} s, "
              f"p95 {p95:.2f} s, max {latencies[-1]:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(measure(args.edits, args.idle_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
