"""Run the indexer (`python -m codebase_indexer`) as child processes, exactly as a Job's pods would:
one, or one per shard of a run of parallelism N (with JOB_COMPLETION_INDEX and CODEBASE_MCP_SHARD_COUNT
set as Kubernetes sets them in an Indexed Job)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from codebase_indexer.configuration import as_environment, environment_names, variable
from codebase_indexer.settings import EmbeddingSettings, IndexerSettings, use_offline_model
from codebase_indexer.shards import SHARD_INDEX_ENV, WHOLE, Shard

CANCELLED_EXIT_CODES = (143, -signal.SIGTERM)
_LOG_TAIL_CHARS = 2_000
_SIGNALS = {int(sig) for sig in signal.Signals}


@dataclass(frozen=True)
class IndexerOutcome:
    exit_code: int
    result: dict | None  # the indexer's last stdout line: {"ok": ..., "summary" | "reason", "message"}
    log_tail: str
    shard: str = ""  # "shard i of N" when the run had several

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and bool(self.result and self.result.get("ok"))

    @property
    def was_terminated(self) -> bool:
        return self.exit_code in CANCELLED_EXIT_CODES

    def failure_message(self) -> str:
        message = self._failure()
        return f"{self.shard}: {message}" if self.shard else message

    def _failure(self) -> str:
        if self.exit_code < 0 and not self.was_terminated:
            name = signal.Signals(-self.exit_code).name if -self.exit_code in _SIGNALS else -self.exit_code
            return (f"the indexer process was killed by signal {name} before it finished; "
                    "start the indexing again (it resumes incrementally)")
        if self.result and not self.result.get("ok"):
            reason, message = self.result.get("reason"), self.result.get("message")
            return f"{reason}: {message}" if reason else str(message)
        tail = self.log_tail.strip().splitlines()
        last = tail[-1] if tail else "no output"
        return f"the indexer exited with code {self.exit_code}: {last}"


# What an indexer child inherits from the gateway: nothing else. The gateway's own secrets
# (CODEBASE_MCP_TOKEN, the admin database URL, cloud credentials...) must not reach it.
INHERITED_VARIABLES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "PYTHONPATH", "VIRTUAL_ENV", "XDG_CACHE_HOME", "TORCH_HOME", "SENTENCE_TRANSFORMERS_HOME",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS",
})
INHERITED_PREFIXES = ("LC_", "HF_", "TRANSFORMERS_")
# The indexer settings a user may give the gateway's environment for every local run; the rest
# (database, project, source, mode, run id) belong to one run and come from the gateway alone.
INHERITED_SETTINGS = ("max_file_size", "max_chunks_per_file", "max_chunks_per_run", "lock_wait_seconds",
                      "include", "exclude", "include_secrets")


def _inherited(name: str) -> bool:
    return (name in INHERITED_VARIABLES or name.startswith(INHERITED_PREFIXES)
            or name in _INHERITED_SETTING_NAMES)


_INHERITED_SETTING_NAMES = frozenset(
    {name for field in INHERITED_SETTINGS for name in environment_names(IndexerSettings, only=(field,))}
    | environment_names(EmbeddingSettings))


def indexer_environment(*, database_url: str, project_id: str, source: Path, mode: str,
                        run_id: str, shard: Shard = WHOLE) -> dict[str, str]:
    """The allow-listed part of the gateway's environment plus the run's own settings."""
    env = {name: value for name, value in os.environ.items() if _inherited(name)}
    env.update(as_environment(IndexerSettings, database_url=database_url, project_id=project_id,
                              source_path=str(source), index_mode=mode, run_id=run_id, shard_count=shard.count))
    env[SHARD_INDEX_ENV] = str(shard.index)  # the name Kubernetes gives it in an Indexed Job's pods
    use_offline_model(env)
    env.update(TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


async def run_indexer(env: dict[str, str], log_path: Path,
                      on_started: Callable[[asyncio.subprocess.Process], Awaitable[None]]) -> IndexerOutcome:
    """Start the indexer, report its process, wait for it; stderr and stdout go to `log_path`."""
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "codebase_indexer",
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
            preexec_fn=_terminate_with_parent,
        )
        await on_started(process)
        last_json = None
        assert process.stdout is not None
        async for line in process.stdout:
            log.write(line)
            log.flush()
            text = line.decode("utf-8", "replace").strip()
            if text.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    last_json = json.loads(text)
        exit_code = await process.wait()
    return IndexerOutcome(exit_code, last_json if isinstance(last_json, dict) else None, _tail(log_path))


async def run_indexer_shards(envs: list[dict[str, str]], log_paths: list[Path],
                             on_started: Callable[[asyncio.subprocess.Process], Awaitable[None]]) -> IndexerOutcome:
    """Run one indexer per shard at once; the run's outcome. A shard that fails stops the others
    (as `maxFailedIndexes: 0` does on Kubernetes) and its failure is the run's, naming the shard."""
    processes: list[asyncio.subprocess.Process] = []
    failures: list[IndexerOutcome] = []

    async def started(process: asyncio.subprocess.Process) -> None:
        processes.append(process)
        await on_started(process)

    async def shard(index: int) -> IndexerOutcome:
        outcome = await run_indexer(envs[index], log_paths[index], started)
        if len(envs) > 1:
            outcome = replace(outcome, shard=f"shard {index} of {len(envs)}")
        if not outcome.succeeded:
            failures.append(outcome)
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
        return outcome

    outcomes = await asyncio.gather(*(shard(i) for i in range(len(envs))))
    if failures:
        return failures[0]  # the first to fail; the others were stopped because of it
    finished = [o for o in outcomes if not ((o.result or {}).get("summary") or {}).get("partial")]
    return finished[-1] if finished else outcomes[-1]


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - _LOG_TAIL_CHARS))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _terminate_with_parent() -> None:
    """Linux: SIGTERM the indexer if the gateway dies, so no run outlives its supervisor."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


# The per-run settings a warm indexer receives on stdin (worker.py REQUEST_KEYS), by variable.
_RUN_VARIABLES = {variable(IndexerSettings, field): key for field, key in (
    ("database_url", "database_url"), ("project_id", "project_id"), ("source_path", "source"),
    ("run_id", "run_id"), ("index_mode", "mode"))}


class WarmIndexer:
    """One long-lived indexer child (`codebase_indexer.worker`) whose model stays loaded: the
    watch's runs go there, one at a time. It is started on first use, with the same allow-listed
    environment as every indexer child, and started again after it ends (cancel, crash)."""

    def __init__(self, log_path: Path) -> None:
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def run(self, env: dict[str, str], log_path: Path,
                  on_started: Callable[[asyncio.subprocess.Process], Awaitable[None]]) -> IndexerOutcome:
        """The same contract as run_indexer; the run's own log gets the result line."""
        async with self._lock:
            process = await self._started(env)
            await on_started(process)
            request = {key: env[name] for name, key in _RUN_VARIABLES.items()}
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request).encode() + b"\n")
                await process.stdin.drain()
                line = await process.stdout.readline()
            except (BrokenPipeError, ConnectionResetError):
                line = b""
            result = _result(line)
            _append(log_path, line)
            if result is None or result.get("reason") == "Cancelled":  # the worker ends: its code says how
                self._process = None
                return IndexerOutcome(await process.wait(), result, _tail(self._log_path))
            return IndexerOutcome(0 if result.get("ok") else 1, result, "")

    async def prepare(self, env: dict[str, str]) -> None:
        """Start the worker now (it loads its model at once), so the first save is as quick as the rest."""
        async with self._lock:
            await self._started(env)

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()  # end of input: the worker exits
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _started(self, env: dict[str, str]) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        self._log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        worker_env = {name: value for name, value in env.items() if name not in _RUN_VARIABLES}
        with self._log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "codebase_indexer.worker",
                env=worker_env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                preexec_fn=_terminate_with_parent,
            )
        return self._process


def _result(line: bytes) -> dict | None:
    try:
        result = json.loads(line.decode("utf-8", "replace"))
    except json.JSONDecodeError:
        return None
    return result if isinstance(result, dict) else None


def _append(path: Path, line: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("ab") as log:
        log.write(line)
