"""Ledger transitions of a run, written by the worker: ``queued -> started -> complete | failed``.

Each transition is its own short transaction, separate from the job's work: a job's rollback never erases
its log row, and a failing log write never stops the job (callers wrap these in :func:`best_effort` or
``runner._ledger``). ``queued -> started`` is a compare-and-set: a second delivery finds no ``queued`` row
and is not run (docs/exactly-once.md, I5). The statements are the store's (:mod:`hookscheduler.store`), plain
SQL rather than peewee queries: they run in a freshly forked work horse, where building a query copies many of
the parent's memory pages. On PostgreSQL the start and the outcome are each one round trip
(:func:`start_in_one_trip`, :func:`finish_in_one_trip`); if one fails, the caller takes the careful path (each
write on its own, the log row's in a savepoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TypeVar

import peewee as pw

from ..store import store_for
from ..store.base import LATE_COMPLETION, Outcome
from ..store.postgres import LOCK_TIMEOUT, warm_up

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["LATE_COMPLETION", "LOCK_TIMEOUT", "advance_last_execution", "best_effort", "finish_in_one_trip",
           "ledger_txn", "lock_job_row", "record_finished", "record_started", "start_in_one_trip", "warm_up"]


def best_effort(what: str, fn: Callable[[], T]) -> T | None:
    """Run a ledger write; on any error log it and carry on (the job matters more than its log row)."""
    try:
        return fn()
    except Exception as exc:
        log.error("could not %s: %s: %s (the job is not affected)", what, type(exc).__name__, exc)
        return None


def ledger_txn(db: pw.Database) -> AbstractContextManager[None]:
    """A write transaction for ledger rows. On PostgreSQL it waits at most :data:`LOCK_TIMEOUT` for a row or
    table lock (an operator's ``LOCK TABLE``, a long ``ALTER``): a job must not wait on its log row. SQLite
    gives up after its busy timeout."""
    return store_for(db).ledger_transaction()


def record_started(db: pw.Database, rq_job_id: str, worker: str | None, now: datetime) -> str:
    """``started`` when this delivery owns the run; ``duplicate`` when the run already started or ended;
    ``unknown`` when the ledger has no row for it (not a scheduled run, or its history was pruned)."""
    return store_for(db).record_started(rq_job_id, worker, now)


def lock_job_row(db: pw.Database, job_name: str) -> str:
    """Inside the start's transaction: take the job's row before the run's ledger row, the order a scheduler's
    pass takes them in (PostgreSQL; SQLite has one writer at a time); return whether the job is present, removed
    from hooks or gone (``store.base.JOB_*``)."""
    return store_for(db).lock_job_row(job_name)


def advance_last_execution(db: pw.Database, job_name: str, started: datetime) -> None:
    """``last_execution`` is the start of the latest run; it never moves backwards."""
    store_for(db).advance_last_execution(job_name, started)


def record_finished(db: pw.Database, rq_job_id: str, status: str, now: datetime, *, traceback: str | None = None,
                    reason: str | None = None, started: datetime | None = None) -> None:
    """Record the outcome; it overrides an earlier verdict of the sweep (e.g. "abandoned"): the worker knows.
    ``started``: when the caller started the run itself (saves reading the row back for the duration)."""
    store = store_for(db)
    with store.ledger_transaction():
        if started is None:
            known, started = store.started_at(rq_job_id)
            if not known:
                return
        duration = max((now - started).total_seconds(), 0.0) if started is not None else None
        store.record_finished(rq_job_id, Outcome(status, now, duration, traceback, reason))


def start_in_one_trip(db: pw.Database, rq_job_id: str, job_name: str, worker: str | None,
                      now: datetime) -> str | None:
    """:func:`record_started` and :func:`advance_last_execution` in one round trip where the store can (on
    PostgreSQL); returns what :func:`record_started` would, or None when the caller must take the careful path."""
    return store_for(db).start_in_one_trip(rq_job_id, job_name, worker, now)


def finish_in_one_trip(db: pw.Database, rq_job_id: str, status: str, now: datetime, *, started: datetime,
                       traceback: str | None = None, reason: str | None = None) -> bool:
    """:func:`record_finished` (with a known start) in one round trip where the store can; False when the
    caller must take the careful path."""
    duration = max((now - started).total_seconds(), 0.0)
    return store_for(db).finish_in_one_trip(rq_job_id, Outcome(status, now, duration, traceback, reason))
