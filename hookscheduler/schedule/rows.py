"""Rows a pass cannot act on: found, skipped and reported, never allowed to stop the site.

``migrate`` writes only valid rows, but a row can still be changed with SQL, restored from an old backup or
written by a buggy tool: an invalid ``cron_format``, an unknown ``frequency``, a ``timeout`` of 0, a
``next_execution`` that is not a time, ``stopped = 'false'`` (text, which SQLite keeps as text in an integer
column and Python reads as true). One such row used to make every pass of its site raise. Now:

* :func:`row_problem` (pure) says what is wrong with a row, or None; the pass skips the rows it names, the
  other jobs fire, and :func:`report_once` logs each problem once per process (not once per pass);
* ``doctor`` and ``jobs list`` call the same function, so the operator sees the row and the fix;
* :func:`repair_values` (in the sweep) repairs what has one safe repair: text booleans written as words become
  0/1, and a ``next_execution`` that is not a time is rescheduled forward from now (as a NULL one is).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import peewee as pw

from ..context import SiteContext
from ..exceptions import shown
from ..states import CatchUp, Overlap
from ..store import store_for
from ..store.values import flag
from ..timing.cron import CronError, validate_cron
from ..timing.frequencies import BY_FREQUENCY

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The longest timeout a row may hold (an INTEGER column; RQ refuses 0 and takes -1 as "no limit").
MAX_TIMEOUT = 2**31 - 1
_reported: set[tuple[str, str, str]] = set()


def row_problem(frequency: Any, cron_format: Any, timeout: Any, catchup: Any, catchup_limit: Any, overlap: Any,
                stopped: Any, next_execution: Any, valid_crons: dict[str, str | None] | None = None) -> str | None:
    """What makes a ``scheduled_job_type`` row unusable, in words an operator can act on; None for a good row.

    ``valid_crons`` memoises cron checks across rows (10,000 rows usually share a handful of schedules)."""
    if not isinstance(frequency, str) or frequency not in BY_FREQUENCY:
        return f"unknown frequency {frequency!r}"
    if BY_FREQUENCY[frequency].is_cron:
        problem = _cron_problem(cron_format, valid_crons)
        if problem:
            return problem
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT:
        return f"timeout {timeout!r} is not a whole number of seconds from 1 to {MAX_TIMEOUT}"
    if catchup not in {c.value for c in CatchUp}:
        return f"unknown catchup {catchup!r}"
    if not isinstance(catchup_limit, int) or isinstance(catchup_limit, bool) or not 1 <= catchup_limit <= 1000:
        return f"catchup_limit {catchup_limit!r} is not a whole number from 1 to 1000"
    if overlap not in {o.value for o in Overlap}:
        return f"unknown overlap {overlap!r}"
    if flag(stopped) is None:
        return f"stopped holds {stopped!r}, not a boolean (0/1, true/false)"
    if next_execution is not None and not isinstance(next_execution, datetime):
        return f"next_execution holds {next_execution!r}, not a time"
    return None


def _cron_problem(cron: Any, memo: dict[str, str | None] | None) -> str | None:
    if not isinstance(cron, str):
        return f"cron_format {cron!r} is not a cron string"
    if memo is not None and cron in memo:
        return memo[cron]
    problem = _cron_verdict(cron)
    if memo is not None:
        memo[cron] = problem
    return problem


@functools.lru_cache(maxsize=4096)
def _cron_verdict(cron: str) -> str | None:
    """What is wrong with a cron string, or None; once per distinct string in the process: validating one costs
    a croniter expansion (about 0.4 ms), which every due row of every pass would otherwise pay again."""
    try:
        validate_cron(cron)
    except CronError as exc:
        return str(exc)
    return None


def usable(site: str, rows: Sequence[T]) -> list[T]:
    """The due rows a pass can act on; the others are reported (once) and left alone."""
    memo: dict[str, str | None] = {}
    good = []
    for r in rows:
        problem = row_problem(r.frequency, r.cron_format, r.timeout, r.catchup, r.catchup_limit,  # type: ignore[attr-defined]
                              r.overlap, r.stopped, r.next_execution, memo)  # type: ignore[attr-defined]
        if problem is None:
            good.append(r)
        else:
            report_once(site, r.name, problem)  # type: ignore[attr-defined]
    return good


FIX_HINT = "fix the row (`hookscheduler migrate` rewrites every declared column) or remove the job from hooks.py"


def report_once(site: str, job: str, problem: str) -> bool:
    """Log a bad row's problem the first time this process meets it; True when it logged."""
    key = (site, job, problem)
    if key in _reported:
        return False
    _reported.add(key)
    log.error("site %s: job %s is skipped: %s; %s (the other jobs are not affected)", site, shown(job), problem,
              FIX_HINT)
    return True


def repair_values(ctx: SiteContext, now: datetime) -> int:
    """Repair what has one safe repair, on SQLite (PostgreSQL's typed columns refuse such values): boolean
    columns holding words, and a ``next_execution`` that is not a time (set to NULL, which the sweep's repair
    then reschedules forward from ``now``, logged). Returns the rows changed."""
    if ctx.site.on_postgres:
        return 0  # not even a connection: the change gate's skipped steps rely on it (.step.SiteStep.needs_database)
    db = ctx.database()
    if not isinstance(db, pw.SqliteDatabase):
        return 0
    store = store_for(db)
    with store.transaction():
        changed = store.normalise_boolean_words()
        cleared = store.clear_untimely_slots()
    for name, value in cleared:
        log.warning("site %s: job %s had next_execution %r, not a time; rescheduling it forward from now",
                    ctx.name, shown(name), value)
    return changed + len(cleared)


__all__ = ["FIX_HINT", "repair_values", "report_once", "row_problem", "usable"]
