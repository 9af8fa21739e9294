"""`codebase-mcp`: index and search from a terminal; start the gateway or the operator."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from codebase_indexer import grep as grep_plane
from codebase_indexer import symbols as symbol_plane
from codebase_indexer.embedding import EmbeddingError, create_embedder
from codebase_indexer.identifiers import InvalidProjectId, normalize_project_id
from codebase_indexer.models import IndexSummary, Progress
from codebase_indexer.outcomes import summary_sentence
from codebase_indexer.pipeline import IndexingError, index_repository
from codebase_indexer.postgres import admin_database_url
from codebase_indexer.provisioning import ProjectDatabase, ensure_project_database, project_database_exists
from codebase_indexer.search import MODES, SearchError, search_code
from codebase_indexer.settings import project_lock_wait_seconds, use_offline_model

from .control_plane.watcher import (
    DEFAULT_DEBOUNCE_SECONDS,
    DEFAULT_MAX_DELAY_SECONDS,
    RepositoryWatch,
    WatchSettings,
    WatchTarget,
)
from .project_resolution import find_config
from .validation import InvalidArgument


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codebase-mcp", description="Semantic code search for AI coding agents.")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="index or re-index a repository")
    index.add_argument("path", type=Path)
    index.add_argument("--project", help="project name (default: .codebase-mcp/config.json, else the folder's name)")
    index.add_argument("--full", action="store_true", help="re-index every file, not only changed ones")
    index.add_argument("--watch", action="store_true",
                       help="then keep watching: re-index incrementally whenever files change, one status line "
                            "a run, until Ctrl-C")
    index.add_argument("--watch-debounce", type=float, default=DEFAULT_DEBOUNCE_SECONDS, metavar="SECONDS",
                       help="with --watch: run once files stop changing for this long "
                            f"(default {DEFAULT_DEBOUNCE_SECONDS:g})")
    index.set_defaults(handler=_index_command)

    search = commands.add_parser("search", help="search an indexed project")
    search.add_argument("query")
    search.add_argument("--project", help="project name (default: resolved from the current directory)")
    search.add_argument("--language")
    search.add_argument("--file-type", help="file extension without the dot, e.g. py")
    search.add_argument("--directory", help="repository-relative directory prefix")
    search.add_argument("--path-glob", help="path glob, e.g. 'src/**/*.py'")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--mode", choices=MODES, default="hybrid")
    search.add_argument("--json", action="store_true", help="print the search_code result object")
    search.set_defaults(handler=_search_command)

    grep = commands.add_parser("grep", help="every line of an indexed project matching a string or regex")
    grep.add_argument("pattern")
    grep.add_argument("-E", "--regex", action="store_true", help="PATTERN is a regular expression")
    grep.add_argument("-i", "--ignore-case", action="store_true", help="match case-insensitively")
    _add_filters(grep)
    grep.add_argument("--limit", type=int, default=grep_plane.DEFAULT_GREP_LIMIT,
                      help=f"matches to show, 1 to {grep_plane.MAX_GREP_LIMIT}")
    grep.add_argument("--json", action="store_true", help="print the grep_code result object")
    grep.set_defaults(handler=_grep_command)

    symbols = commands.add_parser("symbols", help="where a symbol is defined (find_symbol)")
    symbols.add_argument("name", help="a name or a qualified name such as Client.send")
    symbols.add_argument("--project", help="project name (default: resolved from the current directory)")
    symbols.add_argument("--kind", choices=symbol_plane.SYMBOL_KINDS)
    symbols.add_argument("--match", choices=symbol_plane.SYMBOL_MATCHES, default="exact")
    symbols.add_argument("--language")
    symbols.add_argument("--limit", type=int, default=symbol_plane.DEFAULT_SYMBOL_LIMIT)
    symbols.add_argument("--json", action="store_true", help="print the find_symbol result object")
    symbols.set_defaults(handler=_symbols_command)

    outline = commands.add_parser("outline", help="a file's definitions, nested (get_file_outline)")
    outline.add_argument("file_path", help="path relative to the repository root")
    outline.add_argument("--project", help="project name (default: resolved from the current directory)")
    outline.add_argument("--json", action="store_true", help="print the get_file_outline result object")
    outline.set_defaults(handler=_outline_command)

    read = commands.add_parser("read", help="lines of an indexed file, from the index (read_code)")
    read.add_argument("file_path", help="path relative to the repository root")
    read.add_argument("--project", help="project name (default: resolved from the current directory)")
    read.add_argument("--start", type=int, default=1, help="first line (1-based)")
    read.add_argument("--end", type=int, help=f"last line (at most {symbol_plane.MAX_READ_LINES} a call)")
    read.add_argument("--json", action="store_true", help="print the read_code result object")
    read.set_defaults(handler=_read_command)

    _add_delegated(commands, "serve", "start the MCP gateway", "codebase_gateway.serve_command")
    _add_delegated(commands, "operator", "start the Kubernetes operator", "codebase_operator.command")
    return parser


def _add_delegated(commands, name: str, help_text: str, module_name: str) -> None:
    """Subcommands whose options live with their component: its module (fastmcp, kopf) is imported
    only when the subcommand runs, so `grep`, `search` and the rest start without it. The
    component parses its own arguments (`codebase-mcp serve --help` prints them)."""
    sub = commands.add_parser(name, help=help_text, add_help=False)
    sub.set_defaults(handler=None, delegated=(name, module_name))


def _run_delegated(name: str, module_name: str, argv: list[str]) -> int:
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return _unavailable(name, exc)
    return module.main(argv)


def _unavailable(name: str, error: Exception) -> int:
    print(f"codebase-mcp {name} is not available in this installation: {error}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    use_offline_model()
    parser = build_parser()
    args, unparsed = parser.parse_known_args(argv)
    delegated = getattr(args, "delegated", None)
    if delegated is None and unparsed:
        parser.error(f"unrecognized arguments: {' '.join(unparsed)}")
    try:
        return _run_delegated(*delegated, unparsed) if delegated else args.handler(args)
    except (CliError, InvalidArgument, InvalidProjectId, IndexingError, SearchError, EmbeddingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def project_for(path: Path, explicit: str | None) -> str:
    """The explicit name, else the nearest `.codebase-mcp/config.json`'s, else the folder's name.

    Unlike the gateway's `default`, the folder's name keeps two repositories indexed
    from a terminal in two projects.
    """
    if explicit:
        return normalize_project_id(explicit)
    config = find_config(path)
    if config is not None:
        return config.project_id
    return normalize_project_id(path.name or "default")


def _index_command(args: argparse.Namespace) -> int:
    path = args.path.expanduser().resolve()
    if not path.is_dir():
        raise CliError(f"{args.path} is not a directory")
    project_id = project_for(path, args.project)
    if args.watch:
        try:
            settings = WatchSettings(debounce_seconds=args.watch_debounce,
                                     max_delay_seconds=max(args.watch_debounce, DEFAULT_MAX_DELAY_SECONDS))
        except ValueError as exc:
            raise CliError(f"--watch-debounce: {exc}") from None
        return asyncio.run(_index_and_watch(path, project_id, args.full, settings))
    summary = asyncio.run(_index(path, project_id, args.full))
    print(_summary_text(summary))
    return 0


async def _index_and_watch(path: Path, project_id: str, full: bool, settings: WatchSettings) -> int:
    """Index, then re-index on every settled change until interrupted or the folder goes away."""
    project = await ensure_project_database(admin_database_url(), project_id)
    runs = TerminalRuns(path, project_id, project.url, create_embedder(), sys.stdout)
    print(_summary_text(await runs.index(full=full)), flush=True)
    watch = RepositoryWatch(WatchTarget(project_id, path), runs, settings)
    watch.start()
    print(f"watching {path} for changes (Ctrl-C to stop)", flush=True)
    try:
        while watch.running:
            await asyncio.sleep(0.5)
    finally:
        await watch.stop()
        await runs.wait()
    print(f"error: {watch.status.message}", file=sys.stderr)
    return 1


class TerminalRuns:
    """The watch's runs in this process (watcher.RunStarter): one at a time, one line each."""

    def __init__(self, path: Path, project_id: str, url: str, embedder, out) -> None:
        self.path, self.project_id, self.url, self.embedder, self.out = path, project_id, url, embedder, out
        self._active: asyncio.Task | None = None
        self._count = 0

    async def index(self, *, full: bool = False) -> IndexSummary:
        return await index_repository(self.url, self.path, project_id=self.project_id, embedder=self.embedder,
                                      full=full, lock_wait_seconds=project_lock_wait_seconds())

    async def project_run_state(self, project_id: str) -> str | None:
        return "running" if self._active is not None and not self._active.done() else None

    async def start_watch_run(self, target: WatchTarget) -> str:
        self._count += 1
        self._active = asyncio.create_task(self._run())
        return f"run {self._count}"

    async def wait(self) -> None:
        if self._active is not None:
            await asyncio.gather(self._active, return_exceptions=True)

    async def _run(self) -> None:
        moment = time.strftime("%H:%M:%S")
        try:
            summary = await self.index()
        except (IndexingError, EmbeddingError, OSError) as exc:
            print(f"{moment} run {self._count} failed: {exc}", file=self.out, flush=True)
            return
        print(f"{moment} run {self._count}: {summary_sentence(summary.to_dict())}", file=self.out, flush=True)


