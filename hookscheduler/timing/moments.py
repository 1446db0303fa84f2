"""Reading the moments an operator types (``--since``, ``--at``): ISO dates and times, or relative forms.

``2h``, ``3d``, ``1w2d``, ``90m`` (and ``2h ago``) mean that long before now; ``+2h`` that long after now (for
``jobs explain --at`` about a future slot); ``now``, ``today`` and ``yesterday`` (local midnight) are accepted.
An ISO date or time without an offset is read in the site's zone, because that is what the tables print;
``Z`` or an explicit offset is honoured. The result is naive UTC, the storage format of every column.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.parser import isoparse

from ..exceptions import HookSchedulerError, shown
from .calendar import naive
from .cron import transition

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"^(?P<sign>[+-]?)(?P<body>(?:\d+\s*[smhdw]\s*)+)(?P<ago>ago)?$")
_PART = re.compile(r"(\d+)\s*([smhdw])")


class TimeSpecError(HookSchedulerError):
    """A moment that cannot be read (bad input: exit 2)."""

    exit_code = 2


#: The moments an operator can name: wide enough for any history or forecast, and far enough from the ends of
#: ``datetime`` (years 1 and 9999) that a zone conversion or the next slot after it cannot overflow.
EARLIEST, LATEST = datetime(1900, 1, 1), datetime(3000, 1, 1)


#: The relative forms an unreadable moment's error lists: a bare duration means the past for ``--since`` or
#: ``--at``, but the future for ``--until``, so each names the forms that mean what the user wants there.
_PAST_FORMS = "a relative form such as 30m, 2h, 3d, 1w (ago) or +2h (ahead)"
_AHEAD_FORMS = "a duration from now such as 30m, 2h, 3d, 1w"


def parse_moment(text: str, now: datetime, tz: ZoneInfo, what: str = "time", *, ahead: bool = False) -> datetime:
    """``text`` as naive UTC, relative forms counted from ``now`` (naive UTC); raise TimeSpecError. ``ahead``:
    the caller reads a bare duration as that long from now (``--until``), which the error then says."""
    try:
        moment = _parse(text, now, tz, what, _AHEAD_FORMS if ahead else _PAST_FORMS)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise TimeSpecError(f"the {what} {shown(text)} is out of range: name a moment from "
                            f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)")
    return moment


def _parse(text: str, now: datetime, tz: ZoneInfo, what: str, forms: str) -> datetime:
    raw = text.strip().lower()
    if raw == "now":
        return now
    if raw in ("today", "yesterday"):
        local_day = now.replace(tzinfo=timezone.utc).astimezone(tz).date()
        if raw == "yesterday":
            local_day -= timedelta(days=1)
        return _to_utc(datetime.combine(local_day, time(0)), tz)
    match = _RELATIVE.match(raw.replace(" ", ""))
    if match:
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(match["body"]))
        if seconds > (LATEST - EARLIEST).total_seconds():
            raise OverflowError(seconds)  # timedelta itself refuses some, and int('9' * 5000) is slow to print
        delta = timedelta(seconds=seconds)
        return now + delta if match["sign"] == "+" and not match["ago"] else now - delta
    try:
        parsed = isoparse(text.strip())
    except (ValueError, OverflowError):
        raise TimeSpecError(
            f"cannot read the {what} {shown(text)}: use an ISO date or time (2026-01-05, 2026-01-05T10:00, "
            f"2026-01-05T09:00Z) or {forms}"
        ) from None
    return _to_utc(parsed, tz)


#: How far ahead ``--until`` may reach: further is more likely a typo (a year, a month) than a plan.
MAX_UNTIL = timedelta(days=366)


def parse_until(text: str, now: datetime, tz: ZoneInfo, what: str = "--until") -> datetime:
    """An automatic end (``jobs disable --until``, ``scheduler pause --until``) as naive UTC: an ISO time (in
    the site's zone unless it has an offset) or a duration ahead (``30m``, ``2h``, ``+1d``). Refused, with a
    one-line error: unreadable text, a moment not after ``now``, and a moment more than :data:`MAX_UNTIL`
    ahead."""
    raw = text.strip()
    if _RELATIVE.match(raw.lower().replace(" ", "")) and not raw.lower().endswith("ago") and not raw.startswith("-"):
        raw = "+" + raw.lstrip("+")  # a duration means that long from now
    until = parse_moment(raw, now, tz, what, ahead=True)
    shown_at = until.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    if until <= now:
        raise TimeSpecError(f"{what} {shown(text)} is {shown_at}, not in the future; give a later time or a "
                            "duration such as 30m or 2h")
    if until - now > MAX_UNTIL:
        raise TimeSpecError(f"{what} {shown(text)} is {shown_at}, more than {MAX_UNTIL.days} days ahead; give a "
                            "nearer time, or leave --until out to stop until told otherwise")
    return until


def _to_utc(value: datetime, tz: ZoneInfo) -> datetime:
    """Naive UTC of ``value``, a wall time in ``tz`` unless it carries an offset. Read as the scheduler reads
    slots: a wall time that occurs twice (autumn) is its first occurrence, and one that does not exist (the
    spring gap) is the end of the gap, so ``--until 02:30`` on the spring-forward night ends at the moment the
    02:30 slot fires (03:00), not an hour after it."""
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    first = value.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
    if first.astimezone(tz).replace(tzinfo=None) == value:
        return first.replace(tzinfo=None)
    # read with the new offset, the gap's wall time is an instant before the jump; with the old one, after it
    return naive(transition(value.replace(tzinfo=tz, fold=1).astimezone(timezone.utc), first, tz))


__all__ = ["MAX_UNTIL", "TimeSpecError", "parse_moment", "parse_until"]
