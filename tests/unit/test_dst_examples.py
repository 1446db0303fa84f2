"""The examples of docs/dst.md, computed by the code: the doc's tables must stay true."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from hookscheduler.timing.calendar import SiteCalendar, next_slot
from hookscheduler.timing.cron import slots_until

UTC = timezone.utc
BERLIN, SANTIAGO = ZoneInfo("Europe/Berlin"), ZoneInfo("America/Santiago")
SPRING, FALL = datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 10, 25, tzinfo=BERLIN)


def walls(cron: str, tz: ZoneInfo, start: datetime, hours: int) -> list[str]:
    got = slots_until(cron, start.astimezone(UTC), (start + timedelta(hours=hours)).astimezone(UTC), tz)
    return [f"{s.astimezone(tz):%H:%M %Z}" for s in got]


@pytest.mark.parametrize(("cron", "spring", "fall"), [
    ("0 * * * *", ["01:00 CET", "03:00 CEST", "04:00 CEST"],
     ["01:00 CEST", "02:00 CEST", "02:00 CET", "03:00 CET", "04:00 CET"]),
    ("30 2 * * *", ["03:00 CEST"], ["02:30 CEST"]),
    ("0 2 * * *", ["03:00 CEST"], ["02:00 CEST"]),
    ("0 1-4 * * *", ["01:00 CET", "03:00 CEST", "04:00 CEST"], ["01:00 CEST", "02:00 CEST", "03:00 CET", "04:00 CET"]),
    ("15 2,3 * * *", ["03:00 CEST", "03:15 CEST"], ["02:15 CEST", "03:15 CET"]),
    ("*/30 * * * *", ["00:30 CET", "01:00 CET", "01:30 CET", "03:00 CEST", "03:30 CEST", "04:00 CEST"],
     ["00:30 CEST", "01:00 CEST", "01:30 CEST", "02:00 CEST", "02:30 CEST", "02:00 CET", "02:30 CET", "03:00 CET",
      "03:30 CET", "04:00 CET"]),
])
def test_berlin_examples(cron: str, spring: list[str], fall: list[str]) -> None:
    assert walls(cron, BERLIN, SPRING, 4) == spring
    assert walls(cron, BERLIN, FALL, 4) == fall  # wall-clock hours: 5 real ones


@pytest.mark.parametrize(("day", "hours"), [(SPRING, 23), (FALL, 25)])
def test_hourly_fires_every_real_hour_of_the_local_day(day: datetime, hours: int) -> None:
    local_day = [s for s in slots_until("0 * * * *", day.astimezone(UTC) - timedelta(seconds=1),
                                        (day + timedelta(days=1)).astimezone(UTC), BERLIN)
                 if s.astimezone(BERLIN).date() == day.date()]
    assert len(local_day) == hours


def test_an_all_job_keeps_real_intervals_across_fall_back() -> None:
    calendar = SiteCalendar(tz=BERLIN, tick_interval=3600, maintenance_offset=0)
    anchor = datetime(2026, 10, 24, 23, 30)  # naive UTC, as stored
    got = [next_slot("All", "", anchor + timedelta(hours=i), calendar, anchor=anchor) for i in range(3)]
    assert [f"{s.replace(tzinfo=UTC).astimezone(BERLIN):%H:%M %Z}" for s in got] == ["02:30 CEST", "02:30 CET",
                                                                                     "03:30 CET"]


def test_a_zone_that_changes_at_midnight() -> None:
    """Santiago: on 6 September 2026 midnight does not exist (the daily job fires at 01:00 -03); on 5 April
    midnight occurs once, after the repeated hour of the 4th."""
    before_gap = datetime(2026, 9, 5, 21, tzinfo=SANTIAGO)
    assert walls("0 0 * * *", SANTIAGO, before_gap, 28) == ["01:00 -03", "00:00 -03"]
    before_fold = datetime(2026, 4, 4, 21, tzinfo=SANTIAGO)
    assert walls("0 0 * * *", SANTIAGO, before_fold, 6) == ["00:00 -04"]
    repeated = walls("30 23 * * *", SANTIAGO, datetime(2026, 4, 4, 12, tzinfo=SANTIAGO), 20)
    assert repeated == ["23:30 -03"]  # the repeated 23:30 fires at its first occurrence only
