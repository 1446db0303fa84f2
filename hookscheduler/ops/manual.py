"""Runs asked for by a person rather than by the clock: ``jobs run`` (trigger ``manual``) and
``trigger-scheduler-event`` (trigger ``event``).

They go through the same ledger and outbox as scheduled runs: the log row (``queued``, ``enqueued_at`` NULL,
a deterministic RQ id built from the moment of the request) commits first, then it is sent and marked sent.
A crash between the two leaves an outbox row that the next pass sends, and a second send is refused by RQ's
unique enqueue, so an operator's run is neither lost nor doubled. The overlap policy applies as it does to
the schedule: while a run of the job is queued or running, the request is logged as ``skipped`` (with the
reason) unless ``force``. Stopped jobs are refused unless ``force``: a job is usually stopped because it
must not run. So is every request while the site is in maintenance mode (Frappe's wrapper of scheduled runs
refuses to run any of them then, the "Execute" button's included): :func:`refuse_in_maintenance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
import redis

from ..broker.keys import scheduled_job_id
from ..context import SiteContext
from ..exceptions import HookSchedulerError, JobNotFound, ServiceUnavailable, shown
from ..schedule import send
from ..schedule.outbox import record_sent
from ..schedule.reconcile import settle
from ..states import LedgerStatus, Overlap, Trigger
from ..store import job_reads, store_for
from ..store.database import write_txn
from ..store.models import ScheduledJobType, database_proxy, utcnow
from .jobs import actor, event_jobs, events, get_job, stopped_now


@dataclass(frozen=True)
class Outcome:
    """What became of one job's request: ``queued`` (sent to RQ), ``skipped`` (overlap) or ``left out``
    (stopped, for an event)."""

    job_name: str
    status: str
    rq_job_id: str | None = None
    reason: str | None = None
    queue: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"job_name": self.job_name, "status": self.status, "rq_job_id": self.rq_job_id,
                "reason": self.reason, "queue": self.queue}


def run_job(ctx: SiteContext, conn: redis.Redis, name: str, force: bool = False, who: str | None = None,
            now: datetime | None = None) -> Outcome:
    """``jobs run NAME``: enqueue NAME now, logged as trigger ``manual``."""
    ctx.database()
    now = now or utcnow()
    refuse_in_maintenance(ctx, force, "jobs run")
    row = get_job(name)
    _refuse_unrunnable(row, force, now)
    return enqueue_now(ctx, conn, [row], Trigger.MANUAL, force, f"run by {who or actor()} (jobs run)", now)[0]


def resolve_target(target: str, include_stopped: bool) -> tuple[str, list[ScheduledJobType]]:
    """An event name (``daily``), a job name or a method path -> (kind, jobs). Unknown -> JobNotFound."""
    if target in events():
        return "event", event_jobs(target, include_stopped=True)
    row = job_reads.by_name(target, include_removed=False)
    if row is not None:
        return "job", [row]
    rows = job_reads.by_method(target)
    if rows:
        return "method", rows
    raise JobNotFound(f"event {shown(target)} does not exist: it is neither an event ({', '.join(events())}) nor a "
                      "job name or method of this site; see `hookscheduler jobs list`")


def trigger_event(ctx: SiteContext, conn: redis.Redis, target: str, force: bool = False, who: str | None = None,
                  now: datetime | None = None) -> tuple[str, list[Outcome]]:
    """``trigger-scheduler-event``: every job of an event (stopped ones left out unless ``force``), or the
    job(s) a name or method designates, enqueued now as trigger ``event``."""
    ctx.database()
    now = now or utcnow()
    refuse_in_maintenance(ctx, force, "trigger-scheduler-event")
    kind, rows = resolve_target(target, include_stopped=force)
    if kind != "event":
        for row in rows:
            _refuse_unrunnable(row, force, now)
    left_out = [Outcome(r.name, "left out", reason="job stopped (use --force to include it)", queue=r.queue)
                for r in rows if stopped_now(r, now) and not force]
    runnable = [r for r in rows if force or not stopped_now(r, now)]
    reason = f"trigger-scheduler-event {target} by {who or actor()}"
    outcomes = enqueue_now(ctx, conn, runnable, Trigger.EVENT, force, reason, now) if runnable else []
    return kind, outcomes + left_out


def refuse_in_maintenance(ctx: SiteContext, force: bool, what: str,
                          hint: str = "pass --force to run it anyway") -> None:
    """Refuse a request to run jobs now while the site's config sets ``maintenance_mode`` (unless ``force``)."""
    if ctx.site.settings.maintenance_mode and not force:
        raise HookSchedulerError(f"site {ctx.name} is in maintenance mode (maintenance_mode is set); {what} "
                                 f"refused: {hint}, or `hookscheduler set-config maintenance_mode 0` first")


