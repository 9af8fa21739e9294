"""Every log record of the process passes through `credentials.redact` when it is created.

A record factory rather than a handler filter: libraries (fastmcp, uvicorn) replace their
handlers when they start and do not propagate to the root logger, but every record, whichever
logger makes it, comes from the one factory.
"""
from __future__ import annotations

import logging

from .credentials import redact

_installed = False


def redact_logs() -> None:
    """Install the redacting record factory (once per process)."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args, **kwargs) -> logging.LogRecord:
        return _redacted(make_record(*args, **kwargs))

    logging.setLogRecordFactory(redacted_record)
    _installed = True


def _redacted(record: logging.LogRecord) -> logging.LogRecord:
    """The record with its message, traceback and stack rendered now, credentials replaced."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the handler's to report, as without redaction
        return record
    record.msg, record.args = redact(message), None
    if record.exc_info:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record
