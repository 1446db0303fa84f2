"""Passwords never reach a log line: a process-wide log record factory that redacts every record.

Redacting at each call site cannot cover RQ's own worker log (it logs a failed job's traceback, whose message may
quote a connection URL), nor redis-py, psycopg2 or an app's logging. A record factory sees every record of every
logger before any handler formats it, so the message (with its arguments merged in) and the traceback text are
redacted once, here. ``exc_info`` is kept for handlers that want the exception object (the rendered text a
formatter prints is taken from the redacted ``exc_text``).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from .redact import redact

_installed = False


def install_log_redaction() -> None:
    """Make every log record of this process (and of the processes it forks) password-free; idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed %-format: leave it for logging's own error report
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
