"""Pure presentation helpers for the dashboard's templates: local times, durations, schedules in words."""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ..timing.calendar import SiteCalendar
from ..timing.frequencies import is_maintenance


def local(value: datetime | None, tz: ZoneInfo, seconds: bool = True) -> str:
    """Naive UTC -> ``2026-03-29 03:00:00 CEST`` in the site's zone; ``-`` for nothing."""
    if value is None:
        return "-"
    moment = value.replace(tzinfo=timezone.utc).astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def utc_iso(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


def duration(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    delta = (now - value).total_seconds()
    return f"{duration(abs(delta))} ago" if delta >= 0 else f"in {duration(-delta)}"


@functools.lru_cache(maxsize=4096)
def schedule_text(frequency: str, cron_format: str, calendar: SiteCalendar) -> str:
    """The schedule in words (``At 18:15, Monday through Friday``); the cron string itself when it cannot be
    described. Our 6-field cron has a trailing seconds field; cron-descriptor reads seconds first. The cron is
    the one the site's calendar fires the row on (``All`` follows the site's ``scheduler_interval``)."""
    cron = calendar.cron_of(frequency, cron_format)
    if cron is None:
        return f"Every {calendar.tick_interval} seconds"
    fields = cron.split()
    expr = " ".join([fields[5], *fields[:5]]) if len(fields) == 6 else cron
    try:
        from cron_descriptor import Options, get_description

        options = Options()
        options.use_24hour_time_format = True
        text = str(get_description(expr, options))
    except Exception:  # a description is a nicety: never fail a page over it
        return cron
    return text + (" (plus the site's maintenance offset)" if is_maintenance(frequency) else "")


def url_quote(value: Any) -> str:
    return quote(str(value), safe="")


__all__ = ["ago", "duration", "local", "schedule_text", "url_quote", "utc_iso"]
