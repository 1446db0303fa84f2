"""Ledger transitions of a run, written by the worker: ``queued -> started -> complete | failed``.

Each transition is its own short transaction, separate from the job's work, so that a job's rollback never
erases its own log row, and a failing log write never stops the job (Frappe #41245): callers wrap these in
:func:`best_effort`. ``queued -> started`` is a compare-and-set: a second delivery of a run that already
started (or finished) finds no ``queued`` row and is not run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import peewee as pw

from .db import write_txn
from .models import ScheduledJobLog, ScheduledJobType

log = logging.getLogger("hookscheduler.runlog")
T = TypeVar("T")


def best_effort(what: str, fn: Callable[[], T]) -> T | None:
    """Run a ledger write; on any error log it and carry on (the job matters more than its log row)."""
    try:
        return fn()
    except Exception as exc:
        log.error("could not %s: %s: %s (the job is not affected)", what, type(exc).__name__, exc)
        return None


def mark_started(db: pw.Database, rq_job_id: str, worker: str | None, now: datetime) -> str:
    """``started`` when this delivery owns the run; ``duplicate`` when the run already started or ended;
    ``unknown`` when the ledger has no row for it (not a scheduled run, or its history was pruned)."""
    with write_txn(db):
        n = (ScheduledJobLog.update(status="started", started_at=now, worker=worker, modified_at=now,
                                    enqueued_at=pw.fn.COALESCE(ScheduledJobLog.enqueued_at, now))
             .where((ScheduledJobLog.rq_job_id == rq_job_id) & (ScheduledJobLog.status == "queued"))
             .execute())
        if n:
            return "started"
        exists = ScheduledJobLog.select(ScheduledJobLog.id).where(ScheduledJobLog.rq_job_id == rq_job_id).exists()
    return "duplicate" if exists else "unknown"


def advance_last_execution(db: pw.Database, job_name: str, started: datetime) -> None:
    """``last_execution`` is the start of the latest run; it never moves backwards."""
    with write_txn(db):
        (ScheduledJobType.update(last_execution=started)
         .where((ScheduledJobType.name == job_name)
                & (ScheduledJobType.last_execution.is_null() | (ScheduledJobType.last_execution < started)))
         .execute())


def mark_finished(db: pw.Database, rq_job_id: str, status: str, now: datetime, *, traceback: str | None = None,
                  reason: str | None = None) -> None:
    """Record the outcome; it overrides an earlier verdict of the tick (e.g. "abandoned"): the worker knows."""
    with write_txn(db):
        row = ScheduledJobLog.get_or_none(ScheduledJobLog.rq_job_id == rq_job_id)
        if row is None:
            return
        values: dict[Any, Any] = {"status": status, "finished_at": now, "modified_at": now}
        if row.started_at is not None:
            values["duration"] = max((now - row.started_at).total_seconds(), 0.0)
        if traceback is not None:
            values["traceback"] = traceback
        if reason is not None:
            values["reason"] = reason
        elif row.status == "failed" and status == "complete":
            values["reason"] = "completed after the scheduler had declared it abandoned"
        ScheduledJobLog.update(values).where(ScheduledJobLog.id == row.id).execute()
