"""``jobs explain NAME [--at T]``: why a job did, or did not, run at a given moment.

The answer is assembled from what the system already records, so it is evidence rather than a guess: the
job's slots around T (from its frequency or cron, in the site's zone), the ledger rows that cover them, the
stop flag (who, when, why), the scheduler switches and the liveness of the ``schedule`` process, and the
overlap state (runs of the job still queued or running). :func:`slots_around`, :func:`timeline` and
:func:`verdict` are pure; :func:`explain` gathers their inputs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import redis

from ..broker.connection import check_redis
from ..context import SiteContext
from ..exceptions import ServiceUnavailable
from ..schedule.decide import is_stopped
from ..states import REQUEST_TRIGGERS, LedgerStatus, Trigger
from ..store import ledger_reads
from ..store.models import ScheduledJobType, utcnow
from ..timing.calendar import SiteCalendar, next_slot
from ..timing.frequencies import fires_within_hour
from .history import error_summary, log_dict
from .jobs import JOB_COLUMNS, get_job
from .retention import FREQUENT_KEEP
from .scheduler import activity, heartbeats, last_tick, scheduler_state

#: How far back a cron slot is looked for before giving up (a yearly cron needs a year).
MAX_LOOKBACK = timedelta(days=3 * 366)
_FIRST_SPAN = {"Hourly": timedelta(hours=1), "Daily": timedelta(days=1), "Weekly": timedelta(days=7),
               "Monthly": timedelta(days=31), "Yearly": timedelta(days=366), "Annual": timedelta(days=366)}


_TZ: ContextVar[tzinfo] = ContextVar("explain_tz", default=timezone.utc)


def _fmt(dt: datetime | None) -> str:
    """Naive UTC -> local time with its zone abbreviation (the zone of the verdict being written)."""
    if dt is None:
        return "-"
    return dt.replace(tzinfo=timezone.utc).astimezone(_TZ.get()).strftime("%Y-%m-%d %H:%M:%S %Z")


def slots_around(frequency: str, cron_format: str, at: datetime, calendar: SiteCalendar, anchor: datetime,
                 before: int = 3, after: int = 3) -> tuple[list[datetime], list[datetime]]:
    """(up to ``before`` slots at or before ``at``, ascending; ``after`` slots strictly after ``at``).

    ``All`` slots lie on the grid through ``anchor`` (the row's stored next slot) in both directions; cron
    slots are found by walking forward from ever earlier starting points, so no backwards cron maths is needed.
    """
    if calendar.cron_of(frequency, cron_format) is None:
        step = timedelta(seconds=calendar.tick_interval)
        k = (at - anchor) // step
        last = anchor + k * step
        return [last - i * step for i in reversed(range(before))], [last + i * step for i in range(1, after + 1)]
    # a cron's first window is a minute (a seconds-field cron fires up to 60 times in it), widened until it
    # holds ``before`` slots; the walk keeps only the last ones, so a dense window cannot stop short of ``at``
    span = _FIRST_SPAN.get(frequency.split(" ")[0], timedelta(minutes=1))
    found: deque[datetime] = deque(maxlen=before)
    while True:
        found.clear()
        cursor = at - span * before
        while (cursor := next_slot(frequency, cron_format, cursor, calendar)) <= at:
            found.append(cursor)
        if len(found) >= before or span * before >= MAX_LOOKBACK:
            break
        span *= 4
    later: list[datetime] = []
    cursor = at
    for _ in range(after):
        cursor = next_slot(frequency, cron_format, cursor, calendar)
        later.append(cursor)
    return list(found), later


def covers(row: dict[str, Any], slot: datetime) -> bool:
    """Does a ledger row decide about ``slot``? (Manual and event runs are requests, not slots.)"""
    if row["trigger"] in REQUEST_TRIGGERS:
        return False
    first = row["first_slot"] or row["scheduled_for"]
    last = row["last_slot"] or row["scheduled_for"]
    return bool(first <= slot <= last)


def timeline(slots: Sequence[datetime], rows: Sequence[dict[str, Any]], now: datetime,
             removed_at: datetime | None = None) -> list[dict[str, Any]]:
    """Each slot with the ledger row that covers it (its status), ``upcoming`` or ``no record``; a slot at or
    after the job's removal from hooks is ``removed`` (a removed job has no upcoming slots)."""
    out = []
    for slot in slots:
        row = next((r for r in rows if covers(r, slot)), None)
        if row:
            status = row["status"]
        elif removed_at is not None and slot >= removed_at:
            status = "removed"
        else:
            status = "upcoming" if slot > now else "no record"
        out.append({"slot": slot, "status": status, "trigger": row["trigger"] if row else None,
                    "log_id": row["id"] if row else None, "reason": row["reason"] if row else None})
    return out


@dataclass
class Facts:
    """What :func:`verdict` reads: the job, the scheduler now, and the ledger around the slot."""

    job: dict[str, Any]
    slot: datetime | None
    now: datetime
    rows: list[dict[str, Any]]
    scheduler_status: str
    scheduler_reason: str | None
    scheduler_alive: bool | None  # None: unknown (Redis unreachable)
    last_tick: datetime | None
    active: list[dict[str, Any]] = field(default_factory=list)
    retention_days: int = 30
    oldest_log: datetime | None = None
    tz: tzinfo = timezone.utc  # the zone times are written in
    resume_at: datetime | None = None  # the scheduler is paused until then (``scheduler pause --until``)
    frequent: bool = False  # the job fires more than once an hour: its old successful runs are thinned
    first_slot: datetime | None = None  # the job's first slot after its creation, by its schedule


def verdict(f: Facts) -> str:
    """One line: did the slot run, and if not, why (pure; times in ``f.tz``)."""
    token = _TZ.set(f.tz)
    try:
        return _verdict(f)
    finally:
        _TZ.reset(token)


def _verdict(f: Facts) -> str:
    job, slot = f.job, f.slot
    if slot is None:
        return "no slot of this job falls at or before that moment"
    if slot <= job["created_at"]:
        first = _first_slot(f)
        what = "predates the job" if slot < job["created_at"] else "is the moment the job was created"
        return (f"did not run: the slot {_fmt(slot)} {what} (created {_fmt(job['created_at'])}); a new job never "
                f"fires at once{first}")
    row = next((r for r in f.rows if covers(r, slot)), None)
    if row is not None:
        return _from_row(row, slot)
    if job["removed"] and job["removed_at"] and job["removed_at"] <= slot:
        will = "will not run" if slot > f.now else "did not run"
        return f"{will}: the job was removed from hooks at {_fmt(job['removed_at'])}; it has no upcoming slots"
    if slot > f.now:
        return _future(f, slot)
    if job["next_execution"] is not None and job["next_execution"] <= slot:
        if f.scheduler_reason:
            return f"not run yet: the slot is due and {_held(f)}"
        why = _not_served(f)
        return f"not run yet: the slot is due but no scheduler pass has served it ({why})"
    if f.frequent and slot < f.now - FREQUENT_KEEP:
        return (f"no record: the job fires more than once an hour, so after {FREQUENT_KEEP.total_seconds() / 3600:g} h "
                "its successful runs are thinned to the last one of each hour (failures, missed and skipped slots "
                "are kept); this slot's run, if it ran, was one of them")
    if f.oldest_log is not None and slot < f.oldest_log and slot < f.now - timedelta(days=f.retention_days):
        return (f"no record: the log of that day was pruned (log_retention_days = {f.retention_days}, "
                f"oldest row {_fmt(f.oldest_log)})")
    return ("no record: no ledger row covers this slot and the job's next slot had already moved past it "
            "(its schedule was changed by migrate, or log rows were deleted)")


def _first_slot(f: Facts) -> str:
    """The job's first slot, said in the right tense; the row's ``next_execution`` is only its *next* slot (after
    a few runs it is far past the first, which the ledger shows), so it is named as such when the first is
    unknown."""
    if f.first_slot is not None:
        tense = "is" if f.first_slot > f.now else "was"
        return f"; its first slot {tense} {_fmt(f.first_slot)}"
    if f.job["next_execution"] is not None:
        return f"; its next slot is {_fmt(f.job['next_execution'])}"
    return ""


def _from_row(row: dict[str, Any], slot: datetime) -> str:
    status, slots = row["status"], int(row["slots"] or 1)
    late = (f"ran late: one catch-up run at {_fmt(row['scheduled_for'])} covered {slots} slots "
            f"({_fmt(row['first_slot'])} .. {_fmt(row['last_slot'])}); " if row["trigger"] == Trigger.CATCH_UP else "")
    if status == LedgerStatus.COMPLETE:
        took = f" in {row['duration']:.1f}s" if row["duration"] is not None else ""
        return f"{late or 'ran: '}completed at {_fmt(row['finished_at'])}{took} (rq {row['rq_job_id']})"
    if status == LedgerStatus.FAILED:
        err = error_summary(row["traceback"]) or row["reason"] or "no traceback recorded"
        return f"{late or 'ran: '}FAILED at {_fmt(row['finished_at'])}: {err}"
    if status == LedgerStatus.STARTED:
        return f"{late or ''}running since {_fmt(row['started_at'])} on {row['worker'] or '?'}"
    if status == LedgerStatus.QUEUED:
        if row["enqueued_at"] is None:
            # I10: a run claimed ahead of its slot is sent at its slot (a moment away), no earlier
            return f"{late}claimed but not yet sent to Redis (outbox; sent at its slot, or by the next tick after it)"
        return f"{late}queued since {_fmt(row['enqueued_at'])}, waiting for a worker on queue {row['queue']!r}"
    what = "skipped" if status == LedgerStatus.SKIPPED else "missed"
    span = f" ({slots} slots {_fmt(row['first_slot'])} .. {_fmt(row['last_slot'])})" if slots > 1 else ""
    return f"did not run: {what}{span}: {row['reason'] or 'no reason recorded'}"


def _not_served(f: Facts) -> str:
    if f.scheduler_alive is None:
        return "scheduler liveness unknown: Redis unreachable"
    tick = f"last tick {_fmt(f.last_tick)}" if f.last_tick else "no tick recorded"
    if not f.scheduler_alive:
        return f"no `hookscheduler schedule` process is running; {tick}"
    return f"a scheduler is running; {tick}"


def _held(f: Facts) -> str:
    """What happens to a slot the pass holds because the scheduler is inactive."""
    job = f.job
    runs = {"once": "one catch-up run covers it (with any other held slot)", "skip": "it is recorded as missed",
            "all": f"it runs late (up to catchup_limit={job.get('catchup_limit', 10)} slots)"}
    end = f" until {_fmt(f.resume_at)}" if f.resume_at else ""
    return (f"held while the scheduler is {f.scheduler_status}{end} ({f.scheduler_reason}): when it is active "
            f"again, catchup={job.get('catchup', 'once')} applies: {runs.get(job.get('catchup', 'once'), '')}")


def _future(f: Facts, slot: datetime) -> str:
    job = f.job
    head = f"upcoming at {_fmt(slot)}"
    if job["removed"]:
        return "will not run: the job was removed from hooks; it has no upcoming slots"
    if job["next_execution"] is not None and job["next_execution"] > slot:
        return f"{head}, but will not fire: the job's next slot is {_fmt(job['next_execution'])} (skip-next)"
    if is_stopped(job["stopped"], job.get("stopped_until"), slot):
        end = f" until {_fmt(job['stopped_until'])}" if job.get("stopped_until") else ""
        return f"{head}, but will be skipped while the job is stopped{end} ({job['stopped_note'] or 'no note'})"
    if f.scheduler_reason and (f.resume_at is None or slot < f.resume_at):
        return f"{head}, but {_held(f)}"
    if f.active:
        return f"{head}; it will be skipped if the run {f.active[0]['rq_job_id']} is still {f.active[0]['status']}"
    if f.scheduler_alive is False:
        return f"{head}, but no `hookscheduler schedule` process is running to fire it"
    return f"{head}: nothing stands in its way"


@dataclass
class Explanation:
    job: dict[str, Any]
    at: datetime
    now: datetime
    slot: datetime | None
    verdict: str
    timeline: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    active: list[dict[str, Any]]
    scheduler: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "at": self.at, "now": self.now, "slot": self.slot, "verdict": self.verdict,
                "timeline": self.timeline, "rows": self.rows, "active": self.active, "scheduler": self.scheduler}


