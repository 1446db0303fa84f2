"""Cron and interval slot maths: when a job fires, as UTC instants. Pure: no I/O, time is a parameter.

A cron is read in the site's wall time but slots are UTC, so every DST decision is made here, once
(:func:`_base_slots`), under the contract in docs/dst.md: a repeated local time fires at its first occurrence,
a missing one at the end of the gap, an hour field of ``*`` means every real hour. croniter's own DST handling
is not trusted: second copies are skipped and existence and monotonicity re-checked here, so a change in
croniter cannot make the scheduler fire twice or go backwards.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

UTC = timezone.utc
_ONE_SECOND = timedelta(seconds=1)
# A fixed, clock-free start for "does it ever fire?" (croniter searches 50 years from it).
_REFERENCE = datetime(2000, 1, 1)
# Consecutive croniter candidates we may discard (duplicates) before deciding something is wrong.
_MAX_DISCARDS = 1000
_FIELDS_HINT = (
    "fields are minute(0-59) hour(0-23) day-of-month(1-31) month(1-12) day-of-week(0-6), "
    "optionally a 6th seconds(0-59) field, e.g. '15 18 * * *'"
)
_HASHED = re.compile(r"^[hr](\(|$)", re.IGNORECASE)


class CronError(ValueError):
    """A cron expression the scheduler cannot use; the one-line message says what is wrong and the fix."""


def validate_cron(expr: str) -> str:
    """Return ``expr`` with whitespace collapsed, or raise :class:`CronError`.

    Only 5 fields, or 6 with croniter's trailing seconds field: croniter's 7th (year) field, ``@daily``
    aliases and hashed/random ``H``/``R`` values are refused because Frappe does not know them and ``R``
    would give every process a different schedule. An expression that never fires (``0 0 30 2 *``) is
    refused here, at load time, rather than on the first tick.
    """
    fields = expr.split()
    norm = " ".join(fields)
    if norm.startswith("@"):
        raise CronError(f"cron {norm!r} is an alias; write out its fields, e.g. '0 0 * * *' for @daily")
    if len(fields) not in (5, 6):
        raise CronError(f"cron {norm!r} has {len(fields)} field(s), expected 5 or 6; {_FIELDS_HINT}")
    if any(_HASHED.match(tok) for field in fields for tok in re.split(r"[,/-]", field)):
        raise CronError(f"cron {norm!r} uses hashed/random H or R values; give explicit ones; {_FIELDS_HINT}")
    _prototype(norm)
    return norm


@functools.lru_cache(maxsize=1024)
def _prototype(norm: str) -> croniter[datetime]:
    """croniter's parse of a normalised expression, checked to fire at least once (raises :class:`CronError`;
    a refusal is not cached). One parse per expression serves both :func:`validate_cron` and :func:`_parsed`:
    croniter's parse is its costly part (a deploy checks and then schedules every distinct cron of its hooks).
    The constructor runs the same expansion as ``croniter.expand``, so it refuses the same expressions."""
    try:
        proto = croniter(norm, _REFERENCE, ret_type=datetime)
    except (CroniterError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[-1] if lines else type(exc).__name__
        raise CronError(f"cron {norm!r} is invalid ({reason}); {_FIELDS_HINT}") from None
    try:
        copy.copy(proto).get_next(datetime)
    except CroniterBadDateError:
        hint = "check the day-of-month against the month"
        raise CronError(f"cron {norm!r} never fires (no date matches it); {hint}") from None
    return proto


def maintenance_offset(site: str) -> int:
    """The site's minute offset (0-59) for ``*_maintenance`` jobs, identical to Frappe's.

    Spreading maintenance over the hour keeps many sites on one host from running it at the same minute;
    matching Frappe exactly means a migrated site keeps its maintenance window.
    """
    return int(hashlib.sha1(site.encode()).hexdigest(), 16) % 60


@functools.lru_cache(maxsize=1024)
def _parsed(cron: str) -> tuple[croniter[datetime], bool]:
    """Validated, parsed croniter prototype for ``cron`` and whether its hour field is exactly ``*``.

    Parsing costs about as much as a ``get_next`` and the tick asks for thousands of slots per pass, so we
    parse once and give each call a shallow copy (croniter copies what it mutates, so calls stay independent,
    also across threads).
    """
    norm = validate_cron(cron)
    return _prototype(norm), norm.split()[1] == "*"


def _utc(name: str, dt: datetime) -> datetime:
    """``dt`` in UTC; naive is refused because ``astimezone`` would read it as host-local time.

    All arithmetic happens in UTC: ``+``/``-`` on a datetime in a DST zone is wall-clock arithmetic that
    drops ``fold`` and would shift results by the DST delta.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {dt.isoformat()}")
    return dt.astimezone(UTC)


