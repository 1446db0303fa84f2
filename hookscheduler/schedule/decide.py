"""What a pass does with one due row: pure decisions, no I/O, time as a parameter.

:func:`decide` says which of the row's due slots run, which are recorded ``missed`` or ``skipped`` (and why),
and the row's next slot, always the first one strictly after ``now``. The caller (:func:`.claim.run_pass`)
claims the row and writes the result in one transaction. The policies and every reason written:
docs/policies.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..states import CatchUp, LedgerStatus, Overlap, Trigger
from ..timing.calendar import SiteCalendar, due_slots, next_slot

#: How many slots are enumerated at most when summarising a long downtime (the count is then a lower bound,
#: recorded as "at least"). Each costs a croniter step: 10,000 keeps the first pass after months of downtime of a
#: per-second job to a few seconds (CHANGELOG.md has the history).
MAX_ENUMERATED = 10_000

QUEUED, MISSED, SKIPPED = LedgerStatus.QUEUED, LedgerStatus.MISSED, LedgerStatus.SKIPPED
SCHEDULE, CATCH_UP = Trigger.SCHEDULE, Trigger.CATCH_UP


@dataclass(frozen=True)
class JobState:
    """The part of a ``scheduled_job_type`` row a decision reads."""

    id: int
    name: str
    frequency: str
    cron_format: str
    next_execution: datetime
    stopped: bool = False
    catchup: str = CatchUp.ONCE
    catchup_limit: int = 10
    overlap: str = Overlap.SKIP


@dataclass(frozen=True)
class Entry:
    """A ``scheduled_job_log`` row to write. ``status == QUEUED`` means a run to claim and send."""

    scheduled_for: datetime
    trigger: str
    status: str
    reason: str | None = None
    slots: int = 1
    first_slot: datetime | None = None
    last_slot: datetime | None = None


@dataclass(frozen=True)
class Decision:
    job: JobState
    next_execution: datetime
    entries: tuple[Entry, ...]

    @property
    def runs(self) -> list[Entry]:
        return [e for e in self.entries if e.status == QUEUED]


@dataclass(frozen=True)
class Slots:
    """The due slots of a row at ``now``: how many, the first and last, the most recent few, and the next one."""

    count: int
    first: datetime
    last: datetime
    recent: tuple[datetime, ...]  # the last due slots, ascending (at most the caller's limit)
    next: datetime
    capped: bool = False


def summarize(job: JobState, now: datetime, calendar: SiteCalendar, keep: int = 1,
              memo: dict[tuple[str, str, datetime], Slots] | None = None) -> Slots:
    """Due slots of ``job`` at ``now``. The common case (one slot due) costs one cron step; jobs sharing a
    schedule and a slot (e.g. 1,000 hourly jobs after downtime) share one enumeration through ``memo``."""
    current = job.next_execution
    key = (job.frequency, job.cron_format, current)
    if memo is not None and key in memo and memo[key].recent and len(memo[key].recent) >= min(keep, memo[key].count):
        return memo[key]
    nxt = next_slot(job.frequency, job.cron_format, current, calendar, anchor=current)
    if nxt > now:
        result = Slots(1, current, current, (current,), nxt)
    elif calendar.cron_of(job.frequency, job.cron_format) is None:
        result = _interval_slots(current, now, calendar.tick_interval, keep)
    else:
        slots = due_slots(job.frequency, job.cron_format, current, now, calendar, limit=MAX_ENUMERATED)
        if len(slots) >= MAX_ENUMERATED:
            result = _capped(job, slots, now, calendar, max(keep, 1))
        else:
            after = next_slot(job.frequency, job.cron_format, slots[-1], calendar)
            result = Slots(len(slots), slots[0], slots[-1], tuple(slots[-max(keep, 1):]), after)
    if memo is not None:
        memo[key] = result
    return result


def _capped(job: JobState, head: list[datetime], now: datetime, calendar: SiteCalendar, keep: int) -> Slots:
    """Too many due slots to enumerate: the head (first ``MAX_ENUMERATED``) gives the first slot and a lower
    bound on the count; the *tail* -- the last ``keep`` slots at or before ``now``, which are the ones that
    fire and the one the run is recorded for -- is found by enumerating forward from ever earlier points before
    ``now`` (the slot engine only steps forward). Without the tail the run would be recorded for a slot far in
    the past and every slot between it and ``now`` would be covered by no row at all."""
    span = max(head[-1] - head[0], timedelta(seconds=1)) * keep / len(head)
    tail: list[datetime] = []
    while True:
        lo = max(now - span, head[-1])
        start = next_slot(job.frequency, job.cron_format, lo, calendar)
        if start <= now:
            tail = due_slots(job.frequency, job.cron_format, start, now, calendar, limit=MAX_ENUMERATED)
        if len(tail) >= keep or lo == head[-1]:
            break
        span *= 4
    tail = [t for t in tail if t > head[-1]]
    recent = tuple((head + tail)[-keep:])
    return Slots(len(head) + len(tail), head[0], recent[-1], recent,
                 next_slot(job.frequency, job.cron_format, now, calendar), capped=True)


def _interval_slots(current: datetime, now: datetime, interval: int, keep: int) -> Slots:
    """``All`` slots are a grid: count them with arithmetic, whatever the downtime."""
    step = timedelta(seconds=interval)
    count = int((now - current) // step) + 1
    last = current + (count - 1) * step
    recent = tuple(last - i * step for i in reversed(range(min(keep, count))))
    return Slots(count, current, last, recent, last + step)


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(first: datetime, last: datetime, count: int, capped: bool) -> str:
    n = f"at least {count}" if capped else str(count)
    return f"{n} slot{'s' if count != 1 else ''}" + (f" ({_fmt(first)} .. {_fmt(last)})" if count > 1 else
                                                     f" ({_fmt(first)})")


def decide(job: JobState, now: datetime, calendar: SiteCalendar, *, grace: float, inactive: str | None = None,
           blocked: str | None = None, memo: dict[tuple[str, str, datetime], Slots] | None = None) -> Decision:
    """The decision for one due row (``job.next_execution <= now``)."""
    # the recent slots the policy needs: the ones it fires (all), or the last missed one next to the on-time one
    keep = job.catchup_limit + 1 if job.catchup == CatchUp.ALL else 2 if job.catchup == CatchUp.SKIP else 1
    s = summarize(job, now, calendar, keep=keep, memo=memo)
    on_time = (now - s.last).total_seconds() <= grace
    missed = s.count - (1 if on_time else 0)
    missed_last = s.recent[-2] if on_time and len(s.recent) >= 2 else s.last
    entries: list[Entry]

    if inactive or job.stopped:
        reason = inactive or "job stopped"
        entries = [Entry(s.last, SCHEDULE, SKIPPED, reason, s.count, s.first, s.last)]
    elif blocked and job.overlap == Overlap.SKIP:
        reason = blocked
        if missed:
            reason += f"; {_span(s.first, s.last, s.count, s.capped)} due, {missed} passed with no scheduler running"
        entries = [Entry(s.last, SCHEDULE, SKIPPED, reason, s.count, s.first, s.last)]
    elif missed == 0:
        entries = [Entry(s.last, SCHEDULE, QUEUED)]
    elif job.catchup == CatchUp.SKIP:
        entries = [Entry(missed_last, SCHEDULE, MISSED,
                         f"no scheduler pass ran for {_span(s.first, missed_last, missed, s.capped)}; "
                         "catchup=skip, so not run", missed, s.first, missed_last)]
        if on_time:
            entries.append(Entry(s.last, SCHEDULE, QUEUED))
    elif job.catchup == CatchUp.ALL:
        entries = _catch_up_all(s, on_time, job.catchup_limit)
    else:
        entries = [Entry(s.last, CATCH_UP, QUEUED,
                         f"{missed} missed slot{'s' if missed != 1 else ''} coalesced into one run: "
                         f"{_span(s.first, s.last, s.count, s.capped)}", s.count, s.first, s.last)]
    return Decision(job, s.next, tuple(entries))


def _catch_up_all(s: Slots, on_time: bool, limit: int) -> list[Entry]:
    fire = list(s.recent[-limit:])
    dropped = s.count - len(fire)
    entries: list[Entry] = []
    if dropped > 0:
        last_dropped = s.recent[-limit - 1] if len(s.recent) > limit else None
        entries.append(Entry(
            last_dropped or fire[0], SCHEDULE, MISSED,
            f"{dropped} missed slot{'s' if dropped != 1 else ''} beyond catchup_limit={limit} not run "
            f"(first {_fmt(s.first)})", dropped, s.first, last_dropped,
        ))
    for slot in fire:
        trigger = SCHEDULE if (on_time and slot == s.last) else CATCH_UP
        entries.append(Entry(slot, trigger, QUEUED, None if trigger == SCHEDULE else "missed slot run late"))
    return entries
