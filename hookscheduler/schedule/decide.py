"""What a pass does with one due row: pure decisions, no I/O, time as a parameter.

:func:`decide` says which of the row's due slots run, which are recorded ``missed`` or ``skipped`` (and why),
and the row's next slot, always the first one strictly after ``now``. The caller (:func:`.claim.run_pass`)
claims the row and writes the result in one transaction. The policies and every reason written:
docs/policies.md.

A paused / disabled / maintenance-mode scheduler decides nothing: the pass holds the due slots, and when it is
active again they are missed slots like those of a downtime, so each job's ``catchup`` policy applies (see
docs/pausing.md); the stretches of inactivity (:class:`Stretch`) only word the reasons. A stopped job skips,
and a stop with an end (``--until T``) skips only the slots before T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo

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
    stopped_until: datetime | None = None


def stop_over(stopped: bool, stopped_until: datetime | None, now: datetime) -> bool:
    """Has a stop with an end (``jobs disable --until T``) ended at ``now``, its flag not yet cleared? From T on
    the pass runs the job's slots and clears the flag."""
    return bool(stopped) and stopped_until is not None and stopped_until <= now


def is_stopped(stopped: bool, stopped_until: datetime | None, now: datetime) -> bool:
    """Is a job stopped at ``now``? A stop with an end (``jobs disable --until T``) is over from T on."""
    return bool(stopped) and not stop_over(stopped, stopped_until, now)


@dataclass(frozen=True)
class Stretch:
    """A stretch of time during which the site's scheduler was inactive, and why (a ``scheduler_inactivity``
    row): ``[since, ended_at)``, ``ended_at`` None while it lasts."""

    reason: str
    since: datetime
    ended_at: datetime | None = None

    def overlaps(self, first: datetime, last: datetime, slack: float = 0.0) -> bool:
        """Does the stretch meet ``[first, last]``? ``slack``: how much earlier it may really have begun (a
        switch edited in a file is seen by the next pass only, up to one tick later)."""
        return self.since - timedelta(seconds=slack) <= last and (self.ended_at is None or self.ended_at > first)


@dataclass(frozen=True)
class Switches:
    """The site's scheduler switches as read at one moment: the config files' ``maintenance_mode``,
    ``pause_scheduler`` (with the pause's end, if any) and ``disable_scheduler``, and the state table's
    ``scheduler_enabled`` (with its note). The one reading of them: the pass's reason, ``scheduler status``
    and the forecasts all derive from it, so they cannot disagree about whether the scheduler fires.

    A pause's end (``pause_until``) belongs to the pause ``scheduler pause --until`` set: ``pause_scheduler``
    in the site's own file (``own_pause``). Any other pause -- the bench-wide one (``bench_pause``), or one set
    in a file after that end was lifted -- has no end: it holds until someone resumes."""

    maintenance: bool = False
    paused: bool = False
    disabled_by_config: bool = False
    enabled: bool = True
    disabled_note: str | None = None
    pause_until: datetime | None = None
    own_pause: bool = True  # ``pause_scheduler`` is set in the site's own file (where ``--until`` sets it)
    bench_pause: bool = False  # ``pause_scheduler`` is set for the bench: what is left once the site's is lifted

    def until_applies(self) -> bool:
        """Does ``pause_until`` belong to the pause in force (the site's own)? Otherwise it is stale."""
        return self.pause_until is not None and self.paused and self.own_pause

    def pause_over(self, now: datetime) -> bool:
        """Has the site's own pause reached its ``--until`` at ``now``, its flag not yet lifted? The pass then
        lifts it (:func:`.inactivity.settle_pause_end`)."""
        return self.until_applies() and self.pause_until is not None and now >= self.pause_until

    def stale_until(self) -> bool:
        """A ``pause_until`` that no longer belongs to any pause (the site's own flag was cleared another way):
        the pass forgets it, so that a pause set later is not taken to be over already."""
        return self.pause_until is not None and not self.until_applies()

    def pausing(self, now: datetime) -> bool:
        """Paused at ``now``: a pause with an end (``scheduler pause --until T``) is over from T on, whether or
        not the flag in ``site_config.json`` has been lifted yet; a bench-wide pause still holds then."""
        return self.bench_pause if self.pause_over(now) else self.paused

    def stopping(self) -> bool:
        """Switched off by something a resume would not change (maintenance, either disable)."""
        return self.maintenance or self.disabled_by_config or not self.enabled

    def causes(self, now: datetime, tz: tzinfo = timezone.utc) -> list[str]:
        """Every reason the scheduler does not fire at ``now``, in Frappe's order of the switches (a pause's end
        shown in ``tz``)."""
        out = []
        if self.maintenance:
            out.append("maintenance_mode is set")
        if self.pausing(now):
            end = self.pause_until if self.until_applies() and not self.pause_over(now) else None
            out.append("pause_scheduler is set" + (f" until {_fmt(end, tz)}" if end is not None else ""))
        if self.disabled_by_config:
            out.append("disable_scheduler is set")
        if not self.enabled:
            out.append("scheduler disabled" + (f": {self.disabled_note}" if self.disabled_note else ""))
        return out

    def reason(self, now: datetime) -> str | None:
        """Why the scheduler does not fire at ``now`` (None: it fires), as the ledger words it: the first cause."""
        causes = self.causes(now)
        if not causes:
            return None
        return causes[0] if causes[0].startswith("scheduler disabled") else f"scheduler inactive: {causes[0]}"


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


