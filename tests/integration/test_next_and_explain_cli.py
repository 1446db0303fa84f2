"""`jobs next` after downtime and during a pause, and `jobs explain` for a new `all` job and a removed one,
through the CLI on SQLite and PostgreSQL (the clock frozen with time-machine)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import time_machine

from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.ops import scheduler as sched
from tests.integration.opcli_support import migrated, run

T0 = datetime(2026, 1, 5, 10, 7)
APPS = {"app1": {"hourly": ["app1.tasks.ok"], "all": ["app1.tasks.other"]}}


def _at(moment: datetime) -> time_machine.travel:
    return time_machine.travel(moment.replace(tzinfo=timezone.utc), tick=False)


def test_jobs_next_after_downtime_shows_the_catch_up_then_the_real_slots(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    migrated(bench, T0)
    with _at(datetime(2026, 1, 5, 15, 20)):  # 11:00 .. 15:00 passed with no scheduler running
        plan = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "3", "--format", "json").json()
        text = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "3").out
    assert [(p["kind"], p["slots"]) for p in plan] == [("catch-up", 5), ("run", 1), ("run", 1)]
    assert plan[0]["utc"] == "2026-01-05T15:20:00Z" and plan[0]["slot"] == "2026-01-05T15:00:00Z"
    assert [p["utc"] for p in plan[1:]] == ["2026-01-05T16:00:00Z", "2026-01-05T17:00:00Z"]
    assert "next pass" in text.splitlines()[1] and "(+4 earlier)" in text


def test_jobs_next_while_paused(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, _ = migrated(bench, T0)
    with _at(datetime(2026, 1, 5, 11, 30)):
        sched.set_paused(ctx, True)
        held = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "2", "--format", "json").json()
        sched.set_paused(ctx, True, datetime(2026, 1, 5, 12, 30))
        timed = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "2", "--format", "json").json()
    assert held[0]["kind"] == "catch-up" and held[0]["utc"] is None and "active again" in held[0]["note"]
    assert held[1]["kind"] == "held"
    assert [(p["kind"], p["utc"], p["slots"]) for p in timed] == [
        ("catch-up", "2026-01-05T12:30:00Z", 2), ("run", "2026-01-05T13:00:00Z", 1)]


def test_explain_an_all_job_just_after_migrate(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    migrated(bench, T0)
    with _at(T0 + timedelta(seconds=5)):
        x = run(bench, "jobs", "explain", "app1.tasks.other", "--format", "json").json()
    assert "never fires at once" in x["verdict"] and "first slot is 2026-01-05 10:08:00" in x["verdict"]
    assert "no record" not in x["verdict"]


def test_explain_a_removed_job_lists_no_upcoming_slot(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, _ = migrated(bench, T0)
    (bench / "apps" / "app1" / "hooks.py").write_text('scheduler_events = {"all": ["app1.tasks.other"]}\n')
    db = ctx.database()
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar,
                 now=datetime(2026, 1, 5, 12, 30))
    with _at(datetime(2026, 1, 5, 13, 0, 5)):
        later = run(bench, "jobs", "explain", "app1.tasks.ok", "--at", "+3h", "--format", "json").json()
        now = run(bench, "jobs", "explain", "app1.tasks.ok", "--format", "json").json()
        nxt = run(bench, "jobs", "next", "app1.tasks.ok", "--format", "json").json()
    assert later["verdict"].startswith("will not run: the job was removed from hooks")
    assert now["verdict"].startswith("did not run: the job was removed from hooks")
    assert "upcoming" not in {e["status"] for e in later["timeline"] + now["timeline"]}
    assert nxt == []
