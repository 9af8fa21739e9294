"""`codebase-indexer`: one indexing run, as a Kubernetes Job or a local process.

Configured by flags or the environment (flags win). The last line on stdout,
and the termination message file when given, is a compact JSON result:
`{"ok": true, "summary": {...}}` (a git source adds `"commit"`, the commit it indexed) or
`{"ok": false, "reason": ..., "message": ...}`; a shard of a run of parallelism N adds
`"shard": {"index": i, "count": N}` (its summary is the run's when it finished last, else its own
part, with `"partial": true`).
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
from .configuration import InvalidSetting, add_arguments, environment_names, load
from .embedding import Embedder, EmbeddingError, create_embedder
from .git_access import COMMIT, git_environment
from .git_refs import InvalidGitRef, check_git_ref
from .log_redaction import redact_logs
from .pipeline import IndexingCancelled, IndexingError, index_repository
from .postgres import redact
from .scanning import ScanOptions
from .settings import EmbeddingSettings, IndexerSettings
from .shards import InvalidShard, Shard, shard_from_env

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 143
TERMINATION_MESSAGE_LIMIT = 4096


class GitCloneError(IndexingError):
    reason = "GitCloneFailed"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codebase-indexer", description=(__doc__ or "").split("\n")[0])
    add_arguments(parser, IndexerSettings)
    return parser


def main(argv: list[str] | None = None) -> int:
    redact_logs()
    args = build_parser().parse_args(argv)
    problem: str | None
    try:
        settings = load(IndexerSettings, args)
    except InvalidSetting as exc:
        settings, problem = _partial_settings(args), str(exc)
    else:
        problem = _usage_problem(settings)
    if problem:
        _emit(settings, {"ok": False, "reason": "InvalidArguments", "message": problem})
        return EXIT_USAGE
    shard = _shard(settings)
    result, code = asyncio.run(_run(settings))
    if not shard.whole:  # which shard spoke: the operator names a failed one
        result["shard"] = {"index": shard.index, "count": shard.count}
    _emit(settings, result)
    return code


def _partial_settings(args: argparse.Namespace) -> IndexerSettings:
    """Settings good enough to report a usage error: where the termination message goes."""
    path = getattr(args, "termination_message_path", None)
    if path is None:
        try:
            path = load(IndexerSettings, environ={
                k: v for k, v in os.environ.items() if k.endswith("TERMINATION_MESSAGE_PATH")}
            ).termination_message_path
        except InvalidSetting:
            path = None
    return IndexerSettings(termination_message_path=path)


def _usage_problem(settings: IndexerSettings) -> str | None:
    if not settings.database_url:
        return "no database: give --database-url or CODEBASE_MCP_DATABASE_URL"
    if not settings.project_id:
        return "no project: give --project or CODEBASE_MCP_PROJECT_ID"
    if bool(settings.source_path) == bool(settings.git_url):
        return ("give exactly one source: --source (CODEBASE_MCP_SOURCE_PATH) "
                "or --git-url (CODEBASE_MCP_GIT_URL)")
    if settings.git_ref:
        try:
            check_git_ref(settings.git_ref)
        except InvalidGitRef as exc:
            return f"--git-ref (CODEBASE_MCP_GIT_REF): {exc}"
    if settings.git_commit is not None and not (settings.git_url and COMMIT.fullmatch(settings.git_commit)):
        return ("--git-commit (CODEBASE_MCP_GIT_COMMIT) must be a full commit id (40 or 64 lower-case hex "
                "digits) and goes with --git-url")
    try:
        _shard(settings)
    except InvalidShard as exc:
        return f"{exc}; give --shard-index/--shard-count in range"
    return None


def _shard(settings: IndexerSettings) -> Shard:
    """--shard-index, else Kubernetes' JOB_COMPLETION_INDEX; --shard-count (CODEBASE_MCP_SHARD_COUNT)."""
    index = None if settings.shard_index is None else str(settings.shard_index)
    return shard_from_env(index=index, count=str(settings.shard_count))


