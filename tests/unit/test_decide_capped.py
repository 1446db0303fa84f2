"""A downtime longer than the enumeration cap still records the run for the latest slot, and its row spans
from the first missed slot to now: nothing between the cap and now is left without a row."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hookscheduler.schedule.decide import MAX_ENUMERATED, JobState, decide
from hookscheduler.timing.calendar import SiteCalendar


def _job(cron: str, current: datetime, catchup: str = "once", limit: int = 3) -> JobState:
    return JobState(id=1, name="j", frequency="Cron", cron_format=cron, next_execution=current,
                    catchup=catchup, catchup_limit=limit)


CLOCK = SiteCalendar(tz=ZoneInfo("Europe/Berlin"), tick_interval=60, maintenance_offset=0)


def test_a_week_down_for_a_per_minute_job_fires_the_latest_slot():
    current = datetime(2026, 3, 20, 0, 0)
    now = current + timedelta(days=8, seconds=5)  # 11,520 minutes: past the cap, across the DST change
    d = decide(_job("* * * * *", current), now, CLOCK, grace=30)
    (entry,) = d.entries
    assert entry.status == "queued" and entry.scheduled_for == now.replace(second=0)
    assert entry.first_slot == current and entry.last_slot == now.replace(second=0)
    assert entry.slots >= MAX_ENUMERATED and "at least" in entry.reason
    assert d.next_execution == now.replace(second=0) + timedelta(minutes=1)


def test_capped_catchup_all_fires_the_most_recent_slots():
    current = datetime(2026, 1, 1)
    now = current + timedelta(days=10, seconds=1)
    d = decide(_job("* * * * *", current, catchup="all", limit=3), now, CLOCK, grace=30)
    fired = [e.scheduled_for for e in d.entries if e.status == "queued"]
    assert fired == [now.replace(second=0) - timedelta(minutes=i) for i in (2, 1, 0)]
    (missed,) = [e for e in d.entries if e.status == "missed"]
    assert missed.first_slot == current and missed.last_slot == now.replace(second=0) - timedelta(minutes=3)


def test_capped_skip_records_up_to_now():
    current = datetime(2026, 1, 1)
    now = current + timedelta(days=9, seconds=2)
    d = decide(_job("* * * * * */30", current, catchup="skip"), now, CLOCK, grace=5)
    (missed, queued) = d.entries
    assert queued.status == "queued" and queued.scheduled_for == now.replace(second=0)
    assert missed.status == "missed" and missed.last_slot == now.replace(second=0) - timedelta(seconds=30)
