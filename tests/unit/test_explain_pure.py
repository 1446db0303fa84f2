"""The pure parts of `jobs explain`: slots around a moment, the timeline and the verdict."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hookscheduler.ops.explain import Facts, slots_around, timeline, verdict
from hookscheduler.ops.history import group_missed
from hookscheduler.timing.calendar import SiteCalendar

UTC_CLOCK = SiteCalendar(ZoneInfo("UTC"), 60, 0)
BERLIN = SiteCalendar(ZoneInfo("Europe/Berlin"), 60, 0)


def test_hourly_slots_around():
    before, after = slots_around("Hourly", "", datetime(2026, 1, 5, 11, 20), UTC_CLOCK, datetime(2026, 1, 5, 12))
    assert before == [datetime(2026, 1, 5, h) for h in (9, 10, 11)]
    assert after == [datetime(2026, 1, 5, h) for h in (12, 13, 14)]


def test_slot_exactly_at_the_moment_is_the_one_asked_about():
    before, _ = slots_around("Daily", "", datetime(2026, 1, 5, 0, 0), UTC_CLOCK, datetime(2026, 1, 6))
    assert before[-1] == datetime(2026, 1, 5)


def test_yearly_and_sparse_cron_look_far_enough_back():
    before, after = slots_around("Yearly", "", datetime(2026, 6, 1), UTC_CLOCK, datetime(2027, 1, 1), before=2)
    assert before == [datetime(2025, 1, 1), datetime(2026, 1, 1)]
    assert after[0] == datetime(2027, 1, 1)
    before, _ = slots_around("Cron", "0 3 29 2 *", datetime(2026, 6, 1), UTC_CLOCK, datetime(2028, 2, 29), before=1)
    assert before == [datetime(2024, 2, 29, 3)]


def test_all_slots_follow_the_rows_grid_both_ways():
    anchor = datetime(2026, 1, 5, 10, 0, 30)
    before, after = slots_around("All", "", datetime(2026, 1, 5, 9, 58), UTC_CLOCK, anchor, before=2, after=1)
    assert before == [datetime(2026, 1, 5, 9, 56, 30), datetime(2026, 1, 5, 9, 57, 30)]
    assert after == [datetime(2026, 1, 5, 9, 58, 30)]


def test_daily_slots_across_spring_forward_in_local_time():
    # Berlin midnight is 23:00 UTC in winter and 22:00 UTC in summer
    before, after = slots_around("Daily", "", datetime(2026, 3, 29, 12), BERLIN, datetime(2026, 3, 29, 22), before=2)
    assert before == [datetime(2026, 3, 27, 23), datetime(2026, 3, 28, 23)]
    assert after[:2] == [datetime(2026, 3, 29, 22), datetime(2026, 3, 30, 22)]


def _job(**kw):
    base = {"name": "app.tasks.ok", "created_at": datetime(2026, 1, 1), "removed": False, "removed_at": None,
            "next_execution": datetime(2026, 1, 5, 12), "stopped": False, "stopped_note": None}
    return {**base, **kw}


def _row(slot, status, **kw):
    base = {"id": 1, "job_name": "app.tasks.ok", "scheduled_for": slot, "trigger": "schedule", "status": status,
            "reason": None, "slots": 1, "first_slot": slot, "last_slot": slot, "queue": "default",
            "rq_job_id": "rq1", "enqueued_at": slot, "started_at": slot, "finished_at": slot + timedelta(seconds=2),
            "duration": 2.0, "worker": "w1", "traceback": None, "created_at": slot}
    return {**base, **kw}


def _facts(slot, rows=(), **kw):
    base = dict(job=_job(), slot=slot, now=datetime(2026, 1, 5, 11, 30), rows=list(rows), scheduler_status="enabled",
                scheduler_reason=None, scheduler_alive=True, last_tick=datetime(2026, 1, 5, 11, 29))
    base.update(kw)
    return Facts(**base)


SLOT = datetime(2026, 1, 5, 11)


def test_verdicts_from_the_ledger():
    assert verdict(_facts(SLOT, [_row(SLOT, "complete")])).startswith("ran: completed at 2026-01-05 11:00:02")
    failed = _row(SLOT, "failed", traceback="Traceback...\nRuntimeError: boom")
    assert "FAILED" in verdict(_facts(SLOT, [failed])) and "RuntimeError: boom" in verdict(_facts(SLOT, [failed]))
    skipped = _row(SLOT, "skipped", reason="job stopped", rq_job_id=None)
    assert verdict(_facts(SLOT, [skipped])) == "did not run: skipped: job stopped"
    stretch = _row(datetime(2026, 1, 5, 11), "skipped", reason="scheduler inactive: pause_scheduler is set",
                   slots=3, first_slot=datetime(2026, 1, 5, 9), last_slot=datetime(2026, 1, 5, 11))
    assert "3 slots" in verdict(_facts(datetime(2026, 1, 5, 10), [stretch]))
    catch_up = _row(datetime(2026, 1, 5, 11), "complete", trigger="catch-up", slots=3,
                    first_slot=datetime(2026, 1, 5, 9), last_slot=datetime(2026, 1, 5, 11))
    assert verdict(_facts(datetime(2026, 1, 5, 9), [catch_up])).startswith("ran late: one catch-up run")


def test_manual_rows_do_not_answer_for_a_slot():
    manual = _row(SLOT, "complete", trigger="manual")
    assert "no record" in verdict(_facts(SLOT, [manual], job=_job(next_execution=datetime(2026, 1, 5, 12))))


def test_verdicts_without_a_row():
    assert "predates the job" in verdict(_facts(SLOT, job=_job(created_at=datetime(2026, 1, 5, 11, 10))))
    unserved = _facts(SLOT, job=_job(next_execution=SLOT), scheduler_alive=False, last_tick=None)
    assert verdict(unserved).startswith("not run yet") and "no `hookscheduler schedule` process" in verdict(unserved)
    assert "was removed" in verdict(_facts(SLOT, job=_job(removed=True, removed_at=datetime(2026, 1, 5, 10))))
    pruned = _facts(datetime(2025, 10, 1), job=_job(created_at=datetime(2025, 1, 1)), oldest_log=datetime(2025, 12, 10),
                    retention_days=30)
    assert "pruned" in verdict(pruned)


def test_future_verdicts():
    future = datetime(2026, 1, 5, 12)
    assert verdict(_facts(future)).endswith("nothing stands in its way")
    assert "stopped" in verdict(_facts(future, job=_job(stopped=True, stopped_note="broken")))
    assert "paused" in verdict(_facts(future, scheduler_status="paused", scheduler_reason="pause_scheduler is set"))
    assert "skip-next" in verdict(_facts(future, job=_job(next_execution=datetime(2026, 1, 5, 13))))


def test_verdict_times_are_in_the_site_zone():
    text = verdict(_facts(SLOT, [_row(SLOT, "complete")], tz=ZoneInfo("Europe/Berlin")))
    assert "2026-01-05 12:00:02 CET" in text


def test_timeline_marks_each_slot():
    rows = [_row(datetime(2026, 1, 5, 10), "complete")]
    t = timeline([datetime(2026, 1, 5, h) for h in (9, 10, 12)], rows, datetime(2026, 1, 5, 11, 30))
    assert [e["status"] for e in t] == ["no record", "complete", "upcoming"]


def test_group_missed_counts_per_job():
    rows = [
        _row(SLOT, "missed", slots=4, job_name="b"),
        _row(SLOT, "skipped", slots=2, job_name="a"),
        _row(SLOT, "complete", trigger="catch-up", slots=3, job_name="a"),
    ]
    groups = group_missed(rows)
    assert [g.job_name for g in groups] == ["a", "b"]
    a, b = groups
    assert (a.missed_slots, a.skipped_slots, a.caught_up_slots) == (0, 2, 3)
    assert b.missed_slots == 4
    assert a.entries[1]["outcome"].startswith("one run for 3 slots, complete")


def test_an_all_job_just_after_migrate_says_when_it_first_fires():
    """Right after `migrate` the slot at or before now is the job's creation on its grid: the verdict says a
    new job never fires at once and names its first slot, instead of "no record ... schedule changed"."""
    created = datetime(2026, 1, 5, 11, 29, 50)
    job = _job(created_at=created, next_execution=created + timedelta(seconds=60))
    before, _ = slots_around("All", "", datetime(2026, 1, 5, 11, 30), UTC_CLOCK, job["next_execution"])
    text = verdict(_facts(before[-1], job=job, first_slot=created + timedelta(seconds=60)))
    assert "is the moment the job was created" in text and "never fires at once" in text
    assert "first slot is 2026-01-05 11:30:50" in text and "no record" not in text


def test_a_slot_before_a_job_that_has_run_since_names_its_real_first_slot():
    """After several runs the row's next slot is hours past the first: the verdict names the first slot (in the
    past tense), not the next one; without a known first slot it says "next slot", which is true."""
    job = _job(created_at=datetime(2026, 1, 5, 8, 7), next_execution=datetime(2026, 1, 5, 12))
    text = verdict(_facts(datetime(2026, 1, 5, 8), job=job, first_slot=datetime(2026, 1, 5, 9)))
    assert text.endswith("its first slot was 2026-01-05 09:00:00 UTC") and "12:00" not in text
    assert verdict(_facts(datetime(2026, 1, 5, 8), job=job)).endswith("its next slot is 2026-01-05 12:00:00 UTC")


def test_a_removed_job_has_no_upcoming_slots():
    removed_at = datetime(2026, 1, 5, 10)
    job = _job(removed=True, removed_at=removed_at, next_execution=None)
    assert verdict(_facts(datetime(2026, 1, 5, 12), job=job)).startswith("will not run: the job was removed")
    assert "upcoming" not in verdict(_facts(datetime(2026, 1, 5, 12), job=job)).replace("no upcoming", "")
    assert verdict(_facts(SLOT, job=job)).startswith("did not run: the job was removed")
    slots = [datetime(2026, 1, 5, h) for h in (9, 10, 12)]
    t = timeline(slots, [_row(datetime(2026, 1, 5, 9), "complete")], datetime(2026, 1, 5, 11, 30), removed_at)
    assert [e["status"] for e in t] == ["complete", "removed", "removed"]


def test_held_and_timed_stop_verdicts():
    paused = dict(scheduler_status="paused", scheduler_reason="pause_scheduler is set")
    held = verdict(_facts(SLOT, job=_job(next_execution=SLOT, catchup="skip"), **paused))
    assert held.startswith("not run yet: the slot is due and held while the scheduler is paused")
    assert "catchup=skip applies: it is recorded as missed" in held
    until = datetime(2026, 1, 5, 14)
    assert "until 2026-01-05 14:00:00" in verdict(_facts(datetime(2026, 1, 5, 12), resume_at=until, **paused))
    after = verdict(_facts(datetime(2026, 1, 5, 15), job=_job(next_execution=datetime(2026, 1, 5, 15)),
                           resume_at=until, **paused))
    assert after.endswith("nothing stands in its way")
    stopped = _job(stopped=True, stopped_note="vendor", stopped_until=datetime(2026, 1, 5, 13))
    assert "stopped until 2026-01-05 13:00:00" in verdict(_facts(datetime(2026, 1, 5, 12), job=stopped))
    later = _job(stopped=True, stopped_until=datetime(2026, 1, 5, 13), next_execution=datetime(2026, 1, 5, 14))
    assert verdict(_facts(datetime(2026, 1, 5, 14), job=later)).endswith("nothing stands in its way")


def test_a_thinned_slot_of_a_frequent_job_says_so():
    old = datetime(2026, 1, 3, 10, 0, 10)
    job = _job(next_execution=datetime(2026, 1, 5, 11, 31))
    text = verdict(_facts(old, job=job, frequent=True))
    assert text.startswith("no record: the job fires more than once an hour") and "thinned" in text
    assert "thinned" not in verdict(_facts(old, job=job, frequent=False))
    assert "thinned" not in verdict(_facts(datetime(2026, 1, 5, 11, 0, 10), job=job, frequent=True))
