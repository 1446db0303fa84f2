"""Operator actions and queries on Scheduled Job Types (the library behind ``hookscheduler jobs ...``)."""

from __future__ import annotations

import difflib
import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee as pw

from ..exceptions import HookSchedulerError, JobNotFound, shown
from ..schedule.decide import Forecast, JobState, forecast, is_stopped, summarize
from ..schedule.rows import row_problem
from ..states import LedgerStatus, Trigger
from ..store import job_reads, ledger_reads, store_for
from ..store.models import ScheduledJobType, utcnow
from ..timing.calendar import SiteCalendar, next_slot
from ..timing.frequencies import FREQUENCIES, SECTIONS, event_of

JOB_COLUMNS = (
    "name", "app", "method", "frequency", "cron_format", "queue", "timeout", "catchup", "catchup_limit", "overlap",
    "stopped", "stopped_note", "stopped_by", "stopped_at", "stopped_until", "removed", "removed_at", "last_execution",
    "next_execution", "created_at", "modified_at",
)


def actor() -> str:
    """Who is acting, for the audit columns: ``user@host``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def get_job(name: str, include_removed: bool = True) -> ScheduledJobType:
    row = job_reads.by_name(name, include_removed)
    if row is None:
        close = similar_names(name)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; see `hookscheduler jobs list --all`"
        raise JobNotFound(f"job {shown(name)} not found{hint}")
    found: ScheduledJobType = row
    return found


def stopped_now(row: ScheduledJobType, now: datetime) -> bool:
    """Whether the job is stopped at ``now``: a stop whose ``--until`` has come is over, even before the pass
    clears its flag. The one reading of it for the operator's views and actions."""
    return is_stopped(row.stopped, row.stopped_until, now)


def job_info(row: ScheduledJobType, now: datetime) -> dict[str, Any]:
    """A job's columns, as ``jobs list`` and the dashboard show them, with ``stopped_now`` at ``now``."""
    info = {c: getattr(row, c) for c in JOB_COLUMNS}
    info["stopped_now"] = stopped_now(row, now)
    return info


