"""Expected waits: a run that cannot start yet (its database, a Job slot, another run of its project).

kopf retries a handler that raises `kopf.TemporaryError` and logs every retry at ERROR
("Handler 'start_run' failed temporarily: ..."). For a wait that is the normal course of
things, an ERROR per retry drowns real failures and trips log-based alerts, so the log record
of a `Waiting` is lowered to INFO; any other temporary error keeps kopf's ERROR.
"""
from __future__ import annotations

import logging
from collections import OrderedDict

import kopf

KOPF_OBJECT_LOGGER = "kopf.objects"
_KOPF_RETRY_TEXT = " failed temporarily: "
_REMEMBERED = 1024  # wait messages recognised in kopf's log records; the oldest are forgotten


class Waiting(kopf.TemporaryError):
    """The run cannot start yet; kopf retries the handler after the delay (logged at INFO)."""

    _recent: OrderedDict[str, None] = OrderedDict()

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message, delay=delay)
        Waiting._recent[message] = None
        Waiting._recent.move_to_end(message)
        while len(Waiting._recent) > _REMEMBERED:
            Waiting._recent.popitem(last=False)

    @classmethod
    def was_raised_with(cls, message: str) -> bool:
        return message in cls._recent


class ExpectedWaitsAtInfo(logging.Filter):
    """Lowers kopf's "failed temporarily" record of a `Waiting` to INFO, worded as the wait it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.ERROR:
            return True
        handler, found, message = record.getMessage().partition(_KOPF_RETRY_TEXT)
        if found and Waiting.was_raised_with(message):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.msg, record.args = f"{handler} will retry: {message}", ()
        return True


def log_expected_waits_at_info() -> None:
    """Install the filter on kopf's per-object logger (once per process)."""
    logger = logging.getLogger(KOPF_OBJECT_LOGGER)
    if not any(isinstance(f, ExpectedWaitsAtInfo) for f in logger.filters):
        logger.addFilter(ExpectedWaitsAtInfo())
