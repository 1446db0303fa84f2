"""The Frappe key classes, ``scheduler_interval`` as a cron string, and where ``All`` then fires."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hookscheduler.config import KNOWN_KEYS, Settings, validate_settings
from hookscheduler.config.frappe_keys import FRAPPE_IGNORED, FRAPPE_NOTED, ignored_notes
from hookscheduler.timing.calendar import SiteCalendar, next_slot
from hookscheduler.web.present import schedule_text


def test_key_classes_do_not_overlap():
    assert not (set(KNOWN_KEYS) & FRAPPE_IGNORED) and not (set(KNOWN_KEYS) & set(FRAPPE_NOTED))
    assert not (FRAPPE_IGNORED & set(FRAPPE_NOTED))
    assert {"scheduler_interval", "background_workers", "default_site"} <= set(KNOWN_KEYS)  # honoured, not ignored


#: Keys stock Frappe reads from a site's config (frappe.conf): each once made every command exit 2.
STANDARD_SITE_KEYS = {
    "rate_limit": {"limit": 600, "window": 3600}, "deny_multiple_sessions": 1, "read_from_replica": 1,
    "replica_host": "10.0.0.2", "allow_reads_during_maintenance": 1, "http_port": 8000,
    "dropbox_access_key": "k", "disable_session_cache": 1, "sentry_dsn": "https://k@sentry.example/1",
}


@pytest.mark.parametrize("key", sorted(STANDARD_SITE_KEYS))
def test_standard_frappe_site_keys_are_accepted_silently(key):
    assert key in FRAPPE_IGNORED
    validate_settings({key: STANDARD_SITE_KEYS[key]}, "site_config.json")  # no error


def test_notes_only_for_truthy_values_and_name_the_file():
    assert ignored_notes({"use_rq_auth": 0, "db_host": "x"}, "f.json") == []
    notes = ignored_notes({"max_queued_jobs": 500, "redis_queue_sentinels": ["h:1"]}, "f.json")
    assert [n.split(":")[0] for n in notes] == ["f.json", "f.json"] and "Sentinel" in notes[1]


@pytest.mark.parametrize(("seconds", "cron"), [(None, None), (60, "*/1 * * * *"), (240, "*/4 * * * *"),
                                               (420, "*/7 * * * *"), (3600, "0 * * * *")])
def test_all_cron(seconds, cron):
    assert Settings.from_values({"scheduler_interval": seconds}).all_cron == cron


def test_all_follows_the_wall_clock_in_the_site_zone():
    """Kolkata is UTC+05:30: */4 in local minutes is :30, :34, ... in UTC, as Frappe (local time) fires it."""
    cal = SiteCalendar(ZoneInfo("Asia/Kolkata"), 60, 0, all_cron="*/4 * * * *")
    assert next_slot("All", "", datetime(2026, 1, 5, 10, 29), cal) == datetime(2026, 1, 5, 10, 30)
    assert next_slot("All", "", datetime(2026, 1, 5, 10, 30), cal) == datetime(2026, 1, 5, 10, 34)
    plain = SiteCalendar(ZoneInfo("Asia/Kolkata"), 60, 0)
    assert next_slot("All", "", datetime(2026, 1, 5, 10, 29, 10), plain) == datetime(2026, 1, 5, 10, 30, 10)


def test_schedule_text_of_all():
    assert schedule_text("All", "", SiteCalendar(ZoneInfo("UTC"), 60, 0)) == "Every 60 seconds"
    assert schedule_text("All", "", SiteCalendar(ZoneInfo("UTC"), 60, 0, all_cron="*/4 * * * *")) == "Every 4 minutes"
    # the description is of the cron the calendar fires the row on, whatever the row's kind
    every5 = SiteCalendar(ZoneInfo("UTC"), 60, 0, all_cron="*/4 * * * *")
    assert schedule_text("Cron", "*/5 * * * *", every5) == "Every 5 minutes"
    assert schedule_text("Hourly Maintenance", "", every5).endswith("(plus the site's maintenance offset)")
