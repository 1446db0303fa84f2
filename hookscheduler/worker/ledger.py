"""Ledger transitions of a run, written by the worker: ``queued -> started -> complete | failed``.

Each transition is its own short transaction, separate from the job's work: a job's rollback never erases
its log row, and a failing log write never stops the job (callers wrap these in :func:`best_effort` or
``runner._ledger``). ``queued -> started`` is a compare-and-set: a second delivery finds no ``queued`` row
and is not run (docs/exactly-once.md, I5). The statements are plain SQL, not peewee queries: they run in a
freshly forked work horse, where building a query copies many of the parent's memory pages. On PostgreSQL
the start and the outcome are each one round trip (:func:`start_in_one_trip`, :func:`finish_in_one_trip`);
if one fails, the caller takes the careful path (each write on its own, the log row's in a savepoint).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import peewee as pw

from ..store.database import write_txn

log = logging.getLogger(__name__)
T = TypeVar("T")

_START = ("UPDATE scheduled_job_log SET status = 'started', started_at = {p}, worker = {p}, modified_at = {p}, "
          "enqueued_at = COALESCE(enqueued_at, {p}) WHERE rq_job_id = {p} AND status = 'queued'")
_EXISTS = "SELECT 1 FROM scheduled_job_log WHERE rq_job_id = {p}"
_LAST_EXECUTION = ("UPDATE scheduled_job_type SET last_execution = {p} "
                   "WHERE name = {p} AND (last_execution IS NULL OR last_execution < {p})")
_STARTED_AT = "SELECT started_at FROM scheduled_job_log WHERE rq_job_id = {p}"
_FINISH = ("UPDATE scheduled_job_log SET status = {p}, finished_at = {p}, modified_at = {p}, "
           "duration = COALESCE({p}, duration), traceback = COALESCE({p}, traceback), "
           "reason = CASE WHEN {p} IS NOT NULL THEN {p} WHEN status = 'failed' AND {p} = 'complete' THEN {p} "
           "ELSE reason END WHERE rq_job_id = {p}")
LATE_COMPLETION = "completed after the scheduler had declared it abandoned"
LOCK_TIMEOUT = "5s"
#: The start in one statement. Every part reads the snapshot taken before the UPDATEs, so ``known`` still sees
#: the row as it was; ``last_execution`` advances unless this is a duplicate delivery (as in the careful path).
#:
#: Lock order: the job's row first (``job``, ``FOR UPDATE``, evaluated once as the ledger UPDATE's first
#: condition, before that UPDATE locks the run's row), then the run's ledger row: the order a scheduler's pass
#: takes them in (``select_due ... FOR UPDATE``, then the ledger rows it settles). In the other order a start
#: write and a pass could each hold what the other waits for (a deadlock, seen once in a 30-minute chaos run;
#: ``test_the_start_write_takes_the_job_row_before_the_ledger_row``). Data-modifying CTEs run in no set order,
#: hence the subquery in the WHERE clause rather than a CTE of its own.
_PG_START = (
    "WITH started AS (UPDATE scheduled_job_log SET status = 'started', started_at = %s, worker = %s, "
    "modified_at = %s, enqueued_at = COALESCE(enqueued_at, %s) "
    "WHERE (SELECT count(*) FROM (SELECT 1 FROM scheduled_job_type WHERE name = %s FOR UPDATE) AS job) >= 0 "
    "AND rq_job_id = %s AND status = 'queued' RETURNING 1), "
    "known AS (SELECT 1 FROM scheduled_job_log WHERE rq_job_id = %s), "
    "advanced AS (UPDATE scheduled_job_type SET last_execution = %s WHERE name = %s "
    "AND (last_execution IS NULL OR last_execution < %s) "
    "AND (EXISTS (SELECT 1 FROM started) OR NOT EXISTS (SELECT 1 FROM known)) RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM started), EXISTS (SELECT 1 FROM known), (SELECT count(*) FROM advanced)"
)


def best_effort(what: str, fn: Callable[[], T]) -> T | None:
    """Run a ledger write; on any error log it and carry on (the job matters more than its log row)."""
    try:
        return fn()
    except Exception as exc:
        log.error("could not %s: %s: %s (the job is not affected)", what, type(exc).__name__, exc)
        return None


@contextlib.contextmanager
def ledger_txn(db: pw.Database) -> Iterator[None]:
    """A write transaction for ledger rows. On PostgreSQL it waits at most :data:`LOCK_TIMEOUT` for a row or
    table lock (an operator's ``LOCK TABLE``, a long ``ALTER``): a job must not wait on its log row. SQLite
    gives up after its busy timeout."""
    with write_txn(db):
        if isinstance(db, pw.PostgresqlDatabase) and db.transaction_depth() == 1:
            _run(db, f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'", ())
        yield


def _run(db: pw.Database, template: str, params: tuple[Any, ...]) -> Any:
    """Execute one statement (``{p}`` placeholders in the database's parameter style); returns the cursor."""
    return db.execute_sql(template.format(p=db.param), params)  # type: ignore[no-untyped-call]


def _dt(db: pw.Database, value: datetime | None) -> Any:
    """A timestamp as peewee stores it: ISO text on SQLite (so comparisons are like with like)."""
    if value is None:
        return None
    return value.isoformat(sep=" ") if isinstance(db, pw.SqliteDatabase) else value


def record_started(db: pw.Database, rq_job_id: str, worker: str | None, now: datetime) -> str:
    """``started`` when this delivery owns the run; ``duplicate`` when the run already started or ended;
    ``unknown`` when the ledger has no row for it (not a scheduled run, or its history was pruned)."""
    at = _dt(db, now)
    with ledger_txn(db):
        if _run(db, _START, (at, worker, at, at, rq_job_id)).rowcount:
            return "started"
        exists = _run(db, _EXISTS, (rq_job_id,)).fetchone() is not None
    return "duplicate" if exists else "unknown"


def lock_job_row(db: pw.Database, job_name: str) -> None:
    """On PostgreSQL, inside the start's transaction: take the job's row before the run's ledger row, the order
    a scheduler's pass takes them in (see :data:`_PG_START`); SQLite has one writer at a time."""
    if isinstance(db, pw.PostgresqlDatabase):
        _run(db, "SELECT 1 FROM scheduled_job_type WHERE name = {p} FOR UPDATE", (job_name,))


def advance_last_execution(db: pw.Database, job_name: str, started: datetime) -> None:
    """``last_execution`` is the start of the latest run; it never moves backwards."""
    at = _dt(db, started)
    with ledger_txn(db):
        _run(db, _LAST_EXECUTION, (at, job_name, at))


def record_finished(db: pw.Database, rq_job_id: str, status: str, now: datetime, *, traceback: str | None = None,
                  reason: str | None = None, started: datetime | None = None) -> None:
    """Record the outcome; it overrides an earlier verdict of the sweep (e.g. "abandoned"): the worker knows.
    ``started``: when the caller started the run itself (saves reading the row back for the duration)."""
    with ledger_txn(db):
        if started is None:
            row = _run(db, _STARTED_AT, (rq_job_id,)).fetchone()
            if row is None:
                return
            started = _parse(row[0])
        duration = max((now - started).total_seconds(), 0.0) if started is not None else None
        _run(db, _FINISH, (status, _dt(db, now), _dt(db, now), duration, traceback, reason, reason, status,
                           LATE_COMPLETION, rq_job_id))


def _fast_pg(db: pw.Database) -> Any:
    """The raw psycopg2 connection when the one-trip path applies (PostgreSQL, no transaction open, autocommit
    mode as peewee leaves it), else None."""
    if not isinstance(db, pw.PostgresqlDatabase) or db.transaction_depth() != 0:
        return None
    conn = db.connection()  # type: ignore[no-untyped-call]
    return conn if not conn.closed and conn.autocommit else None


def _preamble() -> str:
    """Sent in the same simple-query message as the write, without BEGIN: PostgreSQL runs a message's statements
    as one implicit transaction (all or nothing, committed when the message ends), and ``SET LOCAL`` lasts for
    that transaction only. So a write, its lock timeout and its commit cost one round trip."""
    return f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; "


def _abandon(conn: Any, what: str, exc: BaseException) -> None:
    log.debug("the one-trip %s failed (%s: %s); taking the careful path", what, type(exc).__name__, exc)
    try:
        conn.cursor().execute("ROLLBACK")
    except Exception:  # the connection is gone: the careful path reconnects
        pass


def warm_up(conn: Any) -> None:
    """Plan (``EXPLAIN``, nothing runs) the start and finish statements on a new PostgreSQL connection: the
    server backend loads the catalog entries of the ledger's tables and indexes now, not during a run
    (:mod:`hookscheduler.worker.warm`). Bounded: a locked table makes it fail within ``lock_timeout``."""
    sql = ("SET LOCAL lock_timeout = '100ms'; SET LOCAL statement_timeout = '1s'; "
           "EXPLAIN " + _PG_START + "; EXPLAIN " + _FINISH.format(p="%s"))
    conn.cursor().execute(sql, (None,) * sql.count("%s"))  # NULLs: planned for any values, matching no row


def start_in_one_trip(db: pw.Database, rq_job_id: str, job_name: str, worker: str | None,
                      now: datetime) -> str | None:
    """On PostgreSQL: :func:`record_started` and :func:`advance_last_execution` in one round trip (one statement,
    committed as it ends: :func:`_preamble`); returns what :func:`record_started` would, or None when the caller
    must take the careful path."""
    conn = _fast_pg(db)
    if conn is None:
        return None
    try:
        cursor = conn.cursor()
        cursor.execute(_preamble() + _PG_START,
                       (now, worker, now, now, job_name, rq_job_id, rq_job_id, now, job_name, now))
        started, known, _ = cursor.fetchone()
    except Exception as exc:
        _abandon(conn, "start", exc)
        return None
    if started:
        return "started"
    return "duplicate" if known else "unknown"


def finish_in_one_trip(db: pw.Database, rq_job_id: str, status: str, now: datetime, *, started: datetime,
                       traceback: str | None = None, reason: str | None = None) -> bool:
    """On PostgreSQL: :func:`record_finished` (with a known start) in one request; False when the caller must
    take the careful path."""
    conn = _fast_pg(db)
    if conn is None:
        return False
    duration = max((now - started).total_seconds(), 0.0)
    try:
        conn.cursor().execute(_preamble() + _FINISH.format(p="%s"),
                              (status, now, now, duration, traceback, reason, reason, status, LATE_COMPLETION,
                               rq_job_id))
    except Exception as exc:
        _abandon(conn, "outcome", exc)
        return False
    return True


def _parse(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
