"""hookscheduler.timing.cron: cron validation, Frappe frequencies, maintenance offsets, DST contract, intervals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from hookscheduler.timing.cron import (
    CronError,
    fire_times,
    interval_slots_until,
    maintenance_offset,
    next_fire,
    next_interval_slot,
    slots_until,
    validate_cron,
)

UTC = timezone.utc
Z_UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def local(tz: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0, fold: int = 0) -> datetime:
    """A wall time in ``tz``; ``fold=1`` picks the second copy of a repeated time."""
    return datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold)


def walls(slots: list[datetime], tz: ZoneInfo) -> list[str]:
    return [s.astimezone(tz).strftime("%m-%d %H:%M:%S%z") for s in slots]


# --- validate_cron --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "normalised"),
    [
        ("0 * * * *", "0 * * * *"),
        ("  15   18 * *\t* ", "15 18 * * *"),
        ("0 0 * * 0", "0 0 * * 0"),
        ("*/5 9-17 * * mon-fri", "*/5 9-17 * * mon-fri"),
        ("0 0 L * *", "0 0 L * *"),
        ("0 0 30 2 1", "0 0 30 2 1"),  # day-of-month OR day-of-week: fires on Mondays in February
        ("* * * * * */15", "* * * * * */15"),  # 6th field = seconds
        ("0 12 * * * 30", "0 12 * * * 30"),
    ],
)
def test_validate_cron_accepts(expr: str, normalised: str) -> None:
    assert validate_cron(expr) == normalised


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("* * * *", "4 field(s), expected 5 or 6"),
        ("0 0 1 1 * 0 2030", "7 field(s)"),
        ("* * * * * * *", "7 field(s)"),
        ("61 * * * *", "out of range"),
        ("0 24 * * *", "out of range"),
        ("* * * * * 60", "out of range"),
        ("*/0 * * * *", "invalid"),
        ("hello", "1 field(s)"),
        ("a b c d e", "invalid"),
        ("", "0 field(s)"),
        ("@daily", "is an alias"),
        ("H * * * *", "hashed/random"),
        ("R 3 * * *", "hashed/random"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
    ],
)
def test_validate_cron_refuses_with_one_line_message(expr: str, says: str) -> None:
    with pytest.raises(CronError) as info:
        validate_cron(expr)
    message = str(info.value)
    assert says in message
    assert "\n" not in message
    assert repr(" ".join(expr.split())) in message  # names the expression
    assert isinstance(info.value, ValueError)


# --- maintenance offset ---------------------------------------------------------------------------


def test_maintenance_offset_matches_frappe() -> None:
    assert maintenance_offset("maintenance.test") == 38


@pytest.mark.parametrize("site", ["site1.local", "erp.example.com", "a", "", "ünïcode.test"])
def test_maintenance_offset_is_deterministic_and_in_range(site: str) -> None:
    assert maintenance_offset(site) == maintenance_offset(site)
    assert 0 <= maintenance_offset(site) <= 59


def test_maintenance_offsets_spread_sites() -> None:
    assert len({maintenance_offset(f"site{i}.test") for i in range(200)}) > 40


# --- Frappe's frequencies, evaluated in UTC -------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("0 * * * *", utc(2026, 5, 6, 10, 7), utc(2026, 5, 6, 11, 0)),  # hourly
        ("0 * * * *", utc(2026, 5, 6, 11, 0), utc(2026, 5, 6, 12, 0)),  # strictly after
        ("0 0 * * *", utc(2026, 5, 6, 10, 7), utc(2026, 5, 7, 0, 0)),  # daily
        ("0 0 * * 0", utc(2026, 5, 6, 10, 7), utc(2026, 5, 10, 0, 0)),  # weekly: Sunday
        ("0 0 1 * *", utc(2026, 5, 6, 10, 7), utc(2026, 6, 1, 0, 0)),  # monthly
        ("0 0 1 1 *", utc(2026, 5, 6, 10, 7), utc(2027, 1, 1, 0, 0)),  # yearly / annual
        ("15 18 * * *", utc(2026, 5, 6, 10, 7), utc(2026, 5, 6, 18, 15)),
        ("15 18 * * *", utc(2026, 5, 6, 18, 15), utc(2026, 5, 7, 18, 15)),
        ("0 * * * *", utc(2026, 5, 6, 10, 59, 59) + timedelta(microseconds=999999), utc(2026, 5, 6, 11, 0)),
    ],
)
def test_frequency_crons_from_utc(cron: str, after: datetime, expected: datetime) -> None:
    got = next_fire(cron, after, Z_UTC)
    assert got == expected
    assert got.tzinfo is UTC


def test_weekly_always_lands_on_sunday_midnight() -> None:
    for slot in fire_times("0 0 * * 0", utc(2026, 1, 1, 3), Z_UTC, 10):
        assert (slot.weekday(), slot.hour, slot.minute) == (6, 0, 0)


def test_after_in_another_zone_is_the_same_instant() -> None:
    after = utc(2026, 5, 6, 10, 7).astimezone(ZoneInfo("Asia/Kolkata"))
    assert next_fire("0 * * * *", after, Z_UTC) == utc(2026, 5, 6, 11, 0)


def test_cron_is_read_in_the_site_zone() -> None:
    assert next_fire("15 18 * * *", utc(2026, 5, 6, 10, 7), NY) == utc(2026, 5, 6, 22, 15)  # 18:15 EDT


def test_six_field_cron_fires_on_seconds() -> None:
    got = fire_times("* * * * * */15", utc(2026, 5, 6, 10, 7), Z_UTC, 5)
    assert [(s.minute, s.second) for s in got] == [(7, 15), (7, 30), (7, 45), (8, 0), (8, 15)]


def test_fire_times_count_and_order() -> None:
    got = fire_times("*/10 * * * *", utc(2026, 5, 6, 10, 7), Z_UTC, 7)
    assert len(got) == 7
    assert got == sorted(got)
    assert got[0] == utc(2026, 5, 6, 10, 10)
    assert fire_times("*/10 * * * *", utc(2026, 5, 6, 10, 7), Z_UTC, 0) == []


# --- maintenance ----------------------------------------------------------------------------------


def test_hourly_maintenance_slots_with_offset() -> None:
    got = fire_times("0 * * * *", utc(2019, 1, 1, 23, 59), Z_UTC, 3, offset_minutes=38)
    assert got == [utc(2019, 1, 2, 0, 38), utc(2019, 1, 2, 1, 38), utc(2019, 1, 2, 2, 38)]


def test_daily_maintenance_slot_with_offset() -> None:
    assert next_fire("0 0 * * *", utc(2019, 1, 1, 23, 59), Z_UTC, 38) == utc(2019, 1, 2, 0, 38)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2019, 1, 2, 0, 37, 59), utc(2019, 1, 2, 0, 38)),
        (utc(2019, 1, 2, 0, 38), utc(2019, 1, 2, 1, 38)),  # strictly after the offset slot
        (utc(2019, 1, 2, 0, 10), utc(2019, 1, 2, 0, 38)),  # base 00:00 is past, but 00:38 is not
    ],
)
def test_maintenance_offset_slot_is_strictly_after(after: datetime, expected: datetime) -> None:
    assert next_fire("0 * * * *", after, Z_UTC, 38) == expected


def test_maintenance_slots_until() -> None:
    got = slots_until("0 * * * *", utc(2019, 1, 1, 23, 59), utc(2019, 1, 2, 2, 38), Z_UTC, 38)
    assert got == [utc(2019, 1, 2, 0, 38), utc(2019, 1, 2, 1, 38), utc(2019, 1, 2, 2, 38)]


@pytest.mark.parametrize("offset", [-1, 60])
def test_offset_out_of_range_is_refused(offset: int) -> None:
    with pytest.raises(ValueError, match="offset_minutes"):
        next_fire("0 * * * *", utc(2019, 1, 1), Z_UTC, offset)


# --- DST ------------------------------------------------------------------------------------------

# (zone, spring-forward day, fall-back day, a wall time in the repeated hour, a wall time in the gap)
DST_ZONES = [
    pytest.param(NY, date(2026, 3, 8), date(2026, 11, 1), (1, 30), (2, 30), id="New_York"),
    pytest.param(BERLIN, date(2026, 3, 29), date(2026, 10, 25), (2, 30), (2, 30), id="Berlin"),
]


def day_slots(cron: str, tz: ZoneInfo, day: date) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return slots_until(cron, start - HOUR, start + timedelta(hours=26), tz)


def on_day(slots: list[datetime], tz: ZoneInfo, day: date) -> list[datetime]:
    return [s for s in slots if s.astimezone(tz).date() == day]


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated", "gap"), DST_ZONES)
def test_repeated_local_time_fires_once_at_first_occurrence(
    tz: ZoneInfo, spring: date, fall: date, repeated: tuple[int, int], gap: tuple[int, int]
) -> None:
    h, m = repeated
    got = on_day(day_slots(f"{m} {h} * * *", tz, fall), tz, fall)
    first = local(tz, fall.year, fall.month, fall.day, h, m, fold=0)
    assert got == [first.astimezone(UTC)]
    assert got[0] != local(tz, fall.year, fall.month, fall.day, h, m, fold=1).astimezone(UTC)


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated", "gap"), DST_ZONES)
def test_missing_local_time_fires_once_at_end_of_gap(
    tz: ZoneInfo, spring: date, fall: date, repeated: tuple[int, int], gap: tuple[int, int]
) -> None:
    h, m = gap
    gap_end = local(tz, spring.year, spring.month, spring.day, 3, 0).astimezone(UTC)
    for cron in (f"{m} {h} * * *", f"0,{m} {h} * * *", f"*/10 {h} * * *", f"0 {h},3 * * *"):
        got = on_day(day_slots(cron, tz, spring), tz, spring)
        assert got[0] == gap_end, cron
        assert len(got) == len(set(got)) == 1, cron
    assert walls([gap_end], tz)[0].split()[1].startswith("03:00:00")


@pytest.mark.parametrize(("tz", "spring", "fall", "repeated", "gap"), DST_ZONES)
@pytest.mark.parametrize(
    ("cron", "step"), [("0 * * * *", HOUR), ("*/30 * * * *", HOUR / 2), ("*/15 * * * *", HOUR / 4)]
)
def test_star_hour_fires_every_real_period_across_both_changes(
    tz: ZoneInfo,
    spring: date,
    fall: date,
    repeated: tuple[int, int],
    gap: tuple[int, int],
    cron: str,
    step: timedelta,
) -> None:
    for day in (spring, fall):
        after = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC) - timedelta(hours=24)
        got = slots_until(cron, after, after + timedelta(hours=48), tz)
        assert len(got) == 48 * HOUR // step  # one per real period: 48 real hours, 48 hourly slots
        assert all(b - a == step for a, b in pairwise(got))
        assert got[0] == after + step


def test_hourly_walls_on_new_york_changes() -> None:
    fall = slots_until("0 * * * *", utc(2026, 11, 1, 4), utc(2026, 11, 1, 8), NY)
    assert walls(fall, NY) == [
        "11-01 01:00:00-0400",
        "11-01 01:00:00-0500",
        "11-01 02:00:00-0500",
        "11-01 03:00:00-0500",
    ]
    spring = slots_until("0 * * * *", utc(2026, 3, 8, 5), utc(2026, 3, 8, 8), NY)
    assert walls(spring, NY) == ["03-08 01:00:00-0500", "03-08 03:00:00-0400", "03-08 04:00:00-0400"]


@pytest.mark.parametrize(("tz", "month"), [(NY, 3), (NY, 11), (BERLIN, 3), (BERLIN, 10)])
@pytest.mark.parametrize("cron", ["0 0 * * *", "30 1 * * *", "30 2 * * *", "59 2 * * *", "0 3 * * *"])
def test_daily_job_fires_once_per_local_day_across_a_dst_month(tz: ZoneInfo, month: int, cron: str) -> None:
    start = datetime(2026, month, 1, tzinfo=tz)
    end = datetime(2026, month + 1, 1, tzinfo=tz)
    got = slots_until(cron, start.astimezone(UTC), end.astimezone(UTC), tz)
    per_day = Counter(s.astimezone(tz).date() for s in got)
    assert len(per_day) == (end.date() - start.date()).days
    assert set(per_day.values()) == {1}
    assert got == sorted(set(got))


def test_per_second_cron_skips_the_whole_second_copy_of_the_hour() -> None:
    after = utc(2026, 11, 1, 5, 59, 50)  # 01:59:50 EDT
    got = fire_times("* 1 * * * *", after, NY, 12)
    assert walls(got, NY)[:9][-1] == "11-01 01:59:59-0400"
    assert walls(got, NY)[9:] == ["11-02 01:00:00-0500", "11-02 01:00:01-0500", "11-02 01:00:02-0500"]


@pytest.mark.parametrize(
    "after",
    [local(NY, 2026, 11, 1, 1, 10, fold=1), local(NY, 2026, 11, 1, 1, 40, fold=0)],
    ids=["inside-second-copy", "after-first-slot"],
)
def test_starting_inside_the_repeated_hour_does_not_refire(after: datetime) -> None:
    assert next_fire("30 1 * * *", after, NY) == local(NY, 2026, 11, 2, 1, 30).astimezone(UTC)


def test_maintenance_offset_across_dst_is_every_real_hour() -> None:
    after = local(NY, 2026, 10, 31, 12).astimezone(UTC)  # in UTC so that + 48 h is 48 real hours
    got = slots_until("0 * * * *", after, after + timedelta(hours=48), NY, offset_minutes=38)
    assert len(got) == 48
    assert all(b - a == HOUR for a, b in pairwise(got))
    assert {s.astimezone(NY).minute for s in got} == {38}


def test_local_zone_inputs_use_real_time_not_wall_arithmetic() -> None:
    # 01:10 EST (fold=1) is 06:10Z; subtracting an offset must not silently turn it into 01:10 EDT (05:10Z).
    after = local(NY, 2026, 11, 1, 1, 10, fold=1)
    assert next_fire("0 * * * *", after, NY, offset_minutes=5) == utc(2026, 11, 1, 7, 5)
    assert slots_until("*/30 * * * *", after, local(NY, 2026, 11, 1, 2, 0), NY) == [
        utc(2026, 11, 1, 6, 30),
        utc(2026, 11, 1, 7, 0),
    ]


def reference_slots(cron: str, tz: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """The DST contract spelled out minute by minute, to check the fast path against."""
    star = cron.split()[1] == "*"
    out: set[datetime] = set()
    u = after + timedelta(minutes=1)
    while u <= until:
        wall = u.astimezone(tz)
        naive = wall.replace(tzinfo=None)
        if croniter.match(cron, naive) and (wall.fold == 0 or star):
            out.add(u)
        prev = (u - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None)
        skipped = (prev + timedelta(minutes=i) for i in range(1, (naive - prev) // timedelta(minutes=1)))
        if not star and any(croniter.match(cron, w) for w in skipped):  # u is the first instant after a gap
            out.add(u)
        u += timedelta(minutes=1)
    return sorted(out)


@pytest.mark.parametrize(
    ("tz", "change"),
    [
        (NY, utc(2026, 3, 8, 7)),
        (NY, utc(2026, 11, 1, 6)),
        (BERLIN, utc(2026, 3, 29, 1)),
        (BERLIN, utc(2026, 10, 25, 1)),
        # A 30-minute shift: croniter alone loses some second copies here (e.g. 01:40 +10:30 for */20).
        (ZoneInfo("Australia/Lord_Howe"), utc(2026, 4, 4, 15)),
        (ZoneInfo("Australia/Lord_Howe"), utc(2026, 10, 3, 15, 30)),
    ],
)
@pytest.mark.parametrize(
    "cron",
    ["*/20 * * * *", "*/7 * * * *", "45 * * * *", "*/10 1-3 * * *", "0,30 2 * * *", "15 2,3 * * *"],
)
def test_matches_minute_by_minute_reference(tz: ZoneInfo, change: datetime, cron: str) -> None:
    after, until = change - timedelta(hours=5), change + timedelta(hours=5)
    assert slots_until(cron, after, until, tz) == reference_slots(cron, tz, after, until)


# --- limits, edges, never-firing crons ------------------------------------------------------------


def test_slots_until_limit_and_order() -> None:
    got = slots_until("* * * * *", utc(2026, 1, 1), utc(2026, 1, 2), Z_UTC, limit=100)
    assert len(got) == 100
    assert got == sorted(got)
    assert got[0] == utc(2026, 1, 1, 0, 1)
    assert len(slots_until("* * * * *", utc(2026, 1, 1), utc(2026, 1, 1, 1), Z_UTC)) == 60  # under the cap
    assert slots_until("* * * * *", utc(2026, 1, 1), utc(2026, 1, 1), Z_UTC) == []
    assert slots_until("* * * * *", utc(2026, 1, 1), utc(2025, 1, 1), Z_UTC) == []


def test_slots_until_includes_until() -> None:
    assert slots_until("0 * * * *", utc(2026, 1, 1), utc(2026, 1, 1, 2), Z_UTC) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
    ]


@pytest.mark.parametrize(
    "call",
    [
        lambda: next_fire("0 0 30 2 *", utc(2026, 1, 1), Z_UTC),
        lambda: fire_times("0 0 31 4 *", utc(2026, 1, 1), NY, 3),
        lambda: slots_until("0 0 30 2 *", utc(2026, 1, 1), utc(2100, 1, 1), Z_UTC),
    ],
)
def test_never_firing_cron_raises_instead_of_looping(call: Callable[[], object]) -> None:
    with pytest.raises(CronError, match="never fires"):
        call()


def test_invalid_cron_raises_cron_error_from_next_fire() -> None:
    with pytest.raises(CronError):
        next_fire("61 * * * *", utc(2026, 1, 1), Z_UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire("0 * * * *", datetime(2026, 1, 1), Z_UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_interval_slot(datetime(2026, 1, 1), 60, utc(2026, 1, 1))


# --- the 'all' interval grid ----------------------------------------------------------------------

ANCHOR = utc(2026, 1, 1, 0, 0, 0)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (ANCHOR, ANCHOR + timedelta(seconds=240)),  # k >= 1
        (ANCHOR - timedelta(days=3), ANCHOR + timedelta(seconds=240)),  # after before the anchor
        (ANCHOR + timedelta(seconds=1), ANCHOR + timedelta(seconds=240)),
        (ANCHOR + timedelta(seconds=239, microseconds=999999), ANCHOR + timedelta(seconds=240)),
        (ANCHOR + timedelta(seconds=240), ANCHOR + timedelta(seconds=480)),  # strictly after
        (ANCHOR + timedelta(seconds=241), ANCHOR + timedelta(seconds=480)),
    ],
)
def test_next_interval_slot_on_grid_strictly_after(after: datetime, expected: datetime) -> None:
    got = next_interval_slot(ANCHOR, 240, after)
    assert got == expected
    assert got.tzinfo is UTC


def test_next_interval_slot_after_a_year_of_downtime_is_on_grid() -> None:
    after = ANCHOR + timedelta(days=365, seconds=17)
    got = next_interval_slot(ANCHOR, 240, after)
    assert (got - ANCHOR) % timedelta(seconds=240) == timedelta(0)
    assert got - timedelta(seconds=240) <= after < got
    # A century of 1-second slots: a stepping loop would take minutes here, the arithmetic takes microseconds.
    far = ANCHOR + timedelta(days=36500, microseconds=1)
    assert next_interval_slot(ANCHOR, 1, far) == ANCHOR + timedelta(days=36500, seconds=1)


def test_interval_grid_across_dst_uses_real_seconds() -> None:
    anchor = local(NY, 2026, 11, 1, 0, 0)  # 04:00Z; a 2 h grid: 06:00Z, 08:00Z, 10:00Z ...
    got = next_interval_slot(anchor, 7200, local(NY, 2026, 11, 1, 3, 0))  # 08:00Z, 4 real hours later
    assert got == utc(2026, 11, 1, 10, 0)
    assert interval_slots_until(anchor, 7200, anchor, local(NY, 2026, 11, 1, 4, 0)) == [
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 8),
    ]


def test_next_interval_slot_anchor_in_another_zone() -> None:
    anchor = ANCHOR.astimezone(NY)
    assert next_interval_slot(anchor, 60, ANCHOR) == ANCHOR + timedelta(minutes=1)


def test_interval_slots_until_grid_and_limit() -> None:
    got = interval_slots_until(ANCHOR, 60, ANCHOR, ANCHOR + timedelta(days=1), limit=1000)
    assert len(got) == 1000
    assert got[0] == ANCHOR + timedelta(minutes=1)
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(got))
    full = interval_slots_until(ANCHOR, 60, ANCHOR + timedelta(seconds=30), ANCHOR + timedelta(minutes=10))
    assert full == [ANCHOR + timedelta(minutes=i) for i in range(1, 11)]  # until inclusive, after exclusive
    assert interval_slots_until(ANCHOR, 60, ANCHOR, ANCHOR + timedelta(seconds=59)) == []
    year_later = ANCHOR + timedelta(days=365)
    tail = interval_slots_until(ANCHOR, 240, year_later, year_later + timedelta(hours=1), limit=5)
    assert len(tail) == 5
    assert tail[0] == next_interval_slot(ANCHOR, 240, year_later)


@pytest.mark.parametrize("interval", [0, -60])
def test_interval_must_be_positive(interval: int) -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        next_interval_slot(ANCHOR, interval, ANCHOR)
