"""One scheduling pass for one site at an explicit ``now``: select due rows, decide, claim, record, send.

Why a slot fires exactly once
=============================

1. *Claim by compare-and-set.* A batch's rows are claimed by one statement (one per 500 rows on SQLite)
   that joins the decisions to the table::

       UPDATE scheduled_job_type SET next_execution = v.next FROM (<id, served, next> ...) AS v
       WHERE id = v.id AND next_execution = v.served RETURNING id

   Only a process that saw ``next_execution = <served>`` can move it, and the database serialises the
   writes: once one process has moved it, the others' ``WHERE`` no longer matches (PostgreSQL re-checks the
   condition after waiting for the row lock; SQLite runs writers one at a time, ``BEGIN IMMEDIATE``). So N
   scheduler processes cannot both claim a slot; ``RETURNING`` tells each process exactly which rows it won, and it
   logs and sends only those. On PostgreSQL due rows are selected ``FOR UPDATE SKIP LOCKED`` in batches of
   :data:`PG_BATCH`, so concurrent processes split the due rows between them instead of queueing behind each
   other (SKIP LOCKED only decides who *tries*; the compare-and-set still decides who *wins*).

   Before any of this a pass asks one read-only question (:func:`probe_pass`): is any row due, is any run
   unsent? A "no" read by a pass that races with a claim or a commit only means the work is done by the next
   pass (or by the process that made it due); the probe never decides that a slot is served.

2. *Outbox.* The claim and the slot's log row (``status='queued'``, ``enqueued_at IS NULL``; one bulk insert
   per batch) commit in the same transaction, *before* anything is sent to Redis. Every pass first re-sends
   every claimed-but-unsent row (:func:`resend_outbox`; the probe finds them through the outbox index, which
   holds exactly the rows between their claim and their send). So a process killed at any point leaves one of:

   * before the commit: nothing (the rollback undoes the claim), and the slot is still due: the next pass
     claims it;
   * after the commit, before or during the send: an unsent outbox row, sent by the next pass of any process;
   * after the send, before marking it sent: a row sent twice at worst, which RQ stores once (below).

3. *Deterministic, unique RQ job id* per (bench, site, job, slot), written with RQ's atomic unique-enqueue
   script (all runs of a batch in one pipeline; the job hash is RQ's own format, see
   :class:`hookscheduler.send.HashBuilder`): a second send of the same run is refused by Redis itself.
   And the worker moves the ledger row ``queued -> started`` with a compare-and-set of its own, so even a
   duplicate delivery (e.g. after RQ forgot the first job) cannot run a slot a second time; before that, the
   work horse marks the run started in Redis with ``SET NX`` (:mod:`hookscheduler.worker.marks`), so a duplicate
   delivery is refused even while the ledger cannot be written (the worker still runs a job whose ledger
   write fails, Frappe #41245), and the sweep never re-sends, nor re-queues (:mod:`hookscheduler.schedule.orphans`),
   a run that carries the mark. None of this depends on how long RQ keeps finished jobs, on lock TTLs, or on
   clocks agreeing.

Nothing is lost silently: every slot the pass decides about gets a log row in the claim transaction, whether
it runs (``queued``), was ``missed`` (no pass ran while it was due) or was ``skipped`` (job stopped, previous
run still active), with the reason. While the site's scheduler is paused, disabled or in maintenance a pass
decides nothing: it records the stretch of inactivity (``scheduler_inactivity``) and holds the due slots, which
the first active pass decides with each job's catch-up policy (see :mod:`.decide`).
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
import redis

from ..broker.keys import scheduled_job_id
from ..config import update_site_config
from ..context import SiteContext
from ..exceptions import HookSchedulerError
from ..states import ACTIVE_STATUSES, LedgerStatus, Overlap
from ..store.database import get_state, write_txn
from ..store.models import ScheduledJobLog, ScheduledJobType, SchedulerInactivity, database_proxy, utcnow
from ..store.values import flag
from ..timing.calendar import next_slot
from ..timing.frequencies import fires_within_hour
from ..worker import marks
from . import send
from ._faults import failpoint
from .decide import Decision, Entry, JobState, Slots, Stretch, decide, is_stopped, pause_expired, scheduler_inactive
from .excursion import served_early
from .judge import RQ_OVER, Verdict, judge
from .orphans import ORPHAN_GRACE, requeue_orphans
from .rows import FIX_HINT, report_once, usable

log = logging.getLogger(__name__)

DEFAULT_BATCH = 2000  # due rows per batch on SQLite (one writer at a time: a batch is one lock hold)
#: Due rows per batch on PostgreSQL: small enough that concurrent processes over the same slot each take
#: batches of their own (SKIP LOCKED), large enough that a batch's fixed cost (a commit, a pipeline) is small.
PG_BATCH = 250
CHUNK = 500  # rows per batched statement on SQLite (well under its 32k parameter limit)
QUEUED, SKIPPED = LedgerStatus.QUEUED, LedgerStatus.SKIPPED
LOST_UNKNOWN = ("lost from Redis, which restarted after it was sent: a worker may have started it without "
                "recording it, so it is not sent again (outcome unknown)")
UNRECORDED = ("started by a worker that could not record it, then lost from Redis: outcome unknown, "
              "not run again")


@dataclass
class PassResult:
    """What one pass did, for logs, tests and benchmarks."""

    site: str
    now: datetime
    due: int = 0
    fired: int = 0
    skipped: int = 0
    missed: int = 0
    lost_claims: int = 0  # due rows another process claimed first
    resent: int = 0
    sent_ids: list[str] = field(default_factory=list)
    send_error: str | None = None
    inactive: str | None = None
    resume_at: datetime | None = None  # inactive: when a pause with an end ends by itself
    bad: int = 0  # due rows skipped because they cannot be acted on (schedule/rows.py)
    #: The probe's answers, for the step: the earliest next slot when the pass changed nothing
    #: (``earliest_known``; else the pass moved slots: ask again), whether runs were active and whether some
    #: row had no next slot.
    earliest: datetime | None = None
    earliest_known: bool = False
    active: bool = True
    unslotted: bool = True


def grace_seconds(ctx: SiteContext) -> float:
    """How late a slot may be served and still count as on time (one tick interval, at least a minute)."""
    return float(max(ctx.site.tick_interval, 60))


#: ``scheduler_state`` key of a pause's end (``scheduler pause --until T``), ISO text of naive UTC.
PAUSE_UNTIL = "pause_until"


def inactive_reason(ctx: SiteContext, enabled: str | None = None, pause_until: datetime | None = None,
                    now: datetime | None = None) -> str | None:
    """Why the site's scheduler is not firing, re-read every pass (config files and the state table;
    ``enabled`` and ``pause_until`` are the state rows' values when the caller has already read them)."""
    settings = ctx.site.settings
    enabled = enabled if enabled is not None else get_state("scheduler_enabled", "1")
    disabled = enabled == "0"
    return scheduler_inactive(maintenance=settings.maintenance_mode, paused=settings.pause_scheduler,
                              disabled_by_config=settings.disable_scheduler, enabled=not disabled,
                              disabled_note=get_state("scheduler_disabled_note") if disabled else None,
                              pause_until=pause_until, now=now or utcnow())