async def _run(settings: IndexerSettings, embedder: Embedder | None = None,
               cancelled: asyncio.Event | None = None) -> tuple[dict, int]:
    """One run (one shard of it, when the settings say so); `embedder` and `cancelled` are given by a
    long-lived worker (worker.py)."""
    cancelled = cancelled or _cancel_on_sigterm()
    shard = _shard(settings)
    database_url = settings.database_url or ""
    try:
        source, commit = _cloned(settings) if settings.git_url else (Path(settings.source_path or ""), None)
        summary = await index_repository(
            database_url, source, project_id=settings.project_id or "",
            embedder=embedder or create_embedder(settings.embedding), full=settings.index_mode == "full",
            scan_options=_scan_options(settings), run_id=settings.run_id,
            on_progress=None, should_cancel=cancelled.is_set, lock_wait_seconds=settings.lock_wait_seconds,
            shard=shard,
        )
    except IndexingCancelled as exc:
        return {"ok": False, "reason": exc.reason, "message": str(exc)}, EXIT_CANCELLED
    except IndexingError as exc:
        return {"ok": False, "reason": exc.reason, "message": str(exc)}, EXIT_FAILED
    except EmbeddingError as exc:
        return {"ok": False, "reason": "EmbeddingError", "message": str(exc)}, EXIT_FAILED
    except (TimeoutError, OSError) as exc:
        return {"ok": False, "reason": "DatabaseError",
                "message": f"{redact(database_url)}: {exc}"}, EXIT_FAILED
    except Exception as exc:  # anything else still ends with a result a human can read
        return {"ok": False, "reason": _reason_of(exc), "message": str(exc)}, EXIT_FAILED
    result: dict = {"ok": True, "summary": summary.to_dict()}
    if commit:
        result["commit"] = commit
    return result, EXIT_OK


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


def _scan_options(settings: IndexerSettings) -> ScanOptions:
    return ScanOptions(max_file_size=settings.max_file_size, include=settings.include,
                       exclude=settings.exclude, include_secrets=settings.include_secrets,
                       max_chunks_per_file=settings.max_chunks_per_file,
                       max_chunks_per_run=settings.max_chunks_per_run)


def _cloned(settings: IndexerSettings) -> tuple[Path, str | None]:
    """Shallow-clone the repository (at the pinned commit, if any) and say which commit it holds;
    arguments go to git as a list, never through a shell."""
    work = Path(tempfile.mkdtemp(prefix="clone-", dir=settings.work_dir or None))
    target = work / "repo"
    command = ["git", "clone", "--depth", "1", "--quiet"]
    if settings.git_ref:
        command += ["--branch", settings.git_ref]
    command += ["--", settings.git_url or "", str(target)]
    env = _git_environment(work, settings)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise GitCloneError(f"git clone of {settings.git_url} failed: {result.stderr.strip()[-500:]}")
    commit = _head_commit(target)
    if settings.git_commit and commit != settings.git_commit:
        _check_out_commit(target, settings.git_commit, env)
        commit = settings.git_commit
    return target, commit


def _check_out_commit(checkout: Path, commit: str, env: dict[str, str]) -> None:
    """The ref moved after the run pinned `commit` (the other shards index that one): fetch it by id."""
    for command in (["git", "-C", str(checkout), "fetch", "--quiet", "--depth", "1", "origin", commit],
                    ["git", "-C", str(checkout), "checkout", "--quiet", "--detach", commit]):
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise GitCloneError(f"the ref moved past commit {commit}, which this run indexes, and "
                                f"fetching that commit failed: {result.stderr.strip()[-500:]}; start the run again")


def _head_commit(checkout: Path) -> str | None:
    """The commit a clone checked out (40 or 64 hex digits), or None when git cannot say."""
    result = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--verify", "HEAD"],
                            capture_output=True, text=True, env={"PATH": os.environ.get("PATH", ""),
                                                                  "GIT_TERMINAL_PROMPT": "0"})
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and COMMIT.fullmatch(commit) else None


def _git_environment(work: Path, settings: IndexerSettings) -> dict[str, str]:
    """git's environment: never prompt; answer credential prompts through GIT_ASKPASS.

    The indexer's own secrets (the database URL, the embedding API key) stay out of it; git gets
    the repository credentials only, under names of its askpass script."""
    hidden = environment_names(IndexerSettings, secret=True) | environment_names(EmbeddingSettings, secret=True)
    return git_environment(work, username=settings.git_username, password=settings.git_password, hidden=hidden)


def _emit(settings: IndexerSettings, result: dict) -> None:
    if "message" in result:  # it leaves the process: stdout, the termination message, then status
        result = {**result, "message": credentials.redact(str(result["message"]))}
    line = json.dumps(result, separators=(",", ":"), sort_keys=True)
    print(line, flush=True)
    if settings.termination_message_path:
        try:
            Path(settings.termination_message_path).write_text(_fit(result))
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
