"""Slots that pass while the scheduler is paused / disabled / in maintenance are caught up per the job's
``catchup`` policy on resume; a job the operator stopped keeps skipping; ``--until`` ends a pause or a stop by
itself. SQLite and PostgreSQL, real Redis."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from hookscheduler.broker.connection import redis_for
from hookscheduler.config import update_site_config
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.ops import jobs as jobs_lib
from hookscheduler.ops import scheduler as sched
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.inactivity import PAUSE_UNTIL, settle_pause_end
from hookscheduler.store import database as dbmod
from hookscheduler.store.database import MIGRATIONS, get_state, set_state, write_txn
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, SchedulerInactivity
from tests.integration.test_tick import logs, setup_site

JAN5 = datetime(2026, 1, 5, 10, 7)
DEPLOY = datetime(2026, 1, 31, 23, 50)  # a 20-minute deploy across the monthly slot (Feb 1 00:00)


def _pause(ctx, paused: bool) -> None:
    ctx.site = replace(ctx.site, values={**ctx.site.values, "pause_scheduler": paused})


def test_monthly_job_due_during_a_deploy_pause_runs_once_on_resume(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"monthly": ["app1.tasks.ok"]}, db_kind, now=JAN5)
    conn = redis_for(ctx.site)
    _pause(ctx, True)
    assert run_pass(ctx, conn, now=DEPLOY).inactive
    for minute in (0, 5, 10):  # the pause spans the slot: every pass holds it
        r = run_pass(ctx, conn, now=datetime(2026, 2, 1, 0, minute, 1))
        assert (r.fired, r.skipped, r.missed) == (0, 0, 0)
    assert logs() == []
    [stretch] = SchedulerInactivity.select()
    assert (stretch.since, stretch.ended_at) == (DEPLOY, None) and "pause_scheduler" in stretch.reason
    _pause(ctx, False)
    resumed = datetime(2026, 2, 1, 0, 10, 30)
    r = run_pass(ctx, conn, now=resumed)
    assert r.fired == 1
    [row] = logs()
    assert (row.status, row.trigger, row.slots) == ("queued", "catch-up", 1)
    assert row.scheduled_for == datetime(2026, 2, 1)
    assert "while the scheduler was inactive (pause_scheduler is set" in row.reason
    assert ScheduledJobType.get().next_execution == datetime(2026, 3, 1)
    assert SchedulerInactivity.get().ended_at == resumed
    assert run_pass(ctx, conn, now=resumed + timedelta(minutes=1)).fired == 0  # once, not again


def test_catchup_skip_records_the_paused_slots_and_all_runs_each(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": [
        {"method": "app1.tasks.ok", "name": "skipper", "catchup": "skip"},
        {"method": "app1.tasks.other", "name": "each", "catchup": "all", "catchup_limit": 5}]}, db_kind)
    conn = redis_for(ctx.site)
    set_state("scheduler_enabled", "0")
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 30)).inactive == "scheduler disabled"
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 0, 1)).fired == 0
    set_state("scheduler_enabled", "1")
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 20))
    by_job = {}
    for row in logs():
        by_job.setdefault(row.job_name, []).append(row)
    [missed] = by_job["skipper"]
    assert (missed.status, missed.slots, missed.first_slot, missed.last_slot) == (
        "missed", 3, datetime(2026, 1, 5, 11), datetime(2026, 1, 5, 13))
    assert "while the scheduler was inactive (scheduler disabled" in missed.reason
    assert [(x.status, x.scheduled_for.hour) for x in by_job["each"]] == [("queued", 11), ("queued", 12),
                                                                          ("queued", 13)]
    assert r.fired == 3


def test_a_job_stopped_by_the_operator_keeps_skipping_across_a_pause(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    db = ctx.database()
    jobs_lib.set_stopped(db, "app1.tasks.ok", True, "broken upstream", who="ops", now=JAN5)
    _pause(ctx, True)
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    _pause(ctx, False)
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert r.fired == 0
    [row] = logs()
    assert (row.status, row.slots, row.reason) == ("skipped", 2, "job stopped")


def test_jobs_disable_until_skips_before_t_and_runs_from_t(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    db = ctx.database()
    until = datetime(2026, 1, 5, 12, 30)
    jobs_lib.set_stopped(db, "app1.tasks.ok", True, "migration", who="ops", now=JAN5, until=until)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).skipped == 1
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1)).skipped == 1
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 0, 1))
    assert (r.fired, r.skipped) == (1, 0)  # the stop ended at 12:30: the 13:00 slot runs on time
    rows = logs()
    assert [(x.status, x.slots) for x in rows] == [("skipped", 2), ("queued", 1)]
    assert rows[0].reason == "job stopped until 2026-01-05 12:30:00 UTC"
    row = ScheduledJobType.get()  # the pass that decided past the end cleared the flag: every reader agrees
    assert (row.stopped, row.stopped_until, row.stopped_by, row.stopped_at) == (False, None, "--until", until)
    jobs_lib.set_stopped(db, "app1.tasks.ok", True, now=datetime(2026, 1, 5, 13, 5), until=until + timedelta(days=1))
    assert jobs_lib.stop_state(jobs_lib.list_jobs(now=datetime(2026, 1, 6, 12))[0]) == "STOPPED"
    assert jobs_lib.stop_state(jobs_lib.list_jobs(now=datetime(2026, 1, 6, 13))[0]) == "active"


def test_jobs_disable_until_across_a_late_pass(bench_factory, db_kind):
    """No pass between the stop and after its end: the slots before the end are skipped, the rest caught up."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    jobs_lib.set_stopped(ctx.database(), "app1.tasks.ok", True, now=JAN5, until=datetime(2026, 1, 5, 12, 30))
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 15, 20))
    assert (r.fired, r.skipped) == (1, 2)
    skipped, run = logs()
    assert (skipped.status, skipped.first_slot.hour, skipped.last_slot.hour) == ("skipped", 11, 12)
    assert (run.trigger, run.slots, run.first_slot.hour, run.last_slot.hour) == ("catch-up", 3, 13, 15)


