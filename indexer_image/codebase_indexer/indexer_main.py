"""`codebase-indexer`: one indexing run, as a Kubernetes Job or a local process.

Configured by flags or the environment (flags win). The last line on stdout,
and the termination message file when given, is a compact JSON result:
`{"ok": true, "summary": {...}}` or `{"ok": false, "reason": ..., "message": ...}`; a shard of a
run of parallelism N adds `"shard": {"index": i, "count": N}` (its summary is the run's when it
finished last, else its own part, with `"partial": true`).
Exit codes: 0 succeeded, 1 failed, 2 bad arguments, 143 cancelled (SIGTERM).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from . import credentials
from .embedding import EmbeddingError, create_embedder
from .git_refs import InvalidGitRef, check_git_ref
from .log_redaction import redact_logs
from .pipeline import IndexingCancelled, IndexingError, index_repository
from .postgres import redact
from .scanning import ScanOptions
from .settings import LOCK_WAIT_ENV, project_lock_wait_seconds
from .shards import SHARD_COUNT_ENV, SHARD_INDEX_ENV, InvalidShard, Shard, shard_from_env

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 143
TERMINATION_MESSAGE_LIMIT = 4096


class GitCloneError(IndexingError):
    reason = "GitCloneFailed"


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="codebase-indexer", description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=env("CODEBASE_DATABASE_URL"),
                        help="the project database URL (env CODEBASE_DATABASE_URL)")
    parser.add_argument("--project", default=env("CODEBASE_PROJECT_ID"),
                        help="the project id (env CODEBASE_PROJECT_ID)")
    parser.add_argument("--source", default=env("CODEBASE_SOURCE_PATH"),
                        help="repository directory (env CODEBASE_SOURCE_PATH)")
    parser.add_argument("--git-url", default=env("CODEBASE_GIT_URL"),
                        help="clone this repository instead of --source (env CODEBASE_GIT_URL)")
    parser.add_argument("--git-ref", default=env("CODEBASE_GIT_REF"),
                        help="branch or tag to clone (env CODEBASE_GIT_REF)")
    parser.add_argument("--work-dir", default=env("CODEBASE_WORK_DIR"),
                        help="where a git clone goes (env CODEBASE_WORK_DIR; default a temp dir)")
    parser.add_argument("--mode", choices=("full", "incremental"),
                        default=env("CODEBASE_INDEX_MODE", "incremental").lower())
    parser.add_argument("--run-id", default=env("CODEBASE_RUN_ID"))
    parser.add_argument("--termination-message-path", default=env("CODEBASE_TERMINATION_MESSAGE_PATH"))
    parser.add_argument("--max-file-size", type=int,
                        default=int(env("CODEBASE_MAX_FILE_SIZE", str(ScanOptions.max_file_size))))
    parser.add_argument("--max-chunks-per-file", type=int,
                        default=int(env("CODEBASE_MAX_CHUNKS_PER_FILE", str(ScanOptions.max_chunks_per_file))),
                        help="a file making more chunks is skipped (too_many_chunks)")
    parser.add_argument("--max-chunks-per-run", type=int,
                        default=int(env("CODEBASE_MAX_CHUNKS_PER_RUN", str(ScanOptions.max_chunks_per_run))),
                        help="files past this many new chunks in one run are skipped (too_many_chunks); "
                             "the next run picks them up")
    parser.add_argument("--lock-wait-seconds", type=float, default=None,
                        help="how long to wait while another run indexes the project before failing "
                             f"(env {LOCK_WAIT_ENV}, default 60)")
    parser.add_argument("--shard-index", default=None,
                        help=f"this process's shard, 0-based (env {SHARD_INDEX_ENV}, which Kubernetes sets "
                             "in an Indexed Job; default 0)")
    parser.add_argument("--shard-count", default=None,
                        help=f"how many shards the run has (env {SHARD_COUNT_ENV}; default 1: the whole "
                             "repository)")
    parser.add_argument("--include", default=env("CODEBASE_INCLUDE", ""),
                        help="comma-separated globs; only matching files are indexed")
    parser.add_argument("--exclude", default=env("CODEBASE_EXCLUDE", ""),
                        help="comma-separated globs to leave out")
    parser.add_argument("--include-secrets", default=env("CODEBASE_INCLUDE_SECRETS", ""),
                        help="comma-separated globs of secret files (.env, keys, ...) to index on purpose; "
                             "added to the repository's .codebase-mcp/config.json indexing.include_secrets")
    return parser


def main(argv: list[str] | None = None) -> int:
    redact_logs()
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _usage_problem(args)
    if problem:
        _emit(args, {"ok": False, "reason": "InvalidArguments", "message": problem})
        return EXIT_USAGE
    shard = _shard(args)
    result, code = asyncio.run(_run(args, shard))
    if not shard.whole:  # which shard spoke: the operator names a failed one
        result["shard"] = {"index": shard.index, "count": shard.count}
    _emit(args, result)
    return code


def _usage_problem(args: argparse.Namespace) -> str | None:
    if not args.database_url:
        return "no database: give --database-url or CODEBASE_DATABASE_URL"
    if not args.project:
        return "no project: give --project or CODEBASE_PROJECT_ID"
    if bool(args.source) == bool(args.git_url):
        return "give exactly one source: --source (CODEBASE_SOURCE_PATH) or --git-url (CODEBASE_GIT_URL)"
    if args.git_ref:
        try:
            check_git_ref(args.git_ref)
        except InvalidGitRef as exc:
            return f"--git-ref (CODEBASE_GIT_REF): {exc}"
    try:
        _shard(args)
    except InvalidShard as exc:
        return f"{exc}; give --shard-index/--shard-count or {SHARD_INDEX_ENV}/{SHARD_COUNT_ENV} in range"
    return None


def _shard(args: argparse.Namespace) -> Shard:
    return shard_from_env(index=args.shard_index, count=args.shard_count)


async def _run(args: argparse.Namespace, shard: Shard) -> tuple[dict, int]:
    cancelled = _cancel_on_sigterm()
    try:
        source = _cloned(args) if args.git_url else Path(args.source)
        summary = await index_repository(
            args.database_url, source, project_id=args.project,
            embedder=create_embedder(), full=args.mode == "full",
            scan_options=_scan_options(args), run_id=args.run_id,
            on_progress=None, should_cancel=cancelled.is_set, lock_wait_seconds=_lock_wait(args),
            shard=shard,
        )
    except IndexingCancelled as exc:
        return {"ok": False, "reason": exc.reason, "message": str(exc)}, EXIT_CANCELLED
    except IndexingError as exc:
        return {"ok": False, "reason": exc.reason, "message": str(exc)}, EXIT_FAILED
    except EmbeddingError as exc:
        return {"ok": False, "reason": "EmbeddingError", "message": str(exc)}, EXIT_FAILED
    except (OSError, asyncio.TimeoutError) as exc:
        return {"ok": False, "reason": "DatabaseError",
                "message": f"{redact(args.database_url)}: {exc}"}, EXIT_FAILED
    except Exception as exc:  # anything else still ends with a result a human can read
        return {"ok": False, "reason": _reason_of(exc), "message": str(exc)}, EXIT_FAILED
    return {"ok": True, "summary": summary.to_dict()}, EXIT_OK


def _lock_wait(args: argparse.Namespace) -> float:
    return args.lock_wait_seconds if args.lock_wait_seconds is not None else project_lock_wait_seconds()


def _cancel_on_sigterm() -> asyncio.Event:
    """SIGTERM (Job deletion, cancel) stops the run between batches, recorded as cancelled."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event