def _fmt(dt: datetime, tz: tzinfo = timezone.utc) -> str:
    """A naive UTC instant as the ledger and the status show it (in ``tz``: the site's zone, where given)."""
    if tz is timezone.utc:
        return dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    return dt.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _span(first: datetime, last: datetime, count: int, capped: bool) -> str:
    n = f"at least {count}" if capped else str(count)
    return f"{n} slot{'s' if count != 1 else ''}" + (f" ({_fmt(first)} .. {_fmt(last)})" if count > 1 else
                                                     f" ({_fmt(first)})")


def decide(job: JobState, now: datetime, calendar: SiteCalendar, *, grace: float, inactive: str | None = None,
           blocked: str | None = None, memo: dict[tuple[str, str, datetime], Slots] | None = None,
           stretches: Sequence[Stretch] = ()) -> Decision:
    """The decision for one due row (``job.next_execution <= now``). ``stretches``: the site's recent
    stretches of inactivity, to say which missed slots passed during a pause rather than a downtime."""
    if job.stopped_until is not None and stop_over(job.stopped, job.stopped_until, now) and not inactive:
        return _after_stop(job, job.stopped_until, now, calendar, grace=grace, blocked=blocked, stretches=stretches)
    # the recent slots the policy needs: the ones it fires (all), or the last missed one next to the on-time one
    keep = job.catchup_limit + 1 if job.catchup == CatchUp.ALL else 2 if job.catchup == CatchUp.SKIP else 1
    s = summarize(job, now, calendar, keep=keep, memo=memo)
    on_time = (now - s.last).total_seconds() <= grace
    missed = s.count - (1 if on_time else 0)
    missed_last = s.recent[-2] if on_time and len(s.recent) >= 2 else s.last
    entries: list[Entry]

    pause = _during(stretches, s.first, missed_last, grace) if missed else ""
    if inactive or job.stopped:
        reason = inactive or _stop_reason(job)
        entries = [Entry(s.last, SCHEDULE, SKIPPED, reason, s.count, s.first, s.last)]
    elif blocked and job.overlap == Overlap.SKIP:
        reason = blocked
        if missed:
            reason += (f"; {_span(s.first, s.last, s.count, s.capped)} due, {missed} passed "
                       f"{pause or 'with no scheduler running'}")
        entries = [Entry(s.last, SCHEDULE, SKIPPED, reason, s.count, s.first, s.last)]
    elif missed == 0:
        entries = [Entry(s.last, SCHEDULE, QUEUED)]
    elif job.catchup == CatchUp.SKIP:
        why = (f"{_span(s.first, missed_last, missed, s.capped)} passed {pause}" if pause else
               f"no scheduler pass ran for {_span(s.first, missed_last, missed, s.capped)}")
        entries = [Entry(missed_last, SCHEDULE, MISSED, f"{why}; catchup=skip, so not run", missed, s.first,
                         missed_last)]
        if on_time:
            entries.append(Entry(s.last, SCHEDULE, QUEUED))
    elif job.catchup == CatchUp.ALL:
        entries = _catch_up_all(s, on_time, job.catchup_limit, pause)
    else:
        entries = [Entry(s.last, CATCH_UP, QUEUED,
                         f"{missed} missed slot{'s' if missed != 1 else ''} coalesced into one run: "
                         f"{_span(s.first, s.last, s.count, s.capped)}" + (f"; they passed {pause}" if pause else ""),
                         s.count, s.first, s.last)]
    return Decision(job, s.next, tuple(entries))


def _stop_reason(job: JobState) -> str:
    return "job stopped" + (f" until {_fmt(job.stopped_until)}" if job.stopped_until is not None else "")