def read_pause_until() -> datetime | None:
    """The end of the current ``scheduler pause --until``, if any (None also for unreadable text)."""
    return parse_stamp(get_state(PAUSE_UNTIL))


def parse_stamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        log.warning("scheduler_state.%s holds %r, not a timestamp: ignored", PAUSE_UNTIL, text)
        return None


def track_inactivity(db: pw.Database, reason: str | None, open_reason: str | None, now: datetime) -> None:
    """Record when and why the scheduler became inactive, and when it became active again: one
    ``scheduler_inactivity`` row per stretch, written only when the state changes (a pass that finds it as it
    was writes nothing)."""
    if reason == open_reason:
        return
    with write_txn(db):
        SchedulerInactivity.update(ended_at=now).where(SchedulerInactivity.ended_at.is_null()).execute()
        if reason is not None:
            SchedulerInactivity.create(reason=reason, since=now)


def note_switch(ctx: SiteContext, now: datetime | None = None) -> None:
    """After an operator switched the scheduler (pause, resume, enable, disable): record the stretch at the
    moment of the switch rather than at the next pass, with the reason the pass will compute."""
    now = now or utcnow()
    db = ctx.database()
    reason = inactive_reason(ctx, pause_until=read_pause_until(), now=now)
    S = SchedulerInactivity
    open_row = S.select(S.reason).where(S.ended_at.is_null()).order_by(S.id.desc()).first()
    track_inactivity(db, reason, open_row.reason if open_row else None, now)


def recent_stretches(since: datetime, limit: int = 100) -> list[Stretch]:
    """The stretches of inactivity that ended after ``since`` (or have not ended), newest first."""
    S = SchedulerInactivity
    query = (S.select().where(S.ended_at.is_null() | (S.ended_at > since)).order_by(S.since.desc()).limit(limit))
    return [Stretch(r.reason, _dt(r.since), _dt(r.ended_at)) for r in query]


def lift_expired_pause(ctx: SiteContext, now: datetime) -> None:
    """A ``scheduler pause --until T`` whose T has come is already ignored by the decision; clear the flag in
    ``site_config.json`` too, so that the files say what happens (best effort: a read-only file is logged)."""
    try:
        update_site_config(ctx.site, {"pause_scheduler": False})
    except (OSError, HookSchedulerError) as exc:
        log.warning("site %s: the pause ended at its --until time but site_config.json could not be "
                    "updated (%s); the scheduler runs anyway", ctx.name, exc)
        return
    ctx.site = replace(ctx.site, values={**ctx.site.values, "pause_scheduler": False})
    log.info("site %s: scheduler pause ended (--until reached); resumed", ctx.name)


