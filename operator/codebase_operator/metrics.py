"""The operator's own Prometheus metrics: reconciles, errors, active indexer Jobs, run durations.

Served by prometheus-client's HTTP server on `--metrics-port` (0 turns it off), beside the
process metrics prometheus-client collects by itself.
"""
from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

import kopf
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from . import transitions
from .bodies import namespace_of
from .waits import Waiting

RECONCILES = Counter("codebase_operator_reconciles_total",
                     "Handler invocations of the operator, by resource and handler.", ["resource", "handler"])
ERRORS = Counter("codebase_operator_reconcile_errors_total",
                 "Handler invocations that failed (expected waits excluded), by resource and handler.",
                 ["resource", "handler"])
ACTIVE_JOBS = Gauge("codebase_operator_active_jobs",
                    "Indexer Jobs of unfinished IndexingRuns (runs with a Job, not finished yet).")
RUN_DURATION = Histogram("codebase_operator_run_duration_seconds",
                         "IndexingRun duration from its Job's start to its end, by final reason.",
                         ["reason"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600))

_active_runs: set[tuple[str, str]] = set()
_observed_ends: OrderedDict[str, None] = OrderedDict()
_REMEMBERED_ENDS = 4096
_active_lock = threading.Lock()


def counted(resource: str) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Count a kopf handler's invocations and its failures; a `Waiting` is no failure."""
    def decorate(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def wrapper(**kwargs: Any) -> Any:
            RECONCILES.labels(resource, handler.__name__).inc()
            try:
                return await handler(**kwargs)
            except Waiting:
                raise
            except Exception:
                ERRORS.labels(resource, handler.__name__).inc()
                raise
        return wrapper
    return decorate


def track_run(event_type: str | None, name: str, namespace: str, status: Mapping[str, Any]) -> None:
    """Keep the set of runs whose Job is active in step with what the watch reports."""
    key = (namespace, name)
    active = event_type != "DELETED" and bool(status.get("jobName")) and not transitions.is_finished(status)
    with _active_lock:
        (_active_runs.add if active else _active_runs.discard)(key)
        ACTIVE_JOBS.set(len(_active_runs))


def forget_runs() -> None:
    """A starting operator learns the active runs again from its watch's first listing."""
    with _active_lock:
        _active_runs.clear()
        ACTIVE_JOBS.set(0)


def observe_run_end(run_uid: str, status: Mapping[str, Any], reason: str, finished_at: str) -> None:
    """Observe a run's duration once, even when a replayed watch event finishes it a second time."""
    started = status.get("startTime")
    if not started:
        return  # it never had a Job (cancelled or invalid before it started)
    with _active_lock:
        if run_uid in _observed_ends:
            return
        _observed_ends[run_uid] = None
        while len(_observed_ends) > _REMEMBERED_ENDS:
            _observed_ends.popitem(last=False)
    seconds = (_parse(finished_at) - _parse(started)).total_seconds()
    RUN_DURATION.labels(reason).observe(max(seconds, 0.0))


def _parse(timestamp: str) -> datetime:
    moment = datetime.fromisoformat(timestamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class MetricsServer:
    """prometheus-client's HTTP server for the life of one operator run."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: WSGIServer | None = None

    def __enter__(self) -> MetricsServer:
        if self.port:
            self._server, _thread = start_http_server(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


async def on_run_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    track_run(type, body.metadata.name, namespace_of(body), body.status)