async def _index(path: Path, project_id: str, full: bool) -> IndexSummary:
    project = await ensure_project_database(admin_database_url(), project_id)
    bar = ProgressBar(sys.stderr)
    try:
        return await index_repository(project.url, path, project_id=project_id,
                                      embedder=create_embedder(), full=full, on_progress=bar.update,
                                      lock_wait_seconds=project_lock_wait_seconds())
    finally:
        bar.close()


def _summary_text(s: IndexSummary) -> str:
    skipped = ", ".join(f"{reason} {n}" for reason, n in s.skipped_by_reason.items()) or "none"
    chunks_skipped = ", ".join(f"{reason} {n}" for reason, n in s.chunks_skipped_by_reason.items()) or "none"
    return (
        f"project {s.project_id} ({s.database_name}), {s.mode} index: {summary_sentence(s.to_dict())}\n"
        f"  files skipped: {skipped}\n"
        f"  chunks: {s.chunks_created} created, {s.chunks_deleted} deleted, "
        f"{s.chunks_skipped} left out ({chunks_skipped}); "
        f"embeddings: {s.embeddings_computed} computed, {s.embeddings_cached} from cache"
    )


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal."""

    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.active = stream.isatty()
        self.drawn = False

    def update(self, progress: Progress) -> None:
        if not self.active:
            return
        total = max(progress.files_total, 1)
        filled = int(self.WIDTH * progress.files_done / total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {progress.files_done}/{progress.files_total} files, "
                          f"{progress.chunks_done} chunks")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _search_command(args: argparse.Namespace) -> int:
    project_id = project_for(Path.cwd(), args.project)
    result = asyncio.run(_search(project_id, args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_results(result))
    return 0


async def _indexed_project(project_id: str) -> ProjectDatabase:
    admin_url = admin_database_url()
    if not await project_database_exists(admin_url, project_id):
        raise CliError(f"project {project_id!r} has not been indexed yet: "
                       f"run `codebase-mcp index PATH --project {project_id}` first")
    return await ensure_project_database(admin_url, project_id)  # a project from before has no reader yet


async def _search(project_id: str, args: argparse.Namespace) -> dict:
    project = await _indexed_project(project_id)
    return await search_code(
        project.reader_url, create_embedder(), args.query,
        project_id=project_id, database_name=project.database_name, language=args.language,
        file_type=args.file_type, directory=args.directory, path_glob=args.path_glob,
        limit=args.limit, mode=args.mode,
    )


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="project name (default: resolved from the current directory)")
    parser.add_argument("--language")
    parser.add_argument("--file-type", help="file extension without the dot, e.g. py")
    parser.add_argument("--directory", help="repository-relative directory prefix")
    parser.add_argument("--path-glob", help="path glob, e.g. 'src/**/*.py'")


def _print(result: dict, as_json: bool, text) -> int:
    print(json.dumps(result, indent=2) if as_json else text(result))
    return 0


def _navigation(args: argparse.Namespace, call) -> dict:
    """Run `call(project, ids)` on the project resolved from --project or the current directory."""
    project_id = project_for(Path.cwd(), args.project)

    async def run() -> dict:
        project = await _indexed_project(project_id)
        return await call(project.reader_url, {"project_id": project_id, "database_name": project.database_name})

    return asyncio.run(run())


def _grep_command(args: argparse.Namespace) -> int:
    result = _navigation(args, lambda url, ids: grep_plane.grep_code(
        url, args.pattern, regex=args.regex, case_sensitive=not args.ignore_case, language=args.language,
        file_type=args.file_type, directory=args.directory, path_glob=args.path_glob, limit=args.limit, **ids))
    return _print(result, args.json, format_grep)


def _symbols_command(args: argparse.Namespace) -> int:
    result = _navigation(args, lambda url, ids: symbol_plane.find_symbol(
        url, args.name, kind=args.kind, match=args.match, language=args.language, limit=args.limit, **ids))
    return _print(result, args.json, format_symbols)


def _outline_command(args: argparse.Namespace) -> int:
    result = _navigation(args, lambda url, ids: symbol_plane.get_file_outline(url, args.file_path, **ids))
    return _print(result, args.json, format_outline)


def _read_command(args: argparse.Namespace) -> int:
    result = _navigation(args, lambda url, ids: symbol_plane.read_code(
        url, args.file_path, start_line=args.start, end_line=args.end, **ids))
    return _print(result, args.json, format_read)


def format_grep(result: dict) -> str:
    """`path:line:column: text  [symbol]` a match, then how many there are in all."""
    lines = [f"{m['file_path']}:{m['line']}:{m['column']}: {m['line_text']}"
             + (f"  [{m['symbol']}]" if m["symbol"] else "") for m in result["matches"]]
    shown = len(result["matches"])
    more = f" (showing {shown}; raise --limit for more)" if result["truncated"] else ""
    return "\n".join([*lines, f"{result['total_count']} matching lines{more}"])


def format_symbols(result: dict) -> str:
    if not result["symbols"]:
        return "no definitions"
    return "\n".join(f"{s['file_path']}:{s['start_line']}-{s['end_line']}  {s['kind']}  "
                     f"{s['qualified_name']}  {s['signature']}" for s in result["symbols"])


def format_outline(result: dict) -> str:
    rows: list[str] = [f"{result['file_path']} ({result['language']}, {result['line_count']} lines)"]

    def walk(symbols: list[dict], depth: int) -> None:
        for s in symbols:
            rows.append(f"{'  ' * (depth + 1)}{s['start_line']}-{s['end_line']}  {s['kind']}  {s['signature']}")
            walk(s["children"], depth + 1)

    walk(result["symbols"], 0)
    return "\n".join(rows)


def format_read(result: dict) -> str:
    width = len(str(result["end_line"]))
    lines = [f"{n:>{width}}  {text}" for n, text in
             enumerate(result["content"].split("\n"), start=result["start_line"])]
    if result["truncated"]:
        lines.append(f"... more from line {result['next_start_line']} (--start {result['next_start_line']})")
    return "\n".join(lines)


def format_results(result: dict) -> str:
    """One result a line: `path:start-end  score  symbol`."""
    if not result["results"]:
        return "no results"
    return "\n".join(result_line(r) for r in result["results"])


def result_line(result: dict) -> str:
    return (f"{result['file_path']}:{result['start_line']}-{result['end_line']}  "
            f"{result['similarity_score']:.3f}  {result['symbol'] or '-'}")


if __name__ == "__main__":
    sys.exit(main())