def run_pass(ctx: SiteContext, conn: redis.Redis, now: datetime | None = None,
             batch: int | None = None) -> PassResult:
    """One pass over the site's due rows at ``now`` (naive UTC)."""
    now = now or utcnow()
    db = ctx.database()
    result = PassResult(site=ctx.name, now=now)
    probe = probe_pass(db, now)
    result.active, result.unslotted = probe.active, probe.unslotted
    pause_until = parse_stamp(probe.pause_until) if probe.pause_until else None
    result.inactive = inactive_reason(ctx, probe.enabled or "1", pause_until, now)  # no state row: enabled
    if result.inactive != probe.inactive_since:
        track_inactivity(db, result.inactive, probe.inactive_since, now)
    if pause_expired(ctx.site.settings.pause_scheduler, pause_until, now):
        lift_expired_pause(ctx, now)
    elif result.inactive and pause_until is not None:
        result.resume_at = pause_until
    if not probe.due and not probe.outbox:
        result.earliest, result.earliest_known = probe.earliest, True
        return result  # the common case: one indexed statement, no transaction
    if probe.outbox:
        result.resent = resend_outbox(ctx, conn, result)
    if not probe.due or result.inactive:
        return result  # inactive: the due slots are held; the first active pass decides them (catch-up)
    batch = batch or (PG_BATCH if isinstance(db, pw.PostgresqlDatabase) else DEFAULT_BATCH)
    calendar, grace = ctx.calendar, grace_seconds(ctx)
    memo: dict[tuple[str, str, datetime], Slots] = {}
    stretches: list[Stretch] | None = None  # read once, and only when a batch has a late row
    for _ in range(1000):  # bounded: each batch moves every row it selected past `now`
        with write_txn(db):
            selected = select_due(db, now, batch)
            rows = usable(ctx.name, selected)  # a bad row is reported and skipped; it never stops the site
            result.bad += len(selected) - len(rows)
            if not rows:
                break
            result.due += len(rows)
            verdicts = active_runs([r for r in rows if r.has_active], conn, now, ctx.bench.bench_id)
            if stretches is None and (now - rows[0].next_execution).total_seconds() > grace:
                stretches = recent_stretches(rows[0].next_execution)
            decisions = _decide_each(ctx.name, rows, now, calendar, grace, verdicts, memo, stretches or ())
            failpoint("before_claim")
            won = claim(db, decisions)
            result.lost_claims += len(decisions) - len(won)
            runs = record(ctx, [d for d in decisions if d.job.id in won], {r.id: r for r in rows}, now, result)
            failpoint("after_claim")  # claimed and logged, not committed: the rollback must undo both
        failpoint("after_commit")  # committed, nothing sent: the outbox must send it later
        _send(ctx, conn, runs, result)
        if any(v.resend for vs in verdicts.values() for v in vs):
            result.resent += resend_outbox(ctx, conn, result)
        if len(selected) < batch:
            break
    return result


def _decide_each(site: str, rows: Sequence[DueRow], now: datetime, calendar: Any, grace: float,
                 verdicts: dict[int, list[Verdict]], memo: dict[tuple[str, str, datetime], Slots],
                 stretches: Sequence[Stretch]) -> list[Decision]:
    """:func:`.decide.decide` for each row; a row it cannot decide about (a value no check foresaw) is
    reported and left out, like a row :func:`.rows.usable` refused."""
    decisions = []
    for r in rows:
        try:
            decisions.append(decide(JobState(r.id, r.name, r.frequency, r.cron_format, r.next_execution, r.stopped,
                                             r.catchup, r.catchup_limit, r.overlap, r.stopped_until),
                                    now, calendar, grace=grace, blocked=_blocking(verdicts.get(r.id)), memo=memo,
                                    stretches=stretches))
        except Exception as exc:
            report_once(site, r.name, f"{type(exc).__name__}: {exc}")
    return decisions


@dataclass(frozen=True)
class Probe:
    """What one cheap statement says about a pass before it opens a transaction."""

    due: bool  # some row's next_execution has come
    outbox: bool  # some claimed run was never marked sent
    enabled: str | None  # scheduler_state.scheduler_enabled
    pause_until: str | None = None  # scheduler_state.pause_until
    inactive_since: str | None = None  # the reason of the open scheduler_inactivity stretch, if any
    earliest: datetime | None = None  # the earliest next_execution of an active row (the loop's wake-up)
    active: bool = True  # some run is queued or started (the sweep's reconcile has work)
    unslotted: bool = True  # some active row has no next_execution (the sweep's repair has work)


_PROBE_SQL = ("SELECT (SELECT next_execution FROM scheduled_job_type WHERE next_execution IS NOT NULL "
              "AND removed = {false} ORDER BY next_execution LIMIT 1), "
              "EXISTS (SELECT 1 FROM scheduled_job_log WHERE status = 'queued' AND enqueued_at IS NULL), "
              "(SELECT value FROM scheduler_state WHERE key = 'scheduler_enabled'), "
              "(SELECT value FROM scheduler_state WHERE key = 'pause_until'), "
              "(SELECT reason FROM scheduler_inactivity WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1), "
              "EXISTS (SELECT 1 FROM scheduled_job_log WHERE status IN ('queued', 'started')), "
              "EXISTS (SELECT 1 FROM scheduled_job_type WHERE next_execution IS NULL AND removed = {false})")
#: PostgreSQL connections on which the probe is a prepared statement. It has no parameters (``now`` is
#: compared in Python), so its one plan is the index plan; planning it each time would cost ten times more
#: than running it.
_PREPARED: weakref.WeakSet[Any] = weakref.WeakSet()


def probe_pass(db: pw.Database, now: datetime) -> Probe:
    """One statement, answered from indexes (the first entry of ``next_execution`` and its NULL entries; the
    outbox; the active runs; the state keys): whatever the table size, a pass with nothing to do costs one round
    trip and no write lock, and it also tells the step whether its sweep has anything to do."""
    if isinstance(db, pw.PostgresqlDatabase):
        earliest, outbox, enabled, pause_until, inactive_since, active, unslotted = _pg_probe(db)
    else:
        earliest, outbox, enabled, pause_until, inactive_since, active, unslotted = _cursor(
            db, _PROBE_SQL.format(false="0")).fetchone()
    earliest = _dt(earliest)
    return Probe(earliest is not None and earliest <= now, bool(outbox), enabled, pause_until, inactive_since,
                 earliest, bool(active), bool(unslotted))


#: The pass's other PostgreSQL statements prepared once per connection (statement name -> connections).
_PREPARED_AS: dict[str, weakref.WeakSet[Any]] = {}
#: Non-empty once a prepared statement went missing inside a transaction (a pooler in transaction mode).
_POOLED: list[bool] = []
_DOLLAR = re.compile(r"\$\d+")


