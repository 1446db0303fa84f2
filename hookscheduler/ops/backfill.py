"""``jobs backfill``: run a job for past slots, exactly once per slot (ledger trigger ``backfill``).

Which slots are eligible is a pure function of the job's schedule and its ledger: every slot of the range that
no run served (a slot recorded ``missed`` or ``skipped``, or one from before the job existed), and that the
scheduler has already decided about. A slot at or after the job's ``next_execution`` is the scheduler's to
decide (its catch-up policy serves it when it is due), so backfill leaves it alone; a slot after now is
refused outright. A slot with no row is taken as never run only after the retention horizon
(:func:`~.retention.pruned_through`): up to it, ``log_retention_days`` or the thinning of a frequent job may
have deleted the row of a run that did happen, so such a slot is left out, and the result says so.

Exactly once per slot, however many backfills and scheduler processes run at once: the eligible slots are
computed and the runs recorded in one write transaction that first locks the job's row (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` admits one writer at a time). The scheduler's claim
moves ``next_execution`` and writes its ledger rows under the same row lock, so each side sees everything the
other committed, and a second backfill of the same range finds the first one's rows and has nothing left to
run. Each run's RQ id is the slot's own id (the one a scheduled run of that slot has), unique in the ledger
and in RQ: a belt to the lock's braces. When a row that did not run holds that id (a run skipped in maintenance
mode or purged from its queue keeps it), the run takes the slot's next free id instead (:func:`_free_ids`).
Runs are then sent through the outbox like every other run. A dry run
(``--dry-run``) only reads: it takes no write transaction and no lock. The statements are the store's.

Policies: ``once`` (default) sends one run that covers every eligible slot (the ledger row counts them and
names the first and last, as a catch-up run does); ``all`` sends one run per slot. More than
:data:`BACKFILL_CAP` slots need an explicit confirmation (``--yes``); more than :data:`MAX_SLOTS` are refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import redis

from ..broker.keys import scheduled_job_id
from ..context import SiteContext
from ..exceptions import BadInput, HookSchedulerError
from ..schedule import send
from ..schedule.reanchor import describe, last_change
from ..states import CatchUp, LedgerStatus, Trigger
from ..store import Store, store_for
from ..store.base import LedgerValues
from ..store.models import ScheduledJobType, utcnow
from ..timing.calendar import SiteCalendar, due_slots, next_slot
from .jobs import actor, get_job, stopped_now
from .manual import refuse_in_maintenance, send_recorded
from .retention import Horizon, pruned_through

#: Slots a backfill may run without ``--yes`` (runs with ``--policy all``, slots one run covers with ``once``).
BACKFILL_CAP = 100
#: Slots one backfill may enumerate at all (a range of a 10-second job over a year is 3 million): narrow it.
MAX_SLOTS = 10_000
POLICIES: tuple[str, ...] = (CatchUp.ONCE, CatchUp.ALL)
#: Ledger statuses of a slot that was run (failed included: it ran once; ``jobs run`` runs it again).
RAN: tuple[str, ...] = (LedgerStatus.QUEUED, LedgerStatus.STARTED, LedgerStatus.COMPLETE, LedgerStatus.FAILED)


@dataclass(frozen=True)
class Labels:
    """What the refusals call the user's inputs. The CLI's options are the default; the dashboard passes its
    form's fields and buttons, so one set of checks gives each interface messages in its own terms (a form has
    no ``--yes`` to pass, and cannot force a stopped job)."""

    start: str = "--from"
    end: str = "--to"
    policy: str = "--policy"
    confirm: str = "pass --yes to confirm"
    narrow: str = "narrow --from/--to (--dry-run lists them)"
    run_now: str = "use `hookscheduler jobs run` to run a job now"
    #: ``{name}`` is the job's name
    stopped: str = "pass --force to backfill it anyway, or `hookscheduler jobs enable {name}` first"
    maintenance: str = "pass --force to backfill anyway"


CLI_LABELS = Labels()


class BackfillRefused(HookSchedulerError):
    """A backfill that would need confirmation or exceeds a limit (bad input: exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class BackfillRun:
    """One run a backfill recorded: the slot it is sent for and the slots it covers."""

    rq_job_id: str
    scheduled_for: datetime
    first_slot: datetime
    last_slot: datetime
    slots: int

    def as_dict(self) -> dict[str, Any]:
        """The times stay datetimes: the JSON output writes them as every listing does (ISO 8601 UTC, ``Z``)."""
        return {"rq_job_id": self.rq_job_id, "scheduled_for": self.scheduled_for,
                "first_slot": self.first_slot, "last_slot": self.last_slot, "slots": self.slots}


@dataclass
class BackfillResult:
    """What a backfill found in its range and what it did (``runs`` is empty for a dry run)."""

    job_name: str
    policy: str
    start: datetime
    end: datetime
    queue: str = ""
    in_range: int = 0  # slots of the schedule inside [start, end]
    already_ran: int = 0  # of them, slots a run already served
    left_to_scheduler: int = 0  # of them, slots at or after next_execution: the scheduler decides them
    before_horizon: int = 0  # of them, slots with no row up to the retention horizon: may have run, left out
    horizon: Horizon | None = None  # how far retention deleted the job's rows, if it did
    eligible: list[datetime] = field(default_factory=list)
    runs: list[BackfillRun] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The times stay datetimes: the JSON output writes them as every listing does (ISO 8601 UTC, ``Z``)."""
        return {"job_name": self.job_name, "policy": self.policy, "from": self.start,
                "to": self.end, "queue": self.queue, "slots_in_range": self.in_range,
                "already_ran": self.already_ran, "left_to_scheduler": self.left_to_scheduler,
                "before_retention_horizon": self.before_horizon,
                "retention_horizon": self.horizon.through if self.horizon else None,
                "eligible": list(self.eligible), "dry_run": self.dry_run,
                "runs": [r.as_dict() for r in self.runs]}


# --- pure decisions ---------------------------------------------------------------------------------------

def check_range(start: datetime, end: datetime, now: datetime, labels: Labels = CLI_LABELS) -> None:
    """Refuse a range that is empty or reaches into the future (naive UTC throughout)."""
    if start > end:
        raise BadInput(f"{labels.start} ({start:%Y-%m-%d %H:%M:%S} UTC) is after {labels.end} "
                       f"({end:%Y-%m-%d %H:%M:%S} UTC); give the earlier moment first")
    if end > now:
        raise BadInput(f"{labels.end} ({end:%Y-%m-%d %H:%M:%S} UTC) is in the future: backfill runs past slots "
                       f"only ({labels.run_now})")


def check_calendar(start: datetime, labels: Labels = CLI_LABELS, tz: ZoneInfo | None = None) -> None:
    """Refuse a range that starts before the site's last calendar change (a new ``time_zone`` or tick
    interval; the bound database). The slots before it were computed in the old calendar: enumerated in the
    current one they fall on other instants, so the ledger would not show them as served and slots that already
    ran would run again. The refusal names the earliest start it accepts as it can be typed back: in ``tz`` (the
    site's zone) with its offset, since a time without one is read in the site's zone."""
    change = last_change()
    if change is None or start >= change[0]:
        return
    when, old, new = change
    what = f" ({describe(old, new)})" if old and new else ""
    raise BackfillRefused(f"{labels.start} ({start:%Y-%m-%d %H:%M:%S} UTC) reaches back before the site's calendar "
                          f"changed{what} at {when:%Y-%m-%d %H:%M:%S} UTC, and slots of the old calendar cannot be "
                          f"matched to the ledger: give {labels.start} {typed(when, tz)} or later")


def typed(moment: datetime, tz: ZoneInfo | None) -> str:
    """Naive UTC ``moment`` as a ``--from`` that reads back as no earlier: ISO 8601 with its offset (in ``tz``,
    else ``Z``), rounded up to the whole second."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    aware = moment.replace(tzinfo=timezone.utc)
    if tz is None:
        return f"{aware:%Y-%m-%dT%H:%M:%S}Z"
    return aware.astimezone(tz).isoformat()


def range_slots(frequency: str, cron_format: str, start: datetime, end: datetime, calendar: SiteCalendar,
                anchor: datetime | None, limit: int = MAX_SLOTS) -> list[datetime]:
    """The job's slots in ``[start, end]``, at most ``limit + 1`` (so that the caller can tell it is over).

    ``all`` jobs sit on a grid through ``anchor`` (the row's next slot), so their past slots are the ones the
    scheduler served or would have served. The grid is stepped only forward from its anchor, so it is anchored
    here on a point of the same grid before ``start``."""
    grid = anchor or start
    if calendar.cron_of(frequency, cron_format) is None:  # the interval grid: a grid point before start
        step = timedelta(seconds=calendar.tick_interval)
        grid += ((start - grid) // step - 1) * step
    first = next_slot(frequency, cron_format, start - timedelta(microseconds=1), calendar, anchor=grid)
    if first > end:
        return []
    return due_slots(frequency, cron_format, first, end, calendar, limit=limit + 1)


def eligible_slots(slots: Sequence[datetime], served: Iterable[tuple[datetime, datetime]],
                   boundary: datetime | None, horizon: datetime | None = None,
                   not_run: Iterable[tuple[datetime, datetime]] = ()) -> tuple[list[datetime], int, int, int]:
    """(slots to backfill, slots already served, slots left to the scheduler, slots left out for retention).
    ``served`` holds the ``(first, last)`` stretch of every run that covered slots; ``boundary`` is the job's
    ``next_execution``; ``horizon``: up to it, a slot with no row may have lost it to retention; ``not_run``: the
    stretches of ``missed`` and ``skipped`` rows, which thinning keeps, so a slot in one is known not to have run
    whatever the horizon."""
    stretches = sorted(served)
    recorded = sorted(not_run)
    out: list[datetime] = []
    ran = later = gone = 0
    for slot in slots:
        if boundary is not None and slot >= boundary:
            later += 1
        elif any(first <= slot <= last for first, last in stretches):
            ran += 1
        elif horizon is not None and slot <= horizon and not any(first <= slot <= last for first, last in recorded):
            gone += 1
        else:
            out.append(slot)
    return out, ran, later, gone


def group_runs(slots: Sequence[datetime], policy: str) -> list[tuple[datetime, datetime, int]]:
    """(first, last, count) of each run to send: one per slot (``all``) or one for every slot (``once``)."""
    if not slots:
        return []
    if policy == CatchUp.ALL:
        return [(s, s, 1) for s in slots]
    return [(slots[0], slots[-1], len(slots))]


def check_cap(count: int, policy: str, confirmed: bool, job_name: str, labels: Labels = CLI_LABELS) -> None:
    """More than :data:`BACKFILL_CAP` slots need ``--yes``."""
    if count > BACKFILL_CAP and not confirmed:
        what = f"{count} runs" if policy == CatchUp.ALL else f"one run covering {count} slots"
        raise BackfillRefused(f"backfill of {job_name} would send {what}, more than {BACKFILL_CAP}: "
                              f"{labels.confirm}, or {labels.narrow}")


# --- the transaction ----------------------------------------------------------------------------------------

def backfill(ctx: SiteContext, conn: redis.Redis | None, name: str, start: datetime, end: datetime,
             policy: str = CatchUp.ONCE, confirmed: bool = False, force: bool = False, dry_run: bool = False,
             who: str | None = None, now: datetime | None = None, labels: Labels = CLI_LABELS) -> BackfillResult:
    """Record and send the runs of ``name``'s unserved past slots in ``[start, end]`` (naive UTC). ``labels``:
    what the refusals call the inputs (the CLI's options unless the caller has its own)."""
    if policy not in POLICIES:
        raise BadInput(f"{labels.policy} {policy!r} is not one of {', '.join(POLICIES)}")
    now = now or utcnow()
    check_range(start, end, now, labels)
    if conn is None and not dry_run:  # before the transaction: nothing is recorded that cannot be sent
        raise BadInput("backfill needs Redis to send its runs (only a dry run goes without)")
    store = store_for(ctx.database())
    check_calendar(start, labels, ctx.site.time_zone)
    if not dry_run:
        refuse_in_maintenance(ctx, force, "backfill", labels.maintenance)
    row = get_job(name)
    _refuse(row, force, now, labels)
    result = BackfillResult(row.name, policy, start, end, queue=row.queue, dry_run=dry_run)
    runs: list[send.Run] = []
    # a dry run only reads: no write transaction, no lock (it waits for no writer and holds none up)
    with contextlib.nullcontext() if dry_run else store.transaction():
        boundary = store.read_slot(row.id, lock=not dry_run)
        slots = range_slots(row.frequency, row.cron_format, start, end, ctx.calendar, anchor=boundary)
        if len(slots) > MAX_SLOTS:
            raise BackfillRefused(f"{labels.start}/{labels.end} hold more than {MAX_SLOTS} slots of {row.name} "
                                  f"({row.cron_format or row.frequency}); backfill a narrower range at a time")
        result.in_range = len(slots)
        served = store.served_stretches(row.id, slots[0]) if slots else []
        result.horizon = pruned_through(row.id)
        through = result.horizon.through if result.horizon else None
        not_run = store.not_run_stretches(row.id, slots[0]) if slots and through is not None else []
        result.eligible, result.already_ran, result.left_to_scheduler, result.before_horizon = eligible_slots(
            slots, served, boundary, through, not_run)
        if dry_run or not result.eligible:
            return result
        check_cap(len(result.eligible), policy, confirmed, row.name, labels)
        reason = f"backfill by {who or actor()} ({start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC, {policy})"
        rows: list[LedgerValues] = []
        grouped = group_runs(result.eligible, policy)
        ids = _free_ids(store, ctx, row.name, [last for _, last, _ in grouped])
        for (first, last, count), rq_id in zip(grouped, ids, strict=True):
            rows.append((row.id, row.name, last, Trigger.BACKFILL, LedgerStatus.QUEUED, reason, count, first, last,
                         row.queue, rq_id, now, now))
            result.runs.append(BackfillRun(rq_id, last, first, last, count))
            runs.append(send.Run(rq_id, ctx.name, row.name, row.method, row.queue, row.timeout, last,
                                 Trigger.BACKFILL))
        store.insert_ledger_rows(rows)
    assert conn is not None  # checked before anything was written
    send_recorded(ctx, conn, runs)
    return result


def _free_ids(store: Store, ctx: SiteContext, job_name: str, slots: Sequence[datetime]) -> list[str]:
    """The RQ id of each backfill run: its slot's own id, unless a row that did not run holds it (a run skipped
    in maintenance mode, purged from its queue, a late claim settled missed): then the first free later attempt
    of the slot's id. Deterministic, and unique in the ledger; the job's row lock keeps two backfills from
    choosing at once (a second one finds the first one's run and has nothing to backfill)."""
    ids = {slot: scheduled_job_id(ctx.bench.bench_id, ctx.name, job_name, slot, Trigger.BACKFILL) for slot in slots}
    attempt = 0
    while True:
        taken = store.taken_run_ids(list(ids.values()))
        if not taken:
            return [ids[slot] for slot in slots]
        attempt += 1
        for slot, rq_id in ids.items():
            if rq_id in taken:
                ids[slot] = scheduled_job_id(ctx.bench.bench_id, ctx.name, job_name, slot, Trigger.BACKFILL,
                                             attempt=attempt)


def _refuse(row: ScheduledJobType, force: bool, now: datetime, labels: Labels) -> None:
    if row.removed:
        raise HookSchedulerError(f"job {row.name!r} was removed from hooks; it cannot be backfilled "
                                 "(`hookscheduler migrate` brings it back if it is declared again)")
    if stopped_now(row, now) and not force:
        raise HookSchedulerError(f"job {row.name!r} is stopped; {labels.stopped.format(name=row.name)}")


__all__ = ["BACKFILL_CAP", "CLI_LABELS", "MAX_SLOTS", "POLICIES", "BackfillRefused", "BackfillResult", "BackfillRun",
           "Labels", "backfill", "check_calendar", "check_cap", "check_range", "eligible_slots", "group_runs",
           "range_slots", "typed"]
