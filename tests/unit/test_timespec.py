from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hookscheduler.ops.backfill import typed
from hookscheduler.timing.moments import TimeSpecError, parse_moment, parse_until

NOW = datetime(2026, 3, 29, 12, 0)  # naive UTC
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("text, expected", [
    ("2h", datetime(2026, 3, 29, 10, 0)),
    ("3d", datetime(2026, 3, 26, 12, 0)),
    ("1w", datetime(2026, 3, 22, 12, 0)),
    ("90m", datetime(2026, 3, 29, 10, 30)),
    ("1d12h", datetime(2026, 3, 28, 0, 0)),
    ("2h ago", datetime(2026, 3, 29, 10, 0)),
    ("-2h", datetime(2026, 3, 29, 10, 0)),
    ("+2h", datetime(2026, 3, 29, 14, 0)),
    ("now", NOW),
    # bare ISO is the site's local time: 2026-03-29 is the spring-forward day in Berlin (CEST from 03:00)
    ("2026-03-29", datetime(2026, 3, 28, 23, 0)),
    ("2026-03-29T04:00", datetime(2026, 3, 29, 2, 0)),
    ("2026-03-29 04:00:00", datetime(2026, 3, 29, 2, 0)),
    ("2026-03-29T04:00Z", datetime(2026, 3, 29, 4, 0)),
    ("2026-03-29T04:00+05:30", datetime(2026, 3, 28, 22, 30)),
    ("today", datetime(2026, 3, 28, 23, 0)),
    ("yesterday", datetime(2026, 3, 27, 23, 0)),
])
def test_moments(text, expected):
    assert parse_moment(text, NOW, BERLIN) == expected


@pytest.mark.parametrize("text", ["", "soon", "2x", "2026-13-01", "h2"])
def test_bad_moment_is_bad_input(text):
    with pytest.raises(TimeSpecError) as exc:
        parse_moment(text, NOW, BERLIN, "--since")
    assert exc.value.exit_code == 2
    assert "--since" in str(exc.value) and "\n" not in str(exc.value)


def test_an_unreadable_until_names_the_forms_ahead():
    """For --until a bare 30m means 30 minutes from now: its error lists the forms ahead, never the "ago" ones
    that --since lists (which would read as the past there)."""
    with pytest.raises(TimeSpecError) as exc:
        parse_until("garbage", NOW, BERLIN, "--until")
    text = str(exc.value)
    assert "--until" in text and "a duration from now such as 30m, 2h" in text and "ago" not in text
    assert "\n" not in text
    with pytest.raises(TimeSpecError) as exc:
        parse_moment("garbage", NOW, BERLIN, "--since")
    assert "30m, 2h, 3d, 1w (ago) or +2h (ahead)" in str(exc.value)


@pytest.mark.parametrize("zone, wall, expected", [
    # a wall time inside the spring gap is the end of the gap, where the scheduler fires such a slot
    ("Europe/Berlin", datetime(2026, 3, 29, 2, 30), datetime(2026, 3, 29, 1, 0)),
    ("Europe/Berlin", datetime(2026, 3, 29, 2, 0), datetime(2026, 3, 29, 1, 0)),
    ("America/New_York", datetime(2026, 3, 8, 2, 15), datetime(2026, 3, 8, 7, 0)),
    ("Australia/Lord_Howe", datetime(2026, 10, 4, 2, 10), datetime(2026, 10, 3, 15, 30)),  # a 30-minute gap
    ("America/Santiago", datetime(2026, 9, 6, 0, 30), datetime(2026, 9, 6, 4, 0)),  # the gap is at midnight
    ("Pacific/Apia", datetime(2011, 12, 30, 12, 0), datetime(2011, 12, 30, 10, 0)),  # a whole day skipped
    # a wall time that occurs twice is its first occurrence; the times around a change are plain
    ("Europe/Berlin", datetime(2026, 10, 25, 2, 30), datetime(2026, 10, 25, 0, 30)),
    ("Europe/Berlin", datetime(2026, 3, 29, 3, 0), datetime(2026, 3, 29, 1, 0)),
    ("Europe/Berlin", datetime(2026, 3, 29, 1, 59, 59), datetime(2026, 3, 29, 0, 59, 59)),
])
def test_local_times_read_as_the_scheduler_reads_slots(zone, wall, expected):
    assert parse_moment(wall.isoformat(), NOW, ZoneInfo(zone)) == expected


def test_until_inside_the_spring_gap_ends_when_that_nights_slot_fires():
    """``--until 02:30`` on the spring-forward night: the job's 02:30 slot fires at 03:00 CEST (the end of the
    gap), so the stop must end then, not at 03:30 (which would skip that night's run)."""
    before = datetime(2026, 3, 28, 20, 0)
    assert parse_until("2026-03-29T02:30", before, BERLIN) == datetime(2026, 3, 29, 1, 0)


@pytest.mark.parametrize("moment, tz, shown", [
    (datetime(2026, 12, 7, 23, 23, 47), ZoneInfo("Asia/Tokyo"), "2026-12-08T08:23:47+09:00"),
    (datetime(2026, 12, 7, 23, 23, 47, 400_000), ZoneInfo("Asia/Tokyo"), "2026-12-08T08:23:48+09:00"),
    (datetime(2026, 3, 29, 1, 30), BERLIN, "2026-03-29T03:30:00+02:00"),
    (datetime(2026, 12, 7, 23, 23, 47, 1), None, "2026-12-07T23:23:48Z"),
])
def test_a_calendar_refusals_earliest_start_reads_back_as_given_and_not_earlier(moment, tz, shown):
    """The refusal's ``give --from X or later``: X typed back is read as the moment (not as a site-local wall
    time of the UTC clock), and never before it (a sub-second change time rounds up)."""
    assert typed(moment, tz) == shown
    back = parse_moment(shown, NOW, ZoneInfo("America/New_York"), "--from")  # any site zone: the offset rules
    assert moment <= back < moment.replace(microsecond=0) + timedelta(seconds=1, microseconds=1)
