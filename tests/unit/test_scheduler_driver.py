"""What schedules a site, decided from Redis's liveness facts alone (pure): a recent last pass is not enough to
call a bench "driven by cron"; a `schedule` process killed a moment ago leaves one behind."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.ops.scheduler import Driver, driver, overdue_after

NOW = datetime(2026, 1, 5, 12, 0)
LATE = timedelta(minutes=3)
RECENT, OLD = NOW - timedelta(seconds=20), NOW - timedelta(minutes=10)


@pytest.mark.parametrize(("alive", "tick", "tick_command", "expected"), [
    (None, RECENT, RECENT, Driver.UNKNOWN),  # Redis unreachable: nothing is known
    (True, None, None, Driver.PROCESS),  # a live process serves it, whatever the passes
    (True, OLD, RECENT, Driver.PROCESS),
    (False, RECENT, RECENT, Driver.TICK),  # cron's passes: no process needed
    (False, RECENT, None, Driver.STOPPED),  # a recent pass, but by a process now gone
    (False, RECENT, OLD, Driver.STOPPED),  # cron drove it once, a process since, and that one stopped
    (False, OLD, OLD, Driver.NONE),
    (False, None, None, Driver.NONE),
    (False, None, RECENT, Driver.NONE),  # a tick whose pass did not complete is no pass
])
def test_what_schedules_a_site(alive, tick, tick_command, expected):
    assert driver(alive, tick, tick_command, NOW, LATE) == expected


def test_a_pass_exactly_as_old_as_allowed_still_counts():
    assert driver(False, NOW - LATE, NOW - LATE, NOW, LATE) == Driver.TICK
    assert driver(False, NOW - LATE - timedelta(microseconds=1), NOW, NOW, LATE) == Driver.NONE


def test_overdue_after_is_three_tick_intervals_and_never_under_three_minutes():
    assert overdue_after(60) == timedelta(minutes=3) and overdue_after(10) == timedelta(minutes=3)
    assert overdue_after(240) == timedelta(minutes=12)