def transition(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """First whole-second UTC instant in ``(lo, hi]`` whose offset in ``tz`` equals ``hi``'s.

    zoneinfo exposes no transition table, so we bisect (about 12 steps); this runs only around DST changes.
    """
    target = hi.astimezone(tz).utcoffset()
    a, b = int(lo.timestamp()), int(hi.timestamp())
    while b - a > 1:
        mid = (a + b) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == target:
            b = mid
        else:
            a = mid
    return datetime.fromtimestamp(b, UTC)


def _base_slots(cron: str, after: datetime, tz: ZoneInfo) -> Iterator[datetime]:
    """Cron slots strictly after ``after``, as strictly increasing UTC instants, under the DST contract.

    A candidate's wall time is classified by its two readings (fold 0 and 1): equal is an ordinary time;
    fold 0 later is a gap time (moved to the gap's end, croniter re-seated there); fold 0 earlier is a
    repeated time, whose second copy is skipped unless the hour is ``*``. Skipping jumps croniter to the end
    of the repeated span, so a per-second cron costs one step there, not 3600.
    """
    proto, every_real_hour = _parsed(cron)
    it = copy.copy(proto)
    it.set_current(after.astimezone(tz), force=True)
    last = after.astimezone(UTC)
    discards = 0
    while True:
        try:
            cand = it.get_next(datetime)
        except CroniterBadDateError:
            raise CronError(f"cron {cron!r} has no slot within 50 years after {after.isoformat()}") from None
        wall = cand.replace(tzinfo=None)
        t0 = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        t1 = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        inst = cand.astimezone(UTC)
        if t0 > t1:  # wall time inside a spring-forward gap
            inst = transition(t1, t0, tz)
            it.set_current(inst.astimezone(tz), force=True)
        elif t0 < t1 and inst != t0 and not every_real_hour:  # second copy of a repeated wall time
            span_end = transition(t0, t1, tz) + (t1 - t0)
            it.set_current((span_end - _ONE_SECOND).astimezone(tz), force=True)
            continue
        if inst <= last:
            discards += 1
            if discards > _MAX_DISCARDS:
                raise CronError(f"cron {cron!r} does not advance after {last.isoformat()}; report this")
            continue
        if every_real_hour and inst.astimezone(tz).utcoffset() != last.astimezone(tz).utcoffset():
            yield from _missed_copies(proto, last, inst, tz)
        discards = 0
        last = inst
        yield inst


def _missed_copies(proto: croniter[datetime], lo: datetime, hi: datetime, tz: ZoneInfo) -> Iterator[datetime]:
    """Second copies of repeated wall times strictly between ``lo`` and ``hi`` (UTC), for ``*``-hour crons.

    croniter 7 drops some when the shift is not a whole hour (Lord Howe's 30 minutes: ``*/20 * * * *``
    loses 01:40 +10:30), so after a fall-back we re-walk the repeated span in naive wall time ourselves.
    """
    before, after_ = lo.astimezone(tz).utcoffset(), hi.astimezone(tz).utcoffset()
    if before is None or after_ is None or after_ >= before:  # not a fall-back: nothing repeats
        return
    change = transition(lo, hi, tz)
    span_start = change.astimezone(tz).replace(tzinfo=None)  # first repeated wall time
    walker = copy.copy(proto)
    walker.set_current(span_start - _ONE_SECOND, force=True)
    while (wall := walker.get_next(datetime)) < span_start + (before - after_):
        if lo < (inst := change + (wall - span_start)) < hi:
            yield inst


def _slots(cron: str, after: datetime, tz: ZoneInfo, offset_minutes: int) -> Iterator[datetime]:
    """Base slots plus the maintenance offset: base slots after ``after - offset``, shifted by it."""
    if not 0 <= offset_minutes <= 59:
        raise ValueError(f"offset_minutes must be 0-59, got {offset_minutes}")
    offset = timedelta(minutes=offset_minutes)
    return (base + offset for base in _base_slots(cron, _utc("after", after) - offset, tz))


def next_fire(cron: str, after: datetime, tz: ZoneInfo, offset_minutes: int = 0) -> datetime:
    """The first slot strictly after ``after`` (aware, any zone), as an aware UTC datetime.

    ``cron`` is read in ``tz``'s wall time; ``offset_minutes`` shifts every slot (maintenance jobs).
    """
    return next(_slots(cron, after, tz, offset_minutes))


def fire_times(
    cron: str,
    after: datetime,
    tz: ZoneInfo,
    count: int,
    offset_minutes: int = 0,
) -> list[datetime]:
    """The next ``count`` slots strictly after ``after``, ascending, UTC-aware."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return list(islice(_slots(cron, after, tz, offset_minutes), count))


def slots_until(
    cron: str, after: datetime, until: datetime, tz: ZoneInfo, offset_minutes: int = 0, limit: int = 1000
) -> list[datetime]:
    """Slots ``s`` with ``after < s <= until``, ascending, at most ``limit``.

    The cap bounds work after long downtime; exactly ``limit`` items tells the caller it was capped.
    """
    until = _utc("until", until)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return list(islice(takewhile(lambda s: s <= until, _slots(cron, after, tz, offset_minutes)), limit))


def _interval(interval_seconds: int) -> timedelta:
    if interval_seconds <= 0:
        raise ValueError(f"interval_seconds must be > 0, got {interval_seconds}")
    return timedelta(seconds=interval_seconds)


def next_interval_slot(anchor: datetime, interval_seconds: int, after: datetime) -> datetime:
    """The first ``anchor + k * interval`` (k >= 1) strictly after ``after``, UTC-aware.

    Computed with one floor division rather than stepping, so a year of downtime costs the same as a minute,
    and the result stays on the anchor's grid (no drift from "now + interval").
    """
    anchor, after = _utc("anchor", anchor), _utc("after", after)
    step = _interval(interval_seconds)
    k = max((after - anchor) // step + 1, 1)
    return anchor + k * step


def interval_slots_until(
    anchor: datetime, interval_seconds: int, after: datetime, until: datetime, limit: int = 1000
) -> list[datetime]:
    """Grid slots ``s`` with ``after < s <= until``, ascending, at most ``limit``; O(limit), not O(gap)."""
    until = _utc("until", until)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    first = next_interval_slot(anchor, interval_seconds, after)
    if first > until:
        return []
    step = _interval(interval_seconds)
    count = min(limit, (until - first) // step + 1)
    return [first + i * step for i in range(count)]