def _during(stretches: Sequence[Stretch], first: datetime, last: datetime, slack: float) -> str:
    """"while the scheduler was inactive (...)" when a stretch of inactivity overlaps ``[first, last]``."""
    hit = sorted((st for st in stretches if st.overlaps(first, last, slack)), key=lambda st: st.since)
    if not hit:
        return ""
    parts = [f"{st.reason.removeprefix('scheduler inactive: ')} {_fmt(st.since)} .. "
             f"{_fmt(st.ended_at) if st.ended_at else 'now'}" for st in hit[:3]]
    return f"while the scheduler was inactive ({'; '.join(parts)})"


def _after_stop(job: JobState, until: datetime, now: datetime, calendar: SiteCalendar, *, grace: float,
                blocked: str | None, stretches: Sequence[Stretch]) -> Decision:
    """A stop that ended at ``until`` (<= now): the slots before it are skipped as stopped, the rest are
    decided as for a job that was never stopped."""
    entries: list[Entry] = []
    rest = replace(job, stopped=False, stopped_until=None)
    if job.next_execution < until:
        head = summarize(job, until - timedelta(microseconds=1), calendar)
        entries.append(Entry(head.last, SCHEDULE, SKIPPED, _stop_reason(job), head.count, head.first, head.last))
        rest = replace(rest, next_execution=head.next)
    if rest.next_execution > now:
        return Decision(job, rest.next_execution, tuple(entries))
    after = decide(rest, now, calendar, grace=grace, blocked=blocked, stretches=stretches)
    return Decision(job, after.next_execution, (*entries, *after.entries))


def _catch_up_all(s: Slots, on_time: bool, limit: int, pause: str = "") -> list[Entry]:
    fire = list(s.recent[-limit:])
    dropped = s.count - len(fire)
    entries: list[Entry] = []
    if dropped > 0:
        last_dropped = s.recent[-limit - 1] if len(s.recent) > limit else None
        entries.append(Entry(
            last_dropped or fire[0], SCHEDULE, MISSED,
            f"{dropped} missed slot{'s' if dropped != 1 else ''} beyond catchup_limit={limit} not run "
            f"(first {_fmt(s.first)})" + (f"; they passed {pause}" if pause else ""), dropped, s.first, last_dropped,
        ))
    for slot in fire:
        trigger = SCHEDULE if (on_time and slot == s.last) else CATCH_UP
        late = "missed slot run late" + (f"; it passed {pause}" if pause else "")
        entries.append(Entry(slot, trigger, QUEUED, None if trigger == SCHEDULE else late))
    return entries


@dataclass(frozen=True)
class Forecast:
    """One line of ``jobs next``: what will really happen to a slot (or a stretch of held slots)."""

    at: datetime | None  # when it is sent (a catch-up: the next pass; None: when the scheduler is active again)
    slot: datetime
    kind: str  # "run", "catch-up", "skipped" or "missed"
    slots: int = 1
    note: str | None = None


def forecast(job: JobState, now: datetime, calendar: SiteCalendar, *, grace: float, count: int,
             inactive: str | None = None, resume_at: datetime | None = None) -> list[Forecast]:
    """The next ``count`` things the scheduler will do with ``job``, as the pass would decide them (pure).

    A row whose next slot has passed (downtime, a pause) is first decided as the next pass will decide it --
    at ``now``, or at ``resume_at`` when the scheduler is inactive until then, or at an unknown time when it is
    inactive until told otherwise -- so the forecast shows the one catch-up (or the missed slots) instead of
    stored past slots; then the real next slots follow, each marked as it will be treated."""
    out: list[Forecast] = []
    nxt = job.next_execution
    decided_at = resume_at if inactive else now
    if nxt <= (decided_at or now):
        d = decide(job, decided_at or now, calendar, grace=grace)
        for e in d.entries:
            kind = (CATCH_UP if e.trigger == CATCH_UP else "run") if e.status == QUEUED else str(e.status)
            note = e.reason
            if inactive and decided_at is None:
                note = f"when the scheduler is active again ({inactive})" + (f"; {e.reason}" if e.reason else "")
            out.append(Forecast(decided_at, e.scheduled_for, str(kind), e.slots, note))
        nxt = d.next_execution
    while len(out) < count:
        if inactive and (resume_at is None or nxt < resume_at):
            out.append(Forecast(None if resume_at is None else resume_at, nxt, "held",
                                note=f"held while the scheduler is inactive ({inactive}); the job's catchup "
                                     f"policy ({job.catchup}) decides it on resume"))
        elif is_stopped(job.stopped, job.stopped_until, nxt):
            out.append(Forecast(nxt, nxt, str(SKIPPED), note=_stop_reason(job)))
        else:
            out.append(Forecast(nxt, nxt, "run"))
        nxt = next_slot(job.frequency, job.cron_format, nxt, calendar, anchor=nxt)
    return out[:count]
