"""Keep indexed repositories fresh while the gateway runs.

One asyncio task per repository watches it with watchfiles (inotify, FSEvents or
ReadDirectoryChangesW: no polling, so an idle watch costs no CPU), drops the changes the
scanner would ignore, waits until the changes settle, and asks the control plane for one
incremental run. A burst (`git checkout`, a formatter over the tree) becomes one run; changes
made while a run is active become one follow-up run once it finishes; a project that already
has a queued run needs none (that run has not scanned yet, so it sees the changes).

A watch that cannot go on (its folder was deleted or cannot be watched) ends in the `failed`
state with a message and is not restarted: indexing the repository again starts a new watch.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from codebase_indexer.configuration import InvalidSetting, load
from codebase_indexer.scanning import ChangeFilter, ScanOptions
from codebase_indexer.settings import IndexerSettings

from ..settings import DEFAULT_DEBOUNCE_SECONDS

log = logging.getLogger(__name__)

# Changes that never stop (a build writing into a non-ignored folder) still get a run this often.
DEFAULT_MAX_DELAY_SECONDS = 10.0
# Each watch holds a thread of the event loop's worker pool and inotify watches: a ceiling.
DEFAULT_MAX_REPOSITORIES = 32
_RUN_POLL_SECONDS = 0.25
_WATCH_STEP_MS = 50


@dataclass(frozen=True)
class WatchSettings:
    enabled: bool = True
    debounce_seconds: float = DEFAULT_DEBOUNCE_SECONDS
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS
    max_repositories: int = DEFAULT_MAX_REPOSITORIES

    def __post_init__(self) -> None:
        if not 0 < self.debounce_seconds <= 60:
            raise ValueError(f"watch debounce must be more than 0 and at most 60 seconds, got {self.debounce_seconds}")
        if self.max_delay_seconds < self.debounce_seconds:
            raise ValueError("the watch's longest delay must be at least its debounce")
        if self.max_repositories < 1:
            raise ValueError(f"max watched repositories must be at least 1, got {self.max_repositories}")


@dataclass(frozen=True)
class WatchTarget:
    project_id: str
    repo_path: Path


@dataclass
class WatchStatus:
    """What `list_projects` shows of a project's watch."""

    state: str  # watching | changes_pending | indexing | failed | off
    message: str
    repo_path: str | None = None
    last_change_at: str | None = None
    last_job_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class RunStarter(Protocol):
    """What a watch needs from its control plane."""

    async def project_run_state(self, project_id: str) -> str | None:
        """'running' when a run of the project is active, else 'pending' when one is queued, else None."""

    async def start_watch_run(self, target: WatchTarget) -> str:
        """Queue an incremental run of the target; return its job id."""


def scan_options_from_env() -> ScanOptions:
    """The include/exclude globs the indexer children read from the same environment."""
    try:
        settings = load(IndexerSettings)
    except InvalidSetting:  # the runs report it; the watch then filters less, never more
        return ScanOptions()
    return ScanOptions(include=settings.include, exclude=settings.exclude)


