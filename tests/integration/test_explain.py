"""`jobs explain`: why a job did or did not run at a moment, from the ledger and the live state."""

from __future__ import annotations

from datetime import datetime

from hookscheduler.context import open_site
from hookscheduler.schedule.claim import run_pass
from tests.helpers import drain
from tests.integration.opcli_support import migrated, run, sub

APPS = {"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}


def _explain(bench, *args):
    r = run(bench, "jobs", "explain", *args, "--format", "json")
    assert r.code == 0, r.err
    return r.json()


def test_explain_through_a_day_of_events(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    bench_id = ctx.bench.bench_id
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    drain(bench_id, conn)

    x = _explain(bench, "app1.tasks.ok", "--at", "2026-01-05T11:20")
    assert x["slot"] == "2026-01-05T11:00:00Z"
    assert x["verdict"].startswith("ran: completed at ")  # the worker ran it just now, on the real clock
    assert [(t["slot"], t["status"]) for t in x["timeline"][:3]] == [
        ("2026-01-05T09:00:00Z", "no record"), ("2026-01-05T10:00:00Z", "no record"),
        ("2026-01-05T11:00:00Z", "complete")]
    assert {"job", "at", "slot", "verdict", "timeline", "rows", "active", "scheduler"} <= set(x)
    # before the job existed
    assert "predates the job" in _explain(bench, "app1.tasks.ok", "--at", "2026-01-05T10:30")["verdict"]

    # stopped: the slot is skipped with the reason, and the stop flag is shown with who and why
    run(bench, "jobs", "disable", "app1.tasks.other", "--note", "vendor outage")
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 5))
    x = _explain(bench, "app1.tasks.other", "--at", "2026-01-05T12:00")
    assert x["verdict"] == "did not run: skipped: job stopped"
    text = run(bench, "jobs", "explain", "app1.tasks.other", "--at", "2026-01-05T12:00").out
    assert "stopped:   since" in text and "vendor outage" in text
    assert "-> 2026-01-05 12:00:00 UTC  skipped" in text

    # the 12:00 run of ok is still queued (no worker): the overlap state says so
    x = _explain(bench, "app1.tasks.ok", "--at", "2026-01-05T12:00")
    assert x["verdict"].startswith("queued since") and "waiting for a worker on queue 'default'" in x["verdict"]
    assert len(x["active"]) == 1
    assert "overlap:   1 run(s) still active" in run(bench, "jobs", "explain", "app1.tasks.ok", "--at",
                                                       "2026-01-05T12:00").out
    drain(bench_id, conn)

    # downtime 12:00 -> 15:00: 13:00 ran late, in one catch-up run
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 15, 0, 30))
    drain(bench_id, conn)
    x = _explain(bench, "app1.tasks.ok", "--at", "2026-01-05T13:30")
    assert x["verdict"].startswith("ran late: one catch-up run at 2026-01-05 15:00:00 UTC covered 3 slots")

    # 16:00 has passed (the real clock is later) but no pass served it, and no scheduler process is alive
    x = _explain(bench, "app1.tasks.ok", "--at", "2026-01-05T16:10")
    assert x["verdict"].startswith("not run yet: the slot is due but no scheduler pass has served it")
    assert "no `hookscheduler schedule` process is running" in x["verdict"]
    assert x["scheduler"]["scheduler_alive"] is False

    # paused: the slot is held (caught up on resume, per the job's catchup policy), and the line says paused
    run(bench, "scheduler", "pause")
    ctx = open_site(str(bench))  # the site's config as the next pass reads it
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 17, 0, 10))
    x = _explain(bench, "app1.tasks.ok", "--at", "2026-01-05T17:00")
    assert "pause_scheduler is set" in x["verdict"] and x["scheduler"]["status"] == "paused"
    assert x["verdict"].startswith("not run yet: the slot is due and held while the scheduler is paused")
    assert "catchup=once applies: one catch-up run covers it" in x["verdict"]
    # a future slot under a paused scheduler
    x = _explain(bench, "app1.tasks.ok", "--at", "+3h")
    assert x["verdict"].startswith("upcoming at") and "paused" in x["verdict"]


def test_a_slot_before_the_job_names_its_first_slot_after_it_has_run(bench_factory):
    """The job ran at 11:00, 12:00 and 13:00 and its row's next slot is 14:00: a slot before its creation says its
    first slot was 11:00 (the first ledger row), not 14:00."""
    bench = bench_factory.make(APPS)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    for hour in (11, 12, 13):
        run_pass(ctx, conn, now=datetime(2026, 1, 5, hour, 0, 5))
        drain(ctx.bench.bench_id, conn)
    x = _explain(bench, "app1.tasks.ok", "--at", "2026-01-05T10:30")
    assert x["job"]["next_execution"] == "2026-01-05T14:00:00Z"
    assert x["verdict"].endswith("its first slot was 2026-01-05 11:00:00 UTC"), x["verdict"]
    assert x["rows"][0]["scheduled_for"] == "2026-01-05T11:00:00Z"


def test_explain_in_the_sites_zone_through_a_process(bench_factory):
    bench = bench_factory.make(APPS, common={"time_zone": "Europe/Berlin"})
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    drain(ctx.bench.bench_id, conn)
    r = sub(bench, "jobs", "explain", "app1.tasks.ok", "--at", "2026-01-05 12:20")  # local time, CET
    assert r.code == 0, r.err
    assert "verdict:   ran: completed at" in r.out and "2026-01-05 12:20:00 CET (site default)" in r.out
    assert "-> 2026-01-05 12:00:00 CET  complete" in r.out


def test_explain_still_answers_when_redis_is_down(bench_factory, monkeypatch):
    bench = bench_factory.make(APPS)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    monkeypatch.setenv("HOOKSCHEDULER_REDIS_URL", "redis://:pw-123@127.0.0.1:1/0")
    r = run(bench, "jobs", "explain", "app1.tasks.ok", "--at", "2026-01-05T11:00")
    assert r.code == 0, r.err
    assert "queued since" in r.out and "liveness unknown (cannot reach Redis" in r.out and "pw-123" not in r.out
