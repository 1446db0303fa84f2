from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

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