def _reason_of(exc: Exception) -> str:
    module = type(exc).__module__
    return "DatabaseError" if module.startswith("asyncpg") else "Failed"


def _scan_options(args: argparse.Namespace) -> ScanOptions:
    def globs(text: str) -> tuple[str, ...]:
        return tuple(g.strip() for g in text.split(",") if g.strip())

    return ScanOptions(max_file_size=args.max_file_size, include=globs(args.include),
                       exclude=globs(args.exclude), include_secrets=globs(args.include_secrets),
                       max_chunks_per_file=args.max_chunks_per_file, max_chunks_per_run=args.max_chunks_per_run)


_ASKPASS_SCRIPT = """#!/bin/sh
# git asks for credentials through this script; they come from the environment, never argv.
case "$1" in
  Username*) printf '%s\\n' "$CODEBASE_GIT_USERNAME" ;;
  *) printf '%s\\n' "$CODEBASE_GIT_PASSWORD" ;;
esac
"""


def _cloned(args: argparse.Namespace) -> Path:
    """Shallow-clone the repository; arguments go to git as a list, never through a shell."""
    work = Path(tempfile.mkdtemp(prefix="clone-", dir=args.work_dir or None))
    target = work / "repo"
    command = ["git", "clone", "--depth", "1", "--quiet"]
    if args.git_ref:
        command += ["--branch", args.git_ref]
    command += ["--", args.git_url, str(target)]
    result = subprocess.run(command, capture_output=True, text=True, env=_git_environment(work))
    if result.returncode != 0:
        raise GitCloneError(f"git clone of {args.git_url} failed: {result.stderr.strip()[-500:]}")
    return target


def _git_environment(work: Path) -> dict[str, str]:
    """git's environment: never prompt; answer credential prompts from CODEBASE_GIT_USERNAME/PASSWORD."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if os.environ.get("CODEBASE_GIT_PASSWORD"):
        askpass = work / "askpass.sh"
        askpass.write_text(_ASKPASS_SCRIPT)
        askpass.chmod(0o700)
        env["GIT_ASKPASS"] = str(askpass)
    return env


def _emit(args: argparse.Namespace, result: dict) -> None:
    if "message" in result:  # it leaves the process: stdout, the termination message, then status
        result = {**result, "message": credentials.redact(str(result["message"]))}
    line = json.dumps(result, separators=(",", ":"), sort_keys=True)
    print(line, flush=True)
    if args.termination_message_path:
        try:
            Path(args.termination_message_path).write_text(_fit(result))
        except OSError as exc:
            print(f"cannot write termination message: {exc}", file=sys.stderr)


def _fit(result: dict) -> str:
    """The result within Kubernetes' 4 KiB termination message limit."""
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
        return text
    trimmed = dict(result)
    if "message" in trimmed:
        trimmed["message"] = trimmed["message"][:3000] + "…"
    if "summary" in trimmed:
        trimmed["summary"] = {k: v for k, v in trimmed["summary"].items() if k != "skipped_by_reason"}
    return json.dumps(trimmed, separators=(",", ":"), sort_keys=True)[:TERMINATION_MESSAGE_LIMIT]


if __name__ == "__main__":
    sys.exit(main())
