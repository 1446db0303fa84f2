"""`jobs next` as a pure forecast: what the pass will really do, not the stored past slots."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hookscheduler.schedule.decide import JobState, Stretch, Switches, decide, forecast, is_stopped, stop_over
from hookscheduler.timing.calendar import SiteCalendar

CAL = SiteCalendar(ZoneInfo("UTC"), 60, 0)
NOW = datetime(2026, 1, 5, 15, 20)


def _job(**kw):
    base = dict(id=1, name="j", frequency="Hourly", cron_format="", next_execution=datetime(2026, 1, 5, 11))
    return JobState(**{**base, **kw})


def test_after_downtime_one_catch_up_now_then_the_real_next_slots():
    plan = forecast(_job(), NOW, CAL, grace=60, count=3)
    assert [(f.kind, f.at, f.slot, f.slots) for f in plan] == [
        ("catch-up", NOW, datetime(2026, 1, 5, 15), 5),
        ("run", datetime(2026, 1, 5, 16), datetime(2026, 1, 5, 16), 1),
        ("run", datetime(2026, 1, 5, 17), datetime(2026, 1, 5, 17), 1),
    ]


def test_catchup_skip_and_all_forecasts():
    skip = forecast(_job(catchup="skip"), NOW, CAL, grace=60, count=2)
    assert [(f.kind, f.slots) for f in skip] == [("missed", 5), ("run", 1)]
    each = forecast(_job(catchup="all", catchup_limit=2), NOW, CAL, grace=60, count=4)
    assert [(f.kind, f.slot.hour) for f in each] == [("missed", 13), ("catch-up", 14), ("catch-up", 15), ("run", 16)]


def test_paused_until_t_catches_up_at_t_and_open_ended_pause_holds():
    until = datetime(2026, 1, 5, 16, 30)
    plan = forecast(_job(), NOW, CAL, grace=60, count=2, inactive="paused", resume_at=until)
    assert [(f.kind, f.at, f.slots) for f in plan] == [("catch-up", until, 6), ("run", datetime(2026, 1, 5, 17), 1)]
    held = forecast(_job(), NOW, CAL, grace=60, count=3, inactive="scheduler disabled")
    assert held[0].at is None and held[0].kind == "catch-up" and "when the scheduler is active again" in held[0].note
    assert [f.kind for f in held[1:]] == ["held", "held"]


def test_stopped_with_and_without_end():
    stopped = forecast(_job(next_execution=datetime(2026, 1, 5, 16), stopped=True), NOW, CAL, grace=60, count=2)
    assert [f.kind for f in stopped] == ["skipped", "skipped"]
    ends = _job(next_execution=datetime(2026, 1, 5, 16), stopped=True, stopped_until=datetime(2026, 1, 5, 16, 30))
    assert [f.kind for f in forecast(ends, NOW, CAL, grace=60, count=3)] == ["skipped", "run", "run"]


def test_an_all_job_just_created_fires_one_interval_later():
    created = datetime(2026, 1, 5, 15, 19, 50)
    plan = forecast(_job(frequency="All", next_execution=created + timedelta(seconds=60)), NOW, CAL, grace=60,
                    count=2)
    assert [f.slot for f in plan] == [created + timedelta(seconds=60), created + timedelta(seconds=120)]


def test_is_stopped_and_the_switches_are_pure():
    assert is_stopped(True, None, NOW) and not is_stopped(False, None, NOW)
    assert is_stopped(True, NOW + timedelta(seconds=1), NOW) and not is_stopped(True, NOW, NOW)
    for stopped, until in ((True, None), (False, None), (True, NOW), (True, NOW + timedelta(seconds=1)), (False, NOW)):
        # a stop is one of: running, stopped, or over with its flag still set (the pass clears it)
        assert stop_over(stopped, until, NOW) == (bool(stopped) and not is_stopped(stopped, until, NOW))
    assert stop_over(True, NOW, NOW) and not stop_over(False, NOW, NOW)
    assert Switches(paused=True).reason(NOW) == "scheduler inactive: pause_scheduler is set"
    assert "until 2026-01-05 16:00:00 UTC" in Switches(paused=True, pause_until=NOW + timedelta(minutes=40)).reason(NOW)
    assert Switches(paused=True, pause_until=NOW).reason(NOW) is None
    assert Switches(paused=True, pause_until=NOW, enabled=False).reason(NOW) == "scheduler disabled"
    # an end belongs to the site's own pause: a bench-wide one has none, and outlives the site's
    later = NOW + timedelta(minutes=40)
    bench_only = Switches(paused=True, pause_until=NOW, own_pause=False, bench_pause=True)
    assert bench_only.reason(NOW) == "scheduler inactive: pause_scheduler is set" and bench_only.stale_until()
    both = Switches(paused=True, pause_until=NOW, bench_pause=True)
    assert both.reason(NOW) == "scheduler inactive: pause_scheduler is set" and both.pause_over(NOW)
    assert "until" in (Switches(paused=True, pause_until=later, bench_pause=True).reason(NOW) or "")
    assert Switches(pause_until=later).stale_until() and not Switches(paused=True, pause_until=later).stale_until()


def test_the_pass_s_reason_and_the_status_are_one_reading_of_the_switches():
    every = Switches(maintenance=True, paused=True, disabled_by_config=True, enabled=False, disabled_note="deploy",
                     pause_until=NOW + timedelta(hours=1))
    assert every.causes(NOW) == ["maintenance_mode is set", "pause_scheduler is set until 2026-01-05 16:20:00 UTC",
                                 "disable_scheduler is set", "scheduler disabled: deploy"]
    assert every.causes(NOW, ZoneInfo("Europe/Paris"))[1] == "pause_scheduler is set until 2026-01-05 17:20:00 CET"
    assert every.reason(NOW) == "scheduler inactive: maintenance_mode is set"  # the first cause, as the ledger says
    assert every.stopping() and every.pausing(NOW) and not every.pausing(NOW + timedelta(hours=1))
    paused = Switches(paused=True)
    assert not paused.stopping() and paused.pausing(NOW)
    for switches in (every, paused, Switches(enabled=False), Switches(disabled_by_config=True), Switches()):
        assert (switches.reason(NOW) is None) == (switches.causes(NOW) == [])  # fires exactly when no cause


def test_decide_names_the_pause_only_when_it_overlaps():
    pause = Stretch("scheduler inactive: pause_scheduler is set", datetime(2026, 1, 5, 12, 50),
                    datetime(2026, 1, 5, 14, 10))
    d = decide(_job(), NOW, CAL, grace=60, stretches=[pause])
    assert "while the scheduler was inactive (pause_scheduler is set 2026-01-05 12:50:00 UTC" in d.runs[0].reason
    old = Stretch("scheduler disabled", datetime(2026, 1, 4), datetime(2026, 1, 4, 1))
    d = decide(_job(), NOW, CAL, grace=60, stretches=[old])
    assert "inactive" not in (d.runs[0].reason or "")