@dataclass
class RepositoryWatch:
    target: WatchTarget
    starter: RunStarter
    settings: WatchSettings
    scan_options: ScanOptions = field(default_factory=scan_options_from_env)
    status: WatchStatus = field(init=False)
    _changes: int = 0  # relevant change batches seen so far
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self.status = WatchStatus("watching", "watching for changes", repo_path=str(self.target.repo_path))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"codebase-mcp-watch-{self.target.project_id}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        runs = asyncio.create_task(self._trigger_runs(), name=f"codebase-mcp-watch-runs-{self.target.project_id}")
        try:
            await self._watch()
        finally:
            runs.cancel()
            await asyncio.gather(runs, return_exceptions=True)

    async def _watch(self) -> None:
        from watchfiles import awatch

        root = self.target.repo_path
        if not root.is_dir():
            self._fail(f"the repository folder {root} no longer exists; watching stopped "
                       "(index it again to watch it again)")
            return
        try:
            async for changes in awatch(root, watch_filter=None, debounce=1600, step=_WATCH_STEP_MS,
                                        stop_event=self._stop, recursive=True, ignore_permission_denied=True):
                if not root.is_dir():
                    self._fail(f"the repository folder {root} was deleted or moved; watching stopped "
                               "(index it again to watch it again)")
                    return
                if self._relevant(path for _, path in changes):
                    self._changes += 1
                    self.status.last_change_at = datetime.now(UTC).isoformat()
                    self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an OS limit (inotify watches), a permission: say so, do not retry
            log.warning("watching %s stopped: %s", root, exc)
            self._fail(f"cannot watch {root}: {exc}; watching stopped (fix it, then index the repository again)")

    def _relevant(self, paths: Iterable[str]) -> bool:
        try:
            change_filter = ChangeFilter(self.target.repo_path, self.scan_options)
        except OSError:
            return True  # the folder is going away: the next check says so
        return any(not change_filter.ignores(path) for path in paths)

    async def _trigger_runs(self) -> None:
        while True:
            await self._changed.wait()
            self.status.state, self.status.message = "changes_pending", "files changed; waiting for them to settle"
            await self._settled()
            await self._until_no_active_run()
            self._changed.clear()
            try:
                if await self.starter.project_run_state(self.target.project_id) == "pending":
                    continue  # a queued run has not scanned yet: it picks these changes up
                job_id = await self.starter.start_watch_run(self.target)
            except Exception as exc:  # the database is away: try again on the next change
                log.warning("watch of %s could not start a run: %s", self.target.project_id, exc)
                self.status.state, self.status.message = "watching", f"could not start a run: {exc}"
                continue
            self.status.last_job_id = job_id
            self.status.state, self.status.message = "indexing", f"re-indexing the changes as {job_id}"
            await self._until_no_active_run()
            if not self._changed.is_set():
                self.status.state, self.status.message = "watching", "watching for changes"

    async def _settled(self) -> None:
        """Return once no change came for the debounce time, or after the longest delay."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_delay_seconds
        while True:
            seen = self._changes
            await asyncio.sleep(min(self.settings.debounce_seconds, max(0.0, deadline - loop.time())))
            if self._changes == seen or loop.time() >= deadline:
                return

    async def _until_no_active_run(self) -> None:
        while True:
            try:
                if await self.starter.project_run_state(self.target.project_id) != "running":
                    return
            except Exception as exc:
                log.debug("watch of %s: run state unknown: %s", self.target.project_id, exc)
            await asyncio.sleep(_RUN_POLL_SECONDS)

    def _fail(self, message: str) -> None:
        self.status.state, self.status.message = "failed", message


class Watcher:
    """The watches of one gateway, kept in line with the repositories its registry knows."""

    def __init__(self, settings: WatchSettings, starter: RunStarter) -> None:
        self.settings = settings
        self._starter = starter
        self._watches: dict[str, RepositoryWatch] = {}
        self._refused: dict[str, WatchStatus] = {}
        self._lock = asyncio.Lock()

    async def sync(self, targets: Iterable[WatchTarget]) -> None:
        """Watch exactly these repositories (one per project, most recently indexed first; past the
        ceiling the rest are refused). A failed watch stays failed until `restart_failed`."""
        if not self.settings.enabled:
            return
        async with self._lock:
            ordered: dict[str, WatchTarget] = {}
            for target in targets:
                ordered.setdefault(target.project_id, target)
            kept = dict(list(ordered.items())[:self.settings.max_repositories])
            self._refused = {
                project_id: WatchStatus("off", f"not watched: this gateway watches the "
                                               f"{self.settings.max_repositories} most recently indexed repositories",
                                        repo_path=str(target.repo_path))
                for project_id, target in ordered.items() if project_id not in kept}
            for project_id in [p for p, w in self._watches.items() if kept.get(p) != w.target]:
                await self._watches.pop(project_id).stop()
            for project_id, target in kept.items():
                if project_id not in self._watches:
                    watch = RepositoryWatch(target, self._starter, self.settings)
                    self._watches[project_id] = watch
                    watch.start()

    async def restart_failed(self, project_id: str) -> None:
        """A new run of the project from its folder: a failed watch gets another chance."""
        async with self._lock:
            watch = self._watches.get(project_id)
            if watch is not None and watch.status.state == "failed":
                await self._watches.pop(project_id).stop()

    def status(self, project_id: str) -> WatchStatus:
        if not self.settings.enabled:
            return WatchStatus("off", "watching is turned off (--no-watch)")
        watch = self._watches.get(project_id)
        if watch is not None:
            return watch.status
        return self._refused.get(project_id) or WatchStatus("off", "not watched: no completed run records its folder")

    async def stop(self) -> None:
        async with self._lock:
            watches, self._watches = list(self._watches.values()), {}
        await asyncio.gather(*(watch.stop() for watch in watches), return_exceptions=True)
