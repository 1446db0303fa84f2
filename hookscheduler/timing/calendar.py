"""When a Scheduled Job Type row fires: its slots, in UTC, from its frequency or cron in the site's zone.

A thin adapter between the stored row (naive UTC datetimes, Frappe frequency names) and the pure cron maths
in :mod:`hookscheduler.timing.cron`. Time is always a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from .cron import interval_slots_until, maintenance_offset, next_fire, next_interval_slot, slots_until
from .frequencies import cron_for, is_maintenance


@dataclass(frozen=True)
class SiteCalendar:
    """What a site's slots depend on besides the row: its zone, its ``all`` interval, its maintenance offset."""

    tz: ZoneInfo
    tick_interval: int
    maintenance_offset: int
    #: the cron ``All`` fires on when the site sets Frappe's ``scheduler_interval``; None: every ``tick_interval``
    all_cron: str | None = None

    @classmethod
    def for_site(cls, site_name: str, tz: ZoneInfo, tick_interval: int, all_cron: str | None = None) -> SiteCalendar:
        return cls(tz=tz, tick_interval=tick_interval, maintenance_offset=maintenance_offset(site_name),
                   all_cron=all_cron)

    def cron_of(self, frequency: str, cron_format: str) -> str | None:
        """The cron string a row fires on in this calendar; None: the ``All`` interval grid."""
        cron = cron_for(frequency, cron_format)
        return self.all_cron if cron is None and frequency == "All" else cron


def aware(dt: datetime) -> datetime:
    """Stored naive-UTC -> aware UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def naive(dt: datetime) -> datetime:
    """Aware -> stored naive-UTC."""
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo is not None else dt


def _offset(frequency: str, calendar: SiteCalendar) -> int:
    return calendar.maintenance_offset if is_maintenance(frequency) else 0


def same_period_slot(old: tuple[str, str], new: tuple[str, str], old_next: datetime | None, now: datetime,
                     calendar: SiteCalendar) -> datetime | None:
    """Pure: the new schedule's slot for the period the old one was due to serve next, when a job moves between
    frequencies that differ only by the maintenance offset (``daily`` <-> ``daily_maintenance``, ``hourly`` <->
    ``hourly_maintenance``); None otherwise, or when that slot has passed.

    Re-anchoring such a move from now would run the job twice in one period: a ``daily`` job that ran at 00:00,
    moved to ``daily_maintenance`` (00:29 on this site) at 00:10, would run again at 00:29. The same base slot
    with the other offset keeps one run per period, as Frappe's "base cron, then the offset" does. When that
    slot has passed while the old one has not (the move goes the other way), the old slot is kept: the period's
    run still happens, once, and never at once."""
    if old_next is None or old == new:
        return None
    base = calendar.cron_of(*old)
    if base is None or base != calendar.cron_of(*new):
        return None
    shifted = old_next + timedelta(minutes=_offset(new[0], calendar) - _offset(old[0], calendar))
    if shifted > now:
        return shifted
    return old_next if old_next > now else None


def next_slot(frequency: str, cron_format: str, after: datetime, calendar: SiteCalendar,
              anchor: datetime | None = None) -> datetime:
    """The first slot strictly after ``after`` (naive UTC in, naive UTC out).

    ``All`` slots sit on a grid of ``tick_interval`` seconds through ``anchor`` (the row's current slot);
    without an anchor (a new row) the grid starts at ``after`` itself, so the first slot is one interval later.
    """
    cron = calendar.cron_of(frequency, cron_format)
    if cron is None:
        grid = anchor if anchor is not None else after
        return naive(next_interval_slot(aware(grid), calendar.tick_interval, aware(after)))
    return naive(next_fire(cron, aware(after), calendar.tz, _offset(frequency, calendar)))


def due_slots(frequency: str, cron_format: str, current: datetime, now: datetime, calendar: SiteCalendar,
              limit: int = 1000) -> list[datetime]:
    """``current`` (the row's ``next_execution``, already due) plus every later slot up to ``now``, capped."""
    cron = calendar.cron_of(frequency, cron_format)
    if cron is None:
        later = interval_slots_until(aware(current), calendar.tick_interval, aware(current), aware(now),
                                           limit=max(limit - 1, 1))
    else:
        later = slots_until(cron, aware(current), aware(now), calendar.tz, _offset(frequency, calendar),
                                  limit=max(limit - 1, 1))
    return [current, *(naive(s) for s in later)]


def upcoming(frequency: str, cron_format: str, after: datetime, calendar: SiteCalendar, count: int,
             anchor: datetime | None = None) -> list[datetime]:
    """The next ``count`` slots strictly after ``after`` (for ``jobs next``)."""
    out: list[datetime] = []
    cursor = after
    for _ in range(count):
        cursor = next_slot(frequency, cron_format, cursor, calendar, anchor=anchor or cursor)
        out.append(cursor)
    return out


def seconds(td: timedelta) -> float:
    return td.total_seconds()