def explain(ctx: SiteContext, conn: redis.Redis | None, name: str, at: datetime | None = None,
            now: datetime | None = None) -> Explanation:
    """Gather the evidence about ``name`` around ``at`` (default: now) and judge the slot at or before it."""
    now = now or utcnow()
    at = at or now
    ctx.database()
    row = get_job(name)
    job = {c: getattr(row, c) for c in JOB_COLUMNS}
    anchor = row.next_execution or row.created_at
    before, after = slots_around(row.frequency, row.cron_format, at, ctx.calendar, anchor)
    slot = before[-1] if before else None
    slots = [*before, *after]
    rows = _rows_near(row, slots, at) if slots else []
    active = [log_dict(r) for r in ledger_reads.active_rows_of(row.id)]
    status, reason = scheduler_state(ctx, now)
    _, resume_at = activity(ctx, now)
    sched: dict[str, Any] = {"status": status, "reason": reason, "last_tick": None, "scheduler_alive": None,
                             "redis_error": None, "paused_until": resume_at}
    if conn is not None:
        try:
            check_redis(conn, ctx.site.redis_url)
            sched["last_tick"] = last_tick(conn, ctx.bench.bench_id, ctx.name)
            sched["scheduler_alive"] = any(h.serves(ctx.name) for h in heartbeats(conn, ctx.bench.bench_id))
        except (ServiceUnavailable, redis.exceptions.RedisError) as exc:
            sched["redis_error"] = str(exc)
    oldest = ledger_reads.oldest_kept_slot()
    facts = Facts(job=job, slot=slot, now=now, rows=rows, scheduler_status=status, scheduler_reason=reason,
                  scheduler_alive=sched["scheduler_alive"], last_tick=sched["last_tick"], active=active,
                  retention_days=ctx.site.log_retention_days, oldest_log=oldest,
                  tz=ctx.site.time_zone, resume_at=resume_at,
                  frequent=fires_within_hour(row.frequency, row.cron_format),
                  first_slot=next_slot(row.frequency, row.cron_format, row.created_at, ctx.calendar))
    removed_at = row.removed_at or now if row.removed else None
    return Explanation(job=job, at=at, now=now, slot=slot, verdict=verdict(facts),
                       timeline=timeline(slots, rows, now, removed_at),
                       rows=rows, active=active, scheduler=sched)


def _rows_near(row: ScheduledJobType, slots: list[datetime], at: datetime) -> list[dict[str, Any]]:
    """Ledger rows of the job covering any slot in the window, or recorded for a moment inside it."""
    return [log_dict(r) for r in ledger_reads.rows_near(row.id, min(slots[0], at), max(slots[-1], at))]


__all__ = ["Explanation", "Facts", "covers", "explain", "slots_around", "timeline", "verdict"]
