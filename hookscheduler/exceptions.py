"""The error hierarchy.

Every error the CLI can show derives from :class:`HookSchedulerError`; its message is one line that says what
went wrong, where, and how to fix it. ``exit_code`` is what the CLI exits with: 1 = an operation failed,
2 = bad usage or invalid input, so that scripts can tell "retry later" from "fix the command".
"""

from __future__ import annotations

import reprlib

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 120


def shown(value: object) -> str:
    """``repr`` of user input for a one-line message: quoted, control characters escaped (a newline or an
    escape sequence in a job name cannot break the line or reach the terminal) and at most ~120 characters
    (a 10,000-character argument must not become a 10,000-character error)."""
    return _SHOWN.repr(value)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for a log line about a failure the process survives (the full
    traceback would drown the log of a loop or a worker that meets the same failure many times)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class HookSchedulerError(Exception):
    """Base class; the message is shown to the user as is."""

    exit_code = 1


class ConfigError(HookSchedulerError):
    """A config file or setting is malformed (names the file and the key)."""

    exit_code = 2


class BenchError(HookSchedulerError):
    """The bench or site cannot be found or is ambiguous."""

    exit_code = 2


class HookError(HookSchedulerError):
    """One or more apps declare invalid ``scheduler_events``; every problem is listed."""

    exit_code = 2

    #: At most this many problems are spelled out in the message (all of them stay in ``problems``).
    SHOWN = 100

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in scheduler_events; nothing was written"
        lines = [f"  - {p}" for p in self.problems[:self.SHOWN]]
        if len(self.problems) > self.SHOWN:
            lines.append(f"  ... and {len(self.problems) - self.SHOWN} more")
        super().__init__(head + ":\n" + "\n".join(lines))


class BadInput(HookSchedulerError):
    """A command-line argument the command cannot accept (exit 2), said in one line."""

    exit_code = 2


class JobNotFound(HookSchedulerError, LookupError):
    """No Scheduled Job Type by that name."""


class QueueNotFound(HookSchedulerError, LookupError):
    """A queue name that is neither built in nor configured under ``workers``."""

    exit_code = 2


class ServiceUnavailable(HookSchedulerError):
    """Redis or the database cannot be reached. ``cause``: the client's own one-line reason, when the message
    wraps it (``doctor`` shows it beside the URL and a hint of its own, instead of the whole message)."""

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class ReadOnlyDatabase(ServiceUnavailable):
    """The site's database answers but refuses writes (a read-only file or mount, a PostgreSQL database or
    session that is read-only, a replica)."""


class SchemaError(HookSchedulerError):
    """The site's database has no (or an outdated) schema: run ``hookscheduler migrate``."""