def test_disabling_twice_without_a_note_keeps_the_first_note_and_time(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    db = ctx.database()
    jobs_lib.set_stopped(db, "app1.tasks.ok", True, "vendor API down", who="alice", now=JAN5)
    row = jobs_lib.set_stopped(db, "app1.tasks.ok", True, who="bob", now=JAN5 + timedelta(hours=2))
    assert (row.stopped_note, row.stopped_by, row.stopped_at) == ("vendor API down", "alice", JAN5)
    row = jobs_lib.set_stopped(db, "app1.tasks.ok", True, "still down", who="bob", now=JAN5 + timedelta(hours=3),
                               until=JAN5 + timedelta(days=1))
    assert (row.stopped_note, row.stopped_at, row.stopped_until) == ("still down", JAN5, JAN5 + timedelta(days=1))
    row = jobs_lib.set_stopped(db, "app1.tasks.ok", False, who="carol", now=JAN5 + timedelta(hours=4))
    assert (row.stopped, row.stopped_note, row.stopped_until) == (False, None, None)
    # a stop whose end has passed is over: stopping again is a new stop
    jobs_lib.set_stopped(db, "app1.tasks.ok", True, "a", now=JAN5, until=JAN5 + timedelta(hours=1))
    row = jobs_lib.set_stopped(db, "app1.tasks.ok", True, who="dave", now=JAN5 + timedelta(hours=2))
    assert (row.stopped_note, row.stopped_by, row.stopped_until) == (None, "dave", None)
    # stopping a stopped job again without an end removes its end, as a pause without --until does
    jobs_lib.set_stopped(db, "app1.tasks.ok", True, now=JAN5 + timedelta(hours=3), until=JAN5 + timedelta(hours=5))
    row = jobs_lib.set_stopped(db, "app1.tasks.ok", True, "for good", now=JAN5 + timedelta(hours=4))
    assert (row.stopped, row.stopped_until, row.stopped_note, row.stopped_by) == (True, None, "for good", "dave")


def test_scheduler_pause_until_resumes_by_itself_and_clears_the_flag(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, sites={"s1": {}})
    conn = redis_for(ctx.site)
    until = datetime(2026, 1, 5, 11, 20)
    sched.set_paused(ctx, True, until, now=datetime(2026, 1, 5, 10, 50))
    assert SchedulerInactivity.get().since == datetime(2026, 1, 5, 10, 50)  # recorded at the switch
    assert sched.scheduler_state(ctx, now=datetime(2026, 1, 5, 11))[0] == "paused"
    assert "until 2026-01-05 11:20:00 UTC" in (sched.scheduler_state(ctx, now=datetime(2026, 1, 5, 11))[1] or "")
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    assert r.fired == 0 and r.resume_at == until and "until 2026-01-05 11:20:00 UTC" in (r.inactive or "")
    assert sched.scheduler_state(ctx, now=until)[0] == "enabled"  # over at T, even before a pass clears it
    r = run_pass(ctx, conn, now=until)
    assert r.inactive is None and r.fired == 1
    assert logs()[0].trigger == "catch-up" and "pause_scheduler is set until" in logs()[0].reason
    config = json.loads(ctx.site.config_path.read_text())
    assert "pause_scheduler" not in config  # the file says what happens (removed: a bench-wide pause shows through)
    assert get_state(PAUSE_UNTIL) is None  # the end went with its pause
    assert SchedulerInactivity.get().ended_at == until
    reopened = open_site(str(ctx.bench.path), "s1")
    reopened.database()
    assert sched.scheduler_state(reopened)[0] == "enabled"


def _reopened(ctx, **config):
    """The site as the next command or pass reads it, after ``set-config`` (``common``: ``-g``) wrote ``config``."""
    common = config.pop("common", False)
    update_site_config(ctx.site, config, common=common)
    fresh = open_site(str(ctx.bench.path), ctx.name)
    fresh.database()
    return fresh


def _ended_pause(bench_factory, db_kind):
    """`scheduler pause --until 11:20`, and the pass at 11:20 that ends it."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, sites={"s1": {}})
    conn = redis_for(ctx.site)
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 11, 20), now=datetime(2026, 1, 5, 10, 50))
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 20)).inactive is None
    return ctx, conn


@pytest.mark.parametrize("common", [False, True], ids=["site", "bench-wide"])
def test_a_pause_set_in_config_after_an_until_ended_holds(bench_factory, db_kind, common):
    ctx, conn = _ended_pause(bench_factory, db_kind)
    ctx = _reopened(ctx, pause_scheduler=True, common=common)
    assert sched.scheduler_state(ctx, now=datetime(2026, 1, 5, 12))[0] == "paused"
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert (r.inactive, r.fired, r.resume_at) == ("scheduler inactive: pause_scheduler is set", 0, None)
    own = json.loads(ctx.site.config_path.read_text())
    assert own.get("pause_scheduler") is (None if common else True)  # never false: the bench-wide pause holds
    assert sched.scheduler_state(_reopened(ctx), now=datetime(2026, 1, 6))[0] == "paused"


def test_an_until_ending_leaves_a_bench_wide_pause_alone(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, sites={"s1": {}})
    conn = redis_for(ctx.site)
    ctx = _reopened(ctx, pause_scheduler=True, common=True)
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 11, 20), now=datetime(2026, 1, 5, 10, 50))
    assert sched.scheduler_state(ctx, now=datetime(2026, 1, 5, 11, 20))[0] == "paused"  # the bench's pause has no end
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 20))
    assert (r.inactive, r.fired) == ("scheduler inactive: pause_scheduler is set", 0)
    assert "pause_scheduler" not in json.loads(ctx.site.config_path.read_text())
    assert get_state(PAUSE_UNTIL) is None
    r = run_pass(_reopened(ctx), conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert (r.inactive, r.fired) == ("scheduler inactive: pause_scheduler is set", 0)


def test_an_until_whose_pause_was_lifted_in_config_is_forgotten(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, sites={"s1": {}})
    conn = redis_for(ctx.site)
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 11, 20), now=datetime(2026, 1, 5, 10, 50))
    ctx = _reopened(ctx, pause_scheduler=False)  # resumed by hand, before the end
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).inactive is None
    assert get_state(PAUSE_UNTIL) is None
    ctx = _reopened(ctx, pause_scheduler=True)  # a new pause, after the old end: it has no end
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert (r.inactive, r.fired) == ("scheduler inactive: pause_scheduler is set", 0)
    assert json.loads(ctx.site.config_path.read_text())["pause_scheduler"] is True


def test_a_new_pause_until_set_while_an_old_end_is_lifted_wins(bench_factory, db_kind):
    ctx, _conn = _ended_pause(bench_factory, db_kind)
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 11, 20))
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 13))
    settle_pause_end(ctx, "2026-01-05 11:20:00", datetime(2026, 1, 5, 12))  # a pass that read the old end
    assert get_state(PAUSE_UNTIL) == "2026-01-05 13:00:00"
    assert sched.scheduler_state(_reopened(ctx), now=datetime(2026, 1, 5, 12))[0] == "paused"


def test_resume_clears_the_end_and_a_new_pause_without_until_is_open_ended(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, sites={"s1": {}})
    conn = redis_for(ctx.site)
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 11, 20))
    sched.set_paused(ctx, False)
    sched.set_paused(ctx, True)
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert r.inactive == "scheduler inactive: pause_scheduler is set" and r.resume_at is None


def test_schema_v4_upgrades_a_v3_database(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    dbmod.bind(db)
    with write_txn(db):  # a database as version 3 left it
        for step in MIGRATIONS[:3]:
            step(db)
        db.execute_sql('ALTER TABLE "scheduled_job_type" DROP COLUMN "stopped_until"')
        db.execute_sql('DROP TABLE "scheduler_inactivity"')
        set_state("schema_version", "3")
    plan = migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=JAN5)
    assert plan.schema_steps == dbmod.SCHEMA_VERSION - 3 and dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
    assert "stopped_until" in {c.name for c in db.get_columns("scheduled_job_type")}
    assert db.table_exists("scheduler_inactivity")
    assert "scheduler_inactivity_open" in {ix.name for ix in db.get_indexes("scheduler_inactivity")}
    assert dbmod.ensure_schema(db) == 0  # idempotent
    run_pass(ctx, redis_for(ctx.site), now=datetime(2026, 1, 5, 11, 0, 1))
    assert ScheduledJobLog.select().count() == 1


@pytest.mark.parametrize("text,error", [
    ("yesterday", "not in the future"),
    ("2020-01-01", "not in the future"),
    ("2h ago", "not in the future"),
    ("-5m", "--until '-5m' is"),  # quoted as typed, read as 5 minutes ago
    ("2100-01-01", "more than 366 days ahead"),
    ("400d", "more than 366 days ahead"),
    ("next tuesday", "cannot read the --until"),
])
def test_bad_until_is_one_clear_line(text, error):
    from zoneinfo import ZoneInfo

    from hookscheduler.timing.moments import TimeSpecError, parse_until

    with pytest.raises(TimeSpecError) as info:
        parse_until(text, datetime(2026, 1, 5, 10), ZoneInfo("Europe/Paris"))
    assert error in str(info.value) and "\n" not in str(info.value) and info.value.exit_code == 2


def test_until_reads_durations_ahead_and_local_times():
    from zoneinfo import ZoneInfo

    from hookscheduler.timing.moments import parse_until

    now, paris = datetime(2026, 1, 5, 10), ZoneInfo("Europe/Paris")
    assert parse_until("20m", now, paris) == now + timedelta(minutes=20)
    assert parse_until("+2h", now, paris) == now + timedelta(hours=2)
    assert parse_until("2026-01-05T13:00", now, paris) == datetime(2026, 1, 5, 12)  # CET is UTC+1
    assert parse_until("2026-01-05T13:00Z", now, paris) == datetime(2026, 1, 5, 13)


def test_until_through_the_cli(bench_factory, db_kind):
    from tests.integration.opcli_support import assert_one_line_error, migrated, run

    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    migrated(bench, JAN5)
    r = run(bench, "jobs", "disable", "app1.tasks.ok", "--note", "vendor down", "--until", "2h")
    assert r.code == 0 and "until" in r.out and "vendor down" in r.out, r.err
    listed = run(bench, "jobs", "list").out
    assert "STOPPED until" in listed and "vendor down" in listed
    assert run(bench, "jobs", "list", "--format", "json").json()[0]["stopped_until"]
    again = run(bench, "jobs", "disable", "app1.tasks.ok", "--until", "3h")  # again, no note: the first one stays
    assert again.code == 0 and "vendor down" in again.out and "removed" not in again.out
    assert "until" in run(bench, "jobs", "explain", "app1.tasks.ok").out.split("stopped:")[1].splitlines()[0]
    r = run(bench, "scheduler", "pause", "--until", "45m")
    assert r.code == 0 and r.out.startswith("Scheduler is paused for site default until"), r.err
    status = run(bench, "scheduler", "status", "--format", "json").json()
    assert status["status"] == "paused" and status["paused_until"] and "until" in status["reason"]
    assert "pause_scheduler is set until" in run(bench, "scheduler", "status").out
    for args in (["jobs", "disable", "app1.tasks.ok", "--until", "yesterday"],
                 ["scheduler", "pause", "--until", "2h ago"],
                 ["scheduler", "pause", "--until", "whenever"],
                 ["jobs", "disable", "app1.tasks.ok", "--until", "2100-01-01"]):
        assert_one_line_error(run(bench, *args), 2, "--until")
    paris = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind,
                               common={"time_zone": "Europe/Paris"})
    ctx, _ = migrated(paris, JAN5)
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 11, 20), now=JAN5)
    assert "until 2026-01-05 12:20:00 CET" in (sched.scheduler_state(ctx, now=JAN5)[1] or "")  # the site's zone
    assert run(bench, "scheduler", "resume").code == 0
    assert "paused_until" not in run(bench, "scheduler", "status", "--format", "json").json()


def test_a_stop_whose_end_has_come_no_longer_refuses_a_manual_run(bench_factory, db_kind):
    from hookscheduler.exceptions import HookSchedulerError
    from hookscheduler.ops import manual
    from hookscheduler.store.models import utcnow

    ctx = setup_site(bench_factory, {"daily": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    db = ctx.database()
    jobs_lib.set_stopped(db, "app1.tasks.ok", True, "until soon", now=utcnow(), until=utcnow() + timedelta(hours=1))
    with pytest.raises(HookSchedulerError, match="is stopped"):
        manual.run_job(ctx, conn, "app1.tasks.ok")
    ScheduledJobType.update(stopped_until=utcnow() - timedelta(seconds=1)).execute()  # its end has come
    assert manual.run_job(ctx, conn, "app1.tasks.ok").status == "queued"


def test_set_config_of_pause_scheduler_is_a_pause_without_the_old_end(bench_factory, db_kind):
    """`scheduler pause --until 11:20`, no pass until after 11:20, then `set-config pause_scheduler true`: the
    file reads as it did, so a pass would take the new pause for the old one and lift it. set-config forgets
    the old end first: the hand-set pause holds."""
    from tests.integration.opcli_support import run

    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, sites={"s1": {}})
    conn = redis_for(ctx.site)
    sched.set_paused(ctx, True, datetime(2026, 1, 5, 11, 20), now=datetime(2026, 1, 5, 10, 50))
    ctx.close()
    r = run(ctx.bench.path, "set-config", "pause_scheduler", "true", site="s1")
    assert r.code == 0, r.err
    fresh = open_site(str(ctx.bench.path), "s1")
    fresh.database()
    assert get_state(PAUSE_UNTIL) is None
    r = run_pass(fresh, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert (r.inactive, r.fired) == ("scheduler inactive: pause_scheduler is set", 0)
    assert json.loads(fresh.site.config_path.read_text())["pause_scheduler"] is True


def test_slots_held_by_a_pause_shorter_than_the_grace_say_they_passed_while_paused(bench_factory, db_kind):
    """A 40-second pause of a 10-second job: the oldest held slot is not late (within the 60 s grace), but the
    slots before the on-time one passed during the pause, and the catch-up row says so."""
    ctx = setup_site(bench_factory, {"cron": {"* * * * * */10": [
        {"method": "app1.tasks.ok", "name": "tens", "overlap": "allow"}]}},
                     db_kind, now=JAN5)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 7, 10, 500_000)).fired == 1
    _pause(ctx, True)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 7, 15)).inactive
    _pause(ctx, False)
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 7, 55))
    assert r.fired == 1
    [row] = logs(trigger="catch-up")
    assert (row.slots, row.first_slot, row.last_slot) == (4, datetime(2026, 1, 5, 10, 7, 20),
                                                          datetime(2026, 1, 5, 10, 7, 50))
    assert "3 missed slots coalesced into one run" in row.reason
    assert "; they passed while the scheduler was inactive (pause_scheduler is set" in row.reason, row.reason
    # with no stretch after its oldest slot, a late batch words no pause (a downtime, not a pause)
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 9, 5))
    [late] = logs(trigger="catch-up")[1:]
    assert "passed while the scheduler was inactive" not in late.reason and late.slots > 1