def _refuse_unrunnable(row: ScheduledJobType, force: bool, now: datetime) -> None:
    if row.removed:
        raise HookSchedulerError(f"job {row.name!r} was removed from hooks; it cannot be run "
                                 "(`hookscheduler migrate` brings it back if it is declared again)")
    if stopped_now(row, now) and not force:
        by = f" by {row.stopped_by}" if row.stopped_by else ""
        note = f": {row.stopped_note}" if row.stopped_note else ""
        raise HookSchedulerError(f"job {row.name!r} is stopped{by}{note}; pass --force to run it anyway, "
                                 f"or `hookscheduler jobs enable {row.name}`")


def enqueue_now(ctx: SiteContext, conn: redis.Redis, rows: Sequence[ScheduledJobType], trigger: str, force: bool,
                reason: str, now: datetime | None = None) -> list[Outcome]:
    """Record one run per row (or a skip, under overlap) in one transaction, then send the runs."""
    now = now or utcnow()
    db = ctx.database()
    bench_id = ctx.bench.bench_id
    outcomes: list[Outcome] = []
    runs: list[send.Run] = []
    with write_txn(db):
        blocked = {} if force else _blocked(rows, conn, now, bench_id)
        for i, row in enumerate(rows):
            # distinct instants keep the deterministic ids distinct when one request covers several rows
            slot = now + timedelta(microseconds=i)
            why = blocked.get(row.id)
            if why:
                text = f"{trigger} run not enqueued: {why} (overlap=skip; --force runs it anyway)"
                _insert(row, slot, trigger, LedgerStatus.SKIPPED, text, None, now)
                outcomes.append(Outcome(row.name, LedgerStatus.SKIPPED, None, text, row.queue))
                continue
            rq_id = scheduled_job_id(bench_id, ctx.name, row.name, slot, trigger)
            _insert(row, slot, trigger, LedgerStatus.QUEUED, reason, rq_id, now)
            runs.append(send.Run(rq_id, ctx.name, row.name, row.method, row.queue, row.timeout, slot, trigger))
            outcomes.append(Outcome(row.name, LedgerStatus.QUEUED, rq_id, reason, row.queue))
    send_recorded(ctx, conn, runs)
    return outcomes


def _blocked(rows: Sequence[ScheduledJobType], conn: redis.Redis, now: datetime, bench_id: str) -> dict[int, str]:
    """Job id -> why its previous run still blocks it (overlap ``skip`` only), judged against RQ."""
    ids = [r.id for r in rows if r.overlap == Overlap.SKIP]
    if not ids:
        return {}
    store = store_for(database_proxy.obj)
    verdicts = settle(store, store.active_runs_of(ids), conn, now, {r.id: r.timeout for r in rows}, bench_id)
    out: dict[int, str] = {}
    for job_id, vs in verdicts.items():
        for v in vs:
            if v.active and v.blocking_reason:
                out[job_id] = v.blocking_reason
                break
    return out


def _insert(row: ScheduledJobType, slot: datetime, trigger: str, status: str, reason: str, rq_id: str | None,
            now: datetime) -> None:
    store_for(database_proxy.obj).add_ledger_row(
        (row.id, row.name, slot, trigger, status, reason, 1, slot, slot, row.queue, rq_id, now, now),
        finished_at=now if status == LedgerStatus.SKIPPED else None)


def send_recorded(ctx: SiteContext, conn: redis.Redis, runs: list[send.Run]) -> None:
    """Send committed runs and mark them sent; on a Redis error they stay in the outbox for the next pass."""
    if not runs:
        return
    try:
        sent = send.send_runs(conn, ctx.bench.bench_id, runs, **ctx.site.settings.rq_ttls)
    except redis.exceptions.RedisError as exc:
        raise ServiceUnavailable(
            f"recorded {len(runs)} run(s) but could not send them to Redis ({type(exc).__name__}); they stay in "
            "the outbox and the next scheduler tick sends them") from None
    db: pw.Database = ctx.database()
    with write_txn(db):
        record_sent(ctx, sent)


__all__ = ["Outcome", "enqueue_now", "resolve_target", "run_job", "send_recorded", "trigger_event"]
