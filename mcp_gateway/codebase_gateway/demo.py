"""`make demo`: a real MCP client drives `codebase-mcp serve` over stdio.

It indexes a repository (default: this one) with `index_repository`, showing
the progress notifications, then prints a few natural-language searches, one
result a line as `path:start-end  score  symbol`.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError

from codebase_indexer.settings import use_offline_model

from .cli import result_line

QUERIES = (
    "parse command line arguments",
    "read configuration from environment variables",
    "open a connection to the database",
    "walk the directory tree and skip ignored files",
)


def gateway_transport() -> StdioTransport:
    """`codebase-mcp serve` from this environment, exactly as an editor would launch it."""
    script = Path(sys.executable).with_name("codebase-mcp")
    command = str(script) if script.exists() else (shutil.which("codebase-mcp") or "")
    env = dict(os.environ)
    use_offline_model(env)
    if command:
        return StdioTransport(command=command, args=["serve"], env=env)
    return StdioTransport(command=sys.executable, args=["-m", "codebase_gateway.serve_command"], env=env)


class ProgressLine:
    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = ""

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        text = f"  {message or ''}"
        if total:
            filled = int(30 * progress / total)
            text = f"  [{'#' * filled}{'.' * (30 - filled)}] {int(progress)}/{int(total)} files  {message or ''}"
        if text == self.last:
            return
        self.last = text
        print(f"\r{text[:120]:<120}" if self.tty else text, end="" if self.tty else "\n", flush=True)

    def close(self) -> None:
        if self.tty and self.last:
            print()


async def demo(repo: Path, limit: int) -> int:
    progress = ProgressLine()
    started = time.perf_counter()
    async with Client(gateway_transport(), progress_handler=progress, timeout=1800) as client:
        print(f"gateway started over stdio in {time.perf_counter() - started:.1f} s")
        session = (await client.call_tool("set_working_directory", {"directory": str(repo)})).data
        arguments = {"repo_path": str(repo)}
        if not session["config_found"]:
            arguments["project_id"] = repo.name or "default"
        print(f"index_repository {repo} (project {arguments.get('project_id') or session['project_info']['name']})")
        status = (await client.call_tool("index_repository", arguments)).data
        progress.close()
        print(f"  {status['status']}: {status['status_message']}")
        if status["status"] != "completed":
            print(f"  error: {status['error_message']}", file=sys.stderr)
            return 1
        for query in QUERIES:
            found = (await client.call_tool("search_code", {
                "query": query, "project_id": status["project_id"], "limit": limit})).data
            print(f"\nsearch_code {query!r}  ({found['latency_ms']:.0f} ms)")
            for result in found["results"]:
                print("  " + result_line(result))
            if not found["results"]:
                print("  no results")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("repo", nargs="?", default=".", type=Path, help="repository to index (default: .)")
    parser.add_argument("--limit", type=int, default=5, help="results per query")
    args = parser.parse_args(argv)
    repo = args.repo.expanduser().resolve()
    if not repo.is_dir():
        print(f"demo: {args.repo} is not a directory", file=sys.stderr)
        return 2
    try:
        return asyncio.run(demo(repo, args.limit))
    except ToolError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