def list_jobs(include_removed: bool = False, search: str | None = None, offset: int = 0,
              limit: int | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every job (or one page of them: ``offset``/``limit``, optionally only names or methods containing
    ``search``) with its columns plus the status and time of its latest run (the run of its newest slot). A
    page costs one short walk of ``(job_id, scheduled_for)`` per job listed, stopping at its latest run, so a
    dashboard page over 10,000 jobs reads about one ledger row per job, whatever their history."""
    rows = job_reads.page(include_removed, search, offset, limit)
    latest = ledger_reads.newest_runs_of([r.id for r in rows])
    now = now or utcnow()
    out = []
    crons: dict[str, str | None] = {}
    for row in rows:
        item = job_info(row, now)
        # a row the scheduler skips (changed with SQL) says why here, the operator's first stop
        item["problem"] = None if row.removed else row_problem(
            row.frequency, row.cron_format, row.timeout, row.catchup, row.catchup_limit, row.overlap, row.stopped,
            row.next_execution, crons)
        log = latest.get(row.id)
        item["last_status"] = log.status if log else None
        item["last_log_at"] = (log.finished_at or log.started_at or log.scheduled_for) if log else None
        out.append(item)
    return out


def count_jobs(include_removed: bool = False, search: str | None = None) -> int:
    """How many jobs :func:`list_jobs` would list without a page (for paging)."""
    return job_reads.count(include_removed, search)


def similar_names(name: str, limit: int = 3) -> list[str]:
    """Job names a mistyped ``name`` may have meant: those containing its last dotted part, else the closest
    spellings of the whole name or of a name's last part (``send_digset`` -> ``app.tasks.send_digest``)."""
    tail = name.rsplit(".", 1)[-1][:255]
    close = job_reads.names_containing(tail, limit) if tail else []
    if close:
        return close
    names = job_reads.names()
    by_tail: dict[str, str] = {}
    for full in names:
        by_tail.setdefault(full.rsplit(".", 1)[-1], full)
    found = difflib.get_close_matches(name[:255], names, n=limit, cutoff=0.85)  # names share long prefixes
    found += [by_tail[t] for t in difflib.get_close_matches(tail, list(by_tail), n=limit)]
    return list(dict.fromkeys(found))[:limit]


def set_stopped(db: pw.Database, name: str, stopped: bool, note: str | None = None, who: str | None = None,
                now: datetime | None = None, until: datetime | None = None) -> ScheduledJobType:
    """The operator's toggle. Honoured by the next pass; re-enabling never causes a burst, because slots that
    passed while stopped were logged as skipped and ``next_execution`` kept moving forward.

    ``until``: the stop ends by itself then (the pass runs the job's slots from ``until`` on). Stopping a job
    that is already stopped keeps the first note (unless a new one is given), who stopped it and when, because
    they are the answer to "since when, and why"; its end is the new one, and none without ``until`` (as
    ``scheduler pause`` without ``--until``), so that stopping again "for good" does not end by itself."""
    now = now or utcnow()
    store = store_for(db)
    with store.transaction():
        row = get_job(name)
        audit: dict[str, Any] = {}
        if stopped and stopped_now(row, now):
            if note is not None:
                audit["stopped_note"] = note
            audit["stopped_until"] = until
        else:
            # The audit columns record the latest toggle either way (who stopped it, or who re-enabled it).
            audit.update(stopped_note=note, stopped_by=who or actor(), stopped_at=now,
                         stopped_until=until if stopped else None)
        store.write_stop(row.id, stopped, now, audit)
    return get_job(name)


def stop_state(info: dict[str, Any]) -> str:
    """``active``, ``STOPPED`` or ``removed``, as ``jobs list`` says it of a :func:`job_info` (a stop whose
    ``--until`` has come reads ``active``: the pass already runs its slots)."""
    if info["removed"]:
        return "removed"
    return "STOPPED" if info["stopped_now"] else "active"


# --- events (trigger-scheduler-event, purge-jobs --event) --------------------------------------------------

def events() -> list[str]:
    """Every event name: the families ``all``, ``hourly``, ``daily``, ... (a frequency's first word, lower-cased)
    and every ``scheduler_events`` key (``daily_long``, ``hourly_maintenance``, ``cron_long``, ...), as users
    wrote them in hooks and as Frappe's ``bench trigger-scheduler-event`` takes them."""
    return sorted({event_of(f) for f in FREQUENCIES} | set(SECTIONS))


def check_event(event: str) -> str:
    if event not in events():
        close = difflib.get_close_matches(event[:100], events(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise EventNotFound(f"unknown event {shown(event)}; {hint}events: {', '.join(events())}")
    return event


def event_frequencies(event: str) -> list[str]:
    """The frequencies an event covers: a family (``daily``: Daily, Daily Long, Daily Maintenance), or one
    section key (``daily_long``: Daily Long only)."""
    check_event(event)
    family = [f for f in FREQUENCIES if event_of(f) == event]
    return family or [SECTIONS[event].frequency]


def event_jobs(event: str, include_stopped: bool = False) -> list[ScheduledJobType]:
    """The jobs of an event (``daily``: every Daily, Daily Long and Daily Maintenance job; ``daily_long``: the
    Daily Long ones), not removed."""
    return job_reads.of_frequencies(event_frequencies(event), include_stopped)


class EventNotFound(HookSchedulerError):
    """An event name that no frequency has (bad input)."""

    exit_code = 2


# --- schedule queries and edits ----------------------------------------------------------------------------

def job_state(row: ScheduledJobType, next_execution: datetime) -> JobState:
    """The decision's view of a job row."""
    return JobState(row.id, row.name, row.frequency, row.cron_format, next_execution, bool(row.stopped),
                    row.catchup, row.catchup_limit, row.overlap, row.stopped_until)


def next_runs(row: ScheduledJobType, calendar: SiteCalendar, count: int, *, grace: float,
              inactive: str | None = None, resume_at: datetime | None = None,
              now: datetime | None = None) -> list[Forecast]:
    """``jobs next``: what will really happen to the job (:func:`~hookscheduler.schedule.decide.forecast`):
    after downtime or a pause, the one catch-up now (per its policy), then its real next slots. A removed job
    has none."""
    if row.removed or row.next_execution is None:
        return []
    return forecast(job_state(row, row.next_execution), now or utcnow(), calendar, grace=grace, count=count,
                    inactive=inactive, resume_at=resume_at)


@dataclass(frozen=True)
class SkipResult:
    """What ``skip-next`` skipped: one slot ahead, or (``overdue``) every due slot up to now, ``slots`` of them
    from ``first_slot`` to ``skipped_slot``."""

    job_name: str
    skipped_slot: datetime
    next_execution: datetime
    slots: int = 1
    first_slot: datetime | None = None
    overdue: bool = False
    capped: bool = False

    def describe(self, fmt: Callable[[datetime], str]) -> str:
        """``skipped ...`` in the caller's words for a time (``fmt``)."""
        if not self.overdue:
            return f"skipped {self.job_name}'s run at {fmt(self.skipped_slot)}"
        first = self.first_slot or self.skipped_slot
        n = f"at least {self.slots}" if self.capped else str(self.slots)
        return (f"skipped the pending catch-up of {n} slot(s) of {self.job_name} from {fmt(first)} to "
                f"{fmt(self.skipped_slot)}")


def skip_next(db: pw.Database, name: str, calendar: SiteCalendar, who: str | None = None,
              now: datetime | None = None) -> SkipResult:
    """Skip the job's next slot: move ``next_execution`` one slot on (a compare-and-set, like the tick's claim,
    so a tick serving that slot at the same moment either wins and runs it or loses and logs nothing) and
    record the slot as ``skipped`` by the operator.

    When the job is overdue (its slot has passed: a downtime, a pause), what the next pass would run is the
    catch-up of every slot due by now, so that is what is skipped: all of them, in one ``skipped`` row that
    covers them, and the job moves to its first slot after now. Skipping only the oldest would leave the rest
    to run."""
    now = now or utcnow()
    store = store_for(db)
    with store.transaction():
        row = get_job(name)
        if row.removed or row.next_execution is None:
            raise HookSchedulerError(f"job {shown(name)} was removed from hooks and has no next slot to skip")
        slot = row.next_execution
        by = f"skipped by {who or actor()} (jobs skip-next)"
        if slot <= now:
            due = summarize(job_state(row, slot), now, calendar)
            first, last, count, after = due.first, due.last, due.count, due.next
            reason = (f"{by}: the pending catch-up of {'at least ' if due.capped else ''}{count} slot(s) from "
                      f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC")
        else:
            first, last, count, reason = slot, slot, 1, by
            after = next_slot(row.frequency, row.cron_format, slot, calendar, anchor=slot)
        if not store.move_slot(row.id, slot, after, now):
            raise HookSchedulerError(f"job {shown(name)}: its next slot was served by the scheduler just now; "
                                     "run skip-next again to skip the following one")
        store.add_ledger_row((row.id, row.name, last, Trigger.SCHEDULE, LedgerStatus.SKIPPED, reason, count, first,
                              last, row.queue, None, now, now))
    if slot <= now:
        return SkipResult(row.name, last, after, count, first, overdue=True, capped=due.capped)
    return SkipResult(row.name, slot, after)