def _pg_execute(db: pw.Database, name: str, sql: str, params: Sequence[Any]) -> Any:
    """``EXECUTE`` a statement (``$n`` parameters) prepared once per connection. The pass's statements select
    and join arrays to the table, and planning them cost several times their execution (the claim: 0.4 ms to
    plan, 0.1 ms to run), on the path between a slot and its send. A session that lost the statement (a
    pooler switched server connections) fails the pass; the loop reconnects, and the new connection
    prepares it again."""
    if _POOLED:  # prepared statements do not survive here: plain statements from now on
        return _cursor(db, _DOLLAR.sub("%s", sql), params)
    conn = db.connection()  # type: ignore[no-untyped-call]
    prepared = _PREPARED_AS.setdefault(name, weakref.WeakSet())
    if conn not in prepared:
        _cursor(db, f"PREPARE {name} AS {sql}")
        prepared.add(conn)
    try:
        return _cursor(db, f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
    except (pw.ProgrammingError, pw.OperationalError) as exc:
        if _lost_statement(exc):  # the pooler gave this transaction another server connection
            _POOLED.append(True)
            prepared.discard(conn)
            log.warning("the PostgreSQL session lost a prepared statement (a pooler in transaction mode?); "
                        "the scheduler uses plain statements from now on")
        raise


def _lost_statement(exc: BaseException) -> bool:
    """A prepared statement missing from the session (psycopg2 says ``InvalidSqlStatementName``; peewee files it
    as a programming or an operational error depending on its version)."""
    if type(exc.__cause__ or exc).__name__ == "InvalidSqlStatementName":
        return True
    return "prepared statement" in str(exc) and "does not exist" in str(exc)


def _pg_probe(db: pw.Database) -> Any:
    conn = db.connection()  # type: ignore[no-untyped-call]
    if conn not in _PREPARED:
        _cursor(db, "PREPARE hs_probe AS " + _PROBE_SQL.format(false="false"))
        _PREPARED.add(conn)
    try:
        return _cursor(db, "EXECUTE hs_probe").fetchone()
    except (pw.ProgrammingError, pw.OperationalError) as exc:  # the session lost it (a pooler switched server
        if not _lost_statement(exc):  # connections): prepare again
            raise
        _PREPARED.discard(conn)
        if db.in_transaction():  # type: ignore[no-untyped-call]
            raise
        return _pg_probe(db)


@dataclass(frozen=True)
class DueRow:
    """The columns of a due ``scheduled_job_type`` row that a pass reads."""

    id: int
    name: str
    method: str
    frequency: str
    cron_format: str
    queue: str
    timeout: int
    catchup: str
    catchup_limit: int
    overlap: str
    stopped: bool
    next_execution: datetime
    stopped_until: datetime | None = None
    has_active: bool = True  # a run of the job is queued or started (read in the same statement)


_DUE_COLUMNS = ("id, name, method, frequency, cron_format, queue, timeout, catchup, catchup_limit, overlap, "
                "stopped, next_execution, stopped_until")


#: Whether a due row's job has a queued or started run, answered from the active-runs partial index in the
#: statement that selects (and on PostgreSQL locks) the row: a pass reads the active runs (and asks RQ about
#: them) only for jobs that have some, instead of one more statement for every batch.
_HAS_ACTIVE = ("EXISTS (SELECT 1 FROM scheduled_job_log l WHERE l.job_id = scheduled_job_type.id "
               "AND l.status IN ('queued', 'started'))")


def select_due(db: pw.Database, now: datetime, limit: int) -> list[DueRow]:
    """Due rows through the ``next_execution`` index: the cost follows the due rows, not the table.

    On PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED``: concurrent passes take disjoint batches of
    due rows (see :data:`PG_BATCH`) instead of queueing behind one another.
    """
    params = [_sql_dt(db, now), False, limit]
    if isinstance(db, pw.PostgresqlDatabase):
        sql = (f"SELECT {_DUE_COLUMNS}, {_HAS_ACTIVE} FROM scheduled_job_type WHERE next_execution <= $1 "
               "AND removed = $2 ORDER BY next_execution, id LIMIT $3 FOR UPDATE SKIP LOCKED")
        rows = _pg_execute(db, "hs_select_due", sql, params).fetchall()
    else:
        sql = (f"SELECT {_DUE_COLUMNS}, {_HAS_ACTIVE} FROM scheduled_job_type WHERE next_execution <= ? "
               "AND removed = ? ORDER BY next_execution, id LIMIT ?")
        rows = _cursor(db, sql, params).fetchall()
    # a boolean stored as a word is read as that word says; a value that is neither (or a next_execution
    # that is not a time) is passed on as it is, for rows.usable to refuse
    return [DueRow(r[0], r[1], r[2], r[3], r[4] or "", r[5], r[6], r[7], r[8], r[9],
                   _flag_or_raw(r[10]), _dt_or_raw(r[11]), _dt_or_raw(r[12]), bool(r[13])) for r in rows]


def _flag_or_raw(value: Any) -> Any:
    parsed = flag(value)
    return value if parsed is None else parsed


def _dt_or_raw(value: Any) -> Any:
    try:
        return _dt(value)
    except ValueError:
        return value


def _ph(db: pw.Database) -> str:
    return "%s" if isinstance(db, pw.PostgresqlDatabase) else "?"


def _no_index(db: pw.Database) -> str:
    """SQLite's unary ``+``: keeps its planner from choosing the index of the column it prefixes (without it,
    ``rq_job_id IS NOT NULL`` draws it to the unique index on ``rq_job_id``, a scan of the whole ledger)."""
    return "" if isinstance(db, pw.PostgresqlDatabase) else "+"


def _cursor(db: pw.Database, sql: str, params: Sequence[Any] = ()) -> Any:
    return db.execute_sql(sql, params)  # type: ignore[no-untyped-call]


def _dt(value: Any) -> Any:
    """A timestamp column as a datetime (SQLite hands raw SQL back the text peewee stored)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _blocking(verdicts: list[Verdict] | None) -> str | None:
    for v in verdicts or ():
        if v.active:
            return v.blocking_reason
    return None


def active_runs(rows: Sequence[DueRow], conn: redis.Redis, now: datetime,
                bench_id: str | None = None) -> dict[int, list[Verdict]]:
    """For due rows with ``overlap='skip'``: their queued/started runs, judged against RQ (and settled in the
    ledger when RQ says they are over, abandoned or lost). One statement per chunk, on the ``(job, status)``
    index."""
    ids = [r.id for r in rows if r.overlap == Overlap.SKIP and not is_stopped(r.stopped, r.stopped_until, now)]
    if not ids:
        return {}
    timeouts = {r.id: r.timeout for r in rows}
    db = database_proxy.obj
    cols = "id, job_id, status, rq_job_id, enqueued_at, started_at, finished_at"
    active: list[ActiveRun] = []
    chunks: list[tuple[str, list[Any]]]
    if isinstance(db, pw.PostgresqlDatabase):
        chunks = [(f"SELECT {cols} FROM scheduled_job_log WHERE job_id = ANY(%s) AND status IN ('queued', 'started')",
                   [ids])]
    else:
        chunks = [(f"SELECT {cols} FROM scheduled_job_log WHERE job_id IN ({', '.join('?' * len(part))}) "
                   "AND status IN ('queued', 'started')", part)
                  for part in (list(ids[i:i + CHUNK]) for i in range(0, len(ids), CHUNK))]
    for sql, params in chunks:
        active += [ActiveRun(r[0], r[1], r[2], r[3], _dt(r[4]), _dt(r[5]), _dt(r[6]))
                   for r in _cursor(db, sql, params).fetchall()]
    return settle(active, conn, now, timeouts, bench_id)


@dataclass(frozen=True)
class ActiveRun:
    """The columns of a queued/started ledger row that :func:`settle` reads."""

    id: int
    job_id: int
    status: str
    rq_job_id: str | None
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


def settle(active: Sequence[ScheduledJobLog | ActiveRun], conn: redis.Redis, now: datetime,
           timeouts: dict[int, int], bench_id: str | None = None) -> dict[int, list[Verdict]]:
    """Judge each active ledger row against RQ and write the outcome of the ones that are over.
    With ``bench_id``, a row RQ lost is re-sent only if no worker ever started it
    (:mod:`hookscheduler.worker.marks`)."""
    if not active:
        return {}
    statuses = send.job_statuses(conn, [a.rq_job_id for a in active if a.rq_job_id])
    alive = send.workers_alive(conn, [str(a.rq_job_id) for a in active
                                      if a.rq_job_id and statuses.get(a.rq_job_id) == "started"])
    gone = [str(a.rq_job_id) for a in active if a.rq_job_id and a.status == QUEUED and a.enqueued_at is not None
            and statuses.get(a.rq_job_id) is None]
    began = marks.started(conn, bench_id, gone) if bench_id and gone else set()
    epoch = marks.redis_epoch(conn, bench_id) if bench_id and gone else datetime.min
    # RQ says "over" but the ledger does not: was that a refused second delivery? (its outcome is not the run's)
    over = [str(a.rq_job_id) for a in active if a.rq_job_id and statuses.get(a.rq_job_id) in RQ_OVER]
    refused = marks.refusals(conn, bench_id, over) if bench_id and over else {}
    out: dict[int, list[Verdict]] = {}
    for row in active:
        ref = refused.get(row.rq_job_id) if row.rq_job_id else None
        verdict = judge(db_status=row.status, enqueued_at=row.enqueued_at, started_at=row.started_at,
                        rq_status=statuses.get(row.rq_job_id) if row.rq_job_id else None,
                        timeout=timeouts.get(row.job_id, 300), now=now, rq_job_id=row.rq_job_id,
                        refused_at=ref.at if ref else None, outcome=ref.outcome if ref else None,
                        alive=alive.get(str(row.rq_job_id)) if row.rq_job_id else None)
        if verdict.resend and row.rq_job_id in began:  # it ran (or runs) without the ledger knowing: not again
            verdict = Verdict(False, LedgerStatus.FAILED, UNRECORDED)
        elif verdict.resend and row.enqueued_at is not None and row.enqueued_at < epoch:
            # sent to a Redis that restarted since: its start mark may be lost with the job (I5)
            verdict = Verdict(False, LedgerStatus.FAILED, LOST_UNKNOWN)
        out.setdefault(row.job_id, []).append(verdict)
        if verdict.resend:
            (ScheduledJobLog.update(enqueued_at=None, modified_at=now,
                                    reason="re-sent: Redis lost the job before it started")
             .where((ScheduledJobLog.id == row.id) & (ScheduledJobLog.status == QUEUED)).execute())
        elif not verdict.active:
            values: dict[Any, Any] = {"status": verdict.status, "reason": verdict.reason, "modified_at": now}
            if row.finished_at is None:
                values["finished_at"] = now
            (ScheduledJobLog.update(values)
             .where((ScheduledJobLog.id == row.id) & ScheduledJobLog.status.in_(ACTIVE_STATUSES)).execute())
    return out


def _sql_dt(db: pw.Database, value: datetime) -> Any:
    # the same text form peewee stores in SQLite, so equality in the claim compares like with like
    return value.isoformat(sep=" ") if isinstance(db, pw.SqliteDatabase) else value


def claim(db: pw.Database, decisions: Sequence[Decision]) -> set[int]:
    """Compare-and-set every decision's row from the slot it served to its next slot; returns the won ids.

    One statement per batch on PostgreSQL (arrays joined to the table through its primary key), one per
    :data:`CHUNK` rows on SQLite."""
    if not decisions:
        return set()
    table = ScheduledJobType._meta.table_name
    if isinstance(db, pw.PostgresqlDatabase):
        sql = (f"UPDATE {table} AS t SET next_execution = v.new_next "
               "FROM unnest($1::integer[], $2::timestamp[], $3::timestamp[]) AS v(id, old, new_next) "
               "WHERE t.id = v.id AND t.next_execution = v.old RETURNING t.id")
        params: list[Any] = [[d.job.id for d in decisions], [d.job.next_execution for d in decisions],
                             [d.next_execution for d in decisions]]
        return {row[0] for row in _pg_execute(db, "hs_claim", sql, params).fetchall()}
    won: set[int] = set()
    for i in range(0, len(decisions), CHUNK):
        chunk = decisions[i:i + CHUNK]
        params = []
        for d in chunk:
            params += [d.job.id, _sql_dt(db, d.job.next_execution), _sql_dt(db, d.next_execution)]
        values = ", ".join(["(?, ?, ?)"] * len(chunk))
        sql = (f"UPDATE {table} SET next_execution = v.column3 FROM (VALUES {values}) AS v "
               f"WHERE {table}.id = v.column1 AND {table}.next_execution = v.column2 RETURNING {table}.id")
        won.update(row[0] for row in _cursor(db, sql, params).fetchall())
    return won


def record(ctx: SiteContext, decisions: Sequence[Decision], rows: dict[int, DueRow], now: datetime,
           result: PassResult) -> list[send.Run]:
    """Write the claimed decisions' log rows (same transaction as the claim); return the runs to send."""
    bench_id = ctx.bench.bench_id
    inserts: list[tuple[Any, ...]] = []
    runs: list[send.Run] = []
    extend = _skips_to_extend(decisions)
    for d in decisions:
        row = rows[d.job.id]
        for e in d.entries:
            if e.status == SKIPPED:
                result.skipped += e.slots
            elif e.status == LedgerStatus.MISSED:
                result.missed += e.slots
            if e.status == SKIPPED and d.job.id in extend:
                _extend_skip(extend[d.job.id], e, now)
                continue
            rq_id = scheduled_job_id(bench_id, ctx.name, row.name, e.scheduled_for, e.trigger) \
                if e.status == QUEUED else None
            inserts.append(_log_values(row, e, rq_id, now))
            if rq_id:
                result.fired += 1
                runs.append(send.Run(rq_id, ctx.name, row.name, row.method, row.queue, row.timeout,
                                     e.scheduled_for, e.trigger, fires_within_hour(row.frequency, row.cron_format)))
    early = served_early(runs, ctx.name)
    if early:  # slots a step under a clock ahead already ran: once per slot (schedule/excursion.py)
        inserts = [v for v in inserts if v[_LOG_COLUMNS.index("rq_job_id")] not in early]
        runs = [r for r in runs if r.rq_job_id not in early]
        result.fired -= len(early)
    insert_log_rows(database_proxy.obj, inserts)
    end_stops([d.job for d in decisions if d.job.stopped and d.job.stopped_until is not None
               and d.job.stopped_until <= now])
    return runs


def end_stops(jobs: Sequence[JobState]) -> None:
    """Stops whose ``--until`` has come and whose slots before it the pass has just decided: clear the flag (in
    the claim's transaction), so that every reader of ``stopped`` -- ``jobs run``, the dashboard, SQL -- sees
    the job enabled again; the audit columns say the stop ended by itself at its time."""
    T = ScheduledJobType
    for job in jobs:
        (T.update(stopped=False, stopped_until=None, stopped_note=None, stopped_by="--until",
                  stopped_at=job.stopped_until)
         .where((T.id == job.id) & (T.stopped == True) & (T.stopped_until == job.stopped_until))  # noqa: E712
         .execute())


_LOG_COLUMNS = ("job_id", "job_name", "scheduled_for", "trigger", "status", "reason", "slots", "first_slot",
                "last_slot", "queue", "rq_job_id", "created_at", "modified_at")
_PG_LOG_TYPES = ("integer", "text", "timestamp", "text", "text", "text", "integer", "timestamp", "timestamp", "text",
                 "text", "timestamp", "timestamp")


def _log_values(row: DueRow, e: Entry, rq_id: str | None, now: datetime) -> tuple[Any, ...]:
    """One ledger row, in :data:`_LOG_COLUMNS` order."""
    return (row.id, row.name, e.scheduled_for, e.trigger, e.status, e.reason, e.slots,
            e.first_slot or e.scheduled_for, e.last_slot or e.scheduled_for, row.queue, rq_id, now, now)


def insert_log_rows(db: pw.Database, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert ledger rows: one statement of arrays on PostgreSQL, ``executemany`` on SQLite."""
    if not rows:
        return
    cols = ", ".join(_LOG_COLUMNS)
    if isinstance(db, pw.PostgresqlDatabase):
        arrays = ", ".join(f"%s::{t}[]" for t in _PG_LOG_TYPES)
        _cursor(db, f"INSERT INTO scheduled_job_log ({cols}) SELECT * FROM unnest({arrays})",
                [list(col) for col in zip(*rows, strict=True)])
        return
    conv = [tuple(v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in r) for r in rows]
    cursor = db.cursor()  # type: ignore[no-untyped-call]
    cursor.executemany(f"INSERT INTO scheduled_job_log ({cols}) VALUES ({', '.join('?' * len(_LOG_COLUMNS))})",
                       conv)


def _skips_to_extend(decisions: Sequence[Decision]) -> dict[int, ScheduledJobLog]:
    """A job that stays stopped (or a scheduler that stays paused) extends one ``skipped`` row per stretch
    instead of writing a row per slot: the latest row of the job, if it is a skip for the same reason."""
    candidates = {d.job.id: d.entries[0].reason for d in decisions
                  if len(d.entries) == 1 and d.entries[0].status == SKIPPED}
    if not candidates:
        return {}
    ids = list(candidates)
    latest: dict[int, ScheduledJobLog] = {}
    for i in range(0, len(ids), CHUNK):
        newest = (ScheduledJobLog.select(pw.fn.MAX(ScheduledJobLog.id))
                  .where(ScheduledJobLog.job.in_(ids[i:i + CHUNK])).group_by(ScheduledJobLog.job))
        for log_row in ScheduledJobLog.select().where(ScheduledJobLog.id.in_(newest)):
            latest[log_row.job_id] = log_row
    return {jid: lr for jid, lr in latest.items() if lr.status == SKIPPED and lr.reason == candidates[jid]}


def _extend_skip(row: ScheduledJobLog, e: Entry, now: datetime) -> None:
    (ScheduledJobLog.update(slots=ScheduledJobLog.slots + e.slots, last_slot=e.last_slot or e.scheduled_for,
                            scheduled_for=e.scheduled_for, modified_at=now)
     .where(ScheduledJobLog.id == row.id).execute())


def _send(ctx: SiteContext, conn: redis.Redis, runs: list[send.Run], result: PassResult) -> None:
    """Send committed runs; on a Redis error they stay in the outbox for the next pass (nothing is lost)."""
    if not runs:
        return
    try:
        _observe_epoch(conn, ctx.bench.bench_id)
        try:
            sent = send.send_runs(conn, ctx.bench.bench_id, runs, **ctx.site.settings.rq_ttls)
        except (ValueError, TypeError):  # one run RQ refuses (a timeout of 0 set with SQL) must not hold the rest
            sent = _send_one_by_one(ctx, conn, runs)
        failpoint("after_send")  # in Redis, not marked sent: a re-send must not double it
    except redis.exceptions.RedisError as exc:
        result.send_error = f"{type(exc).__name__}: {exc}"
        # reported by the caller (the loop logs an outage once); here it is only detail
        log.debug("site %s: could not send %d run(s) to Redis (%s); they stay in the outbox",
                    ctx.name, len(runs), result.send_error)
        return
    record_sent(sent.ids, sent.at)
    result.sent_ids += sent.ids


#: Seconds between two checks that Redis's epoch key is set before a send (a send only needs it to exist with a
#: moment before its runs; a restart in between makes their loss read as unknown, the safe side).
EPOCH_EVERY = 10.0
_epoch_checked: dict[str, float] = {}


def _observe_epoch(conn: redis.Redis, bench_id: str) -> None:
    """Make sure the epoch (:func:`.marks.redis_epoch`) predates the runs about to be sent: a run lost later
    must be judged against the Redis it was sent to."""
    now = time.monotonic()
    if now - _epoch_checked.get(bench_id, -EPOCH_EVERY) < EPOCH_EVERY:
        return
    marks.redis_epoch(conn, bench_id)
    _epoch_checked[bench_id] = now


def _send_one_by_one(ctx: SiteContext, conn: redis.Redis, runs: list[send.Run]) -> send.Sent:
    """Send each run alone; a run RQ refuses is recorded failed with why (it would block the outbox for ever)."""
    ids: list[str] = []
    at = utcnow()
    for run in runs:
        try:
            sent = send.send_runs(conn, ctx.bench.bench_id, [run], **ctx.site.settings.rq_ttls)
        except (ValueError, TypeError) as exc:
            reason = f"not sent: RQ refused it ({exc}); {FIX_HINT}"
            report_once(ctx.name, run.job_name, f"its run was refused by RQ: {exc}")
            with write_txn(ctx.database()):
                (ScheduledJobLog.update(status=LedgerStatus.FAILED, reason=reason, finished_at=utcnow(),
                                        modified_at=utcnow())
                 .where((ScheduledJobLog.rq_job_id == run.rq_job_id) & (ScheduledJobLog.status == QUEUED))
                 .execute())
            continue
        ids += sent.ids
        at = sent.at
    return send.Sent(ids, at)


def record_sent(rq_ids: list[str], now: datetime) -> None:
    """Close the outbox rows of runs now in RQ (one statement on PostgreSQL, one per chunk on SQLite)."""
    if not rq_ids:
        return
    db = database_proxy.obj
    if isinstance(db, pw.PostgresqlDatabase):
        _cursor(db, "UPDATE scheduled_job_log SET enqueued_at = %s WHERE rq_job_id = ANY(%s) AND enqueued_at IS NULL",
                [now, rq_ids])
        return
    for i in range(0, len(rq_ids), CHUNK):
        part = rq_ids[i:i + CHUNK]
        _cursor(db, f"UPDATE scheduled_job_log SET enqueued_at = ? WHERE rq_job_id IN ({', '.join('?' * len(part))}) "
                "AND enqueued_at IS NULL", [_sql_dt(db, now), *part])


def resend_outbox(ctx: SiteContext, conn: redis.Redis, result: PassResult | None = None,
                  limit: int = 5000) -> int:
    """Send every claimed-but-unsent run (a previous sender died, or Redis was down, or lost it), found through
    the outbox index (its predicate spelled with literals, so SQLite uses it too)."""
    db = ctx.database()
    ph = _ph(db)
    pending = _cursor(db, "SELECT l.rq_job_id, l.job_name, t.method, l.queue, t.timeout, l.scheduled_for, l.trigger "
                      "FROM scheduled_job_log l JOIN scheduled_job_type t ON t.id = l.job_id "
                      "WHERE l.status = 'queued' AND l.enqueued_at IS NULL "
                      f"AND {_no_index(db)}l.rq_job_id IS NOT NULL ORDER BY l.id LIMIT {ph}", [limit]).fetchall()
    if not pending:
        return 0
    runs = [send.Run(str(p[0]), ctx.name, p[1], p[2], p[3] or "default", p[4], _dt(p[5]), p[6])
            for p in pending]
    scratch = result or PassResult(site=ctx.name, now=utcnow())
    before = len(scratch.sent_ids)
    _send(ctx, conn, runs, scratch)
    return len(scratch.sent_ids) - before


def reconcile_active(ctx: SiteContext, conn: redis.Redis, now: datetime | None = None, limit: int = 5000) -> int:
    """Settle every queued/started ledger row that RQ says is over, abandoned or lost, whether or not its
    job is due (a monthly job's dead run must not read ``started`` for a month). Returns rows settled."""
    now = now or utcnow()
    db = ctx.database()
    with write_txn(db):
        # SQLite would rather scan the whole ledger in id order than sort the few active rows: name the index
        hint = "" if isinstance(db, pw.PostgresqlDatabase) else "INDEXED BY scheduled_job_log_active "
        rows = _cursor(db, "SELECT l.id, l.job_id, l.status, l.rq_job_id, l.enqueued_at, l.started_at, l.finished_at, "
                       f"t.timeout FROM scheduled_job_log l {hint}JOIN scheduled_job_type t ON t.id = l.job_id "
                       f"WHERE l.status IN ('queued', 'started') ORDER BY l.id LIMIT {_ph(db)}", [limit]).fetchall()
        active = [ActiveRun(r[0], r[1], r[2], r[3], _dt(r[4]), _dt(r[5]), _dt(r[6])) for r in rows]
        verdicts = settle(active, conn, now, {r[1]: r[7] for r in rows}, ctx.bench.bench_id)
    settled = sum(1 for vs in verdicts.values() for v in vs if not v.active or v.resend)
    if any(v.resend for vs in verdicts.values() for v in vs):
        resend_outbox(ctx, conn)
    _requeue_orphans(db, conn, active, now, ctx.bench.bench_id)
    return settled


def _requeue_orphans(db: pw.Database, conn: redis.Redis, active: Sequence[ScheduledJobLog | ActiveRun], now: datetime,
                     bench_id: str) -> None:
    """Runs a worker took off the queue and died with (or lost Redis) before starting: see :mod:`.orphans`."""
    grace = timedelta(seconds=ORPHAN_GRACE)
    candidates = [str(a.rq_job_id) for a in active if a.status == QUEUED and a.rq_job_id
                  and a.enqueued_at is not None and now - a.enqueued_at > grace]
    pushed = requeue_orphans(conn, candidates, bench_id)
    if pushed:
        with write_txn(db):
            (ScheduledJobLog.update(modified_at=now, reason="re-queued: a worker took it off the queue and "
                                                            "stopped before starting it")
             .where(ScheduledJobLog.rq_job_id.in_(pushed) & (ScheduledJobLog.status == QUEUED)).execute())


def repair_missing_slots(ctx: SiteContext, now: datetime | None = None) -> int:
    """Give a next slot to active rows that have none (e.g. ``next_execution`` set to NULL with SQL), forward
    from now: a row without a slot would otherwise never fire, silently. Returns how many were repaired."""
    now = now or utcnow()
    db = ctx.database()
    repaired = 0
    with write_txn(db):
        rows = list(ScheduledJobType.select().where(ScheduledJobType.next_execution.is_null()
                                                    & (ScheduledJobType.removed == False)))  # noqa: E712
        for row in rows:
            nxt = next_slot(row.frequency, row.cron_format, now, ctx.calendar)
            repaired += (ScheduledJobType.update(next_execution=nxt)
                         .where((ScheduledJobType.id == row.id) & ScheduledJobType.next_execution.is_null())
                         .execute())
    if repaired:
        log.warning("site %s: %d job(s) had no next_execution; rescheduled forward from now", ctx.name, repaired)
    return repaired


def earliest_next(ctx: SiteContext) -> datetime | None:
    """The next moment this site has something due (one indexed MIN)."""
    ctx.database()
    value = (ScheduledJobType.select(pw.fn.MIN(ScheduledJobType.next_execution))
             .where(ScheduledJobType.removed == False).scalar())  # noqa: E712
    if isinstance(value, str):  # SQLite aggregates lose the column type
        return datetime.fromisoformat(value)
    return value  # type: ignore[no-any-return]
