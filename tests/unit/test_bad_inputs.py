"""Inputs that once crashed or were accepted wrongly: far moments, a duplicated ``?password=``, absurd TTLs,
bidirectional controls in notes, and `jobs explain` on a cron with a seconds field."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hookscheduler.config._bench import validate_settings
from hookscheduler.exceptions import BadInput, ConfigError
from hookscheduler.ops.explain import slots_around
from hookscheduler.ops.notes import one_line_note
from hookscheduler.store.database import open_database
from hookscheduler.timing.calendar import SiteCalendar
from hookscheduler.timing.moments import TimeSpecError, parse_moment

NOW = datetime(2026, 3, 29, 12, 0)
UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(
    "text",
    [
        "99999999d",
        "+99999999d",
        "+9999999999999999999999d",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31",
        "1800-01-01",
    ],
)
def test_far_moments_are_a_clear_error(text):
    with pytest.raises(TimeSpecError, match="out of range: name a moment from 1900-01-01 to 3000-01-01"):
        parse_moment(text, NOW, UTC, "--since")


def test_moments_inside_the_range_still_read():
    assert parse_moment("2999-12-31T23:00", NOW, UTC) == datetime(2999, 12, 31, 23)
    assert parse_moment("+365d", NOW, UTC) == datetime(2027, 3, 29, 12)


@pytest.mark.parametrize(
    "url", ["postgresql://app@db/x?password=s3cret", "postgresql://db/x?password=s3cret&user=z&sslmode=disable"]
)
def test_a_password_parameter_is_used_when_the_url_has_none(url):
    db = open_database(url)
    assert db.connect_params["password"] == "s3cret" and db.database == "x"


def test_a_password_given_twice_is_a_clear_error_without_it():
    with pytest.raises(ConfigError, match=r"gives the password both in the URL and as a \?password= parameter") as e:
        open_database("postgresql://app:one1@db/x?password=two2")
    assert "one1" not in str(e.value) and "two2" not in str(e.value)


@pytest.mark.parametrize(("url", "host", "port"), [
    ("postgresql://app@%2Fvar%2Frun%2Fpostgresql/x", "/var/run/postgresql", None),  # libpq's unix-socket form
    ("postgresql://app@%2FSrv%2FPG:5433/x", "/Srv/PG", 5433),  # a socket folder's case is kept
    ("postgresql://app@[::1]:5432/x", "::1", 5432),
    ("postgresql://app:p@Db.Example/x", "Db.Example", None),
])
def test_the_host_of_a_postgresql_url_is_percent_decoded(url, host, port):
    db = open_database(url)
    assert (db.connect_params["host"], db.connect_params["port"], db.database) == (host, port, "x")


@pytest.mark.parametrize("key", ["rq_results_ttl", "rq_job_failure_ttl", "rq_failed_jobs_limit"])
def test_absurd_ttls_and_limits_are_refused(key):
    with pytest.raises(ConfigError, match=key):
        validate_settings({key: 10**30}, "common_site_config.json")
    validate_settings({key: 3600}, "common_site_config.json")


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200f", "\u061c", "\u202a"])
def test_bidi_controls_are_refused_in_notes(char):
    with pytest.raises(BadInput, match=f"--note: contains the bidirectional control U\\+{ord(char):04X}"):
        one_line_note(f"paused for txt.exe{char}gpj", "--note")


def test_ordinary_right_to_left_text_is_a_fine_note():
    assert one_line_note("מנוחה  عطلة", "--note") == "מנוחה عطلة"


@pytest.mark.parametrize(
    ("cron", "at", "expected"),
    [
        ("* * * * * *", datetime(2026, 1, 5, 11, 20, 7), [datetime(2026, 1, 5, 11, 20, s) for s in (5, 6, 7)]),
        (
            "* * * * * */10",
            datetime(2026, 1, 5, 11, 20, 7),
            [datetime(2026, 1, 5, 11, 19, 40), datetime(2026, 1, 5, 11, 19, 50), datetime(2026, 1, 5, 11, 20)],
        ),
    ],
)
def test_explain_finds_the_slot_of_a_seconds_cron(cron, at, expected):
    before, after = slots_around("Cron", cron, at, SiteCalendar(UTC, 60, 0), at)
    assert before == expected
    assert after[0] > at
