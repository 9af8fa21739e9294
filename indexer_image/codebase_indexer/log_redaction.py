"""Log records pass through `credentials.redact` before any handler writes them."""
from __future__ import annotations

import logging

from .credentials import redact


class RedactingFilter(logging.Filter):
    """Replaces a record's message (and its traceback text) with the redacted rendering."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_logs(logger: logging.Logger | None = None) -> None:
    """Install the filter on the handlers of `logger` (default: the root logger; a stderr handler
    is configured when it has none)."""
    logger = logger or logging.getLogger()
    if not logger.handlers:
        logging.basicConfig()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
