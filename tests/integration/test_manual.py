"""Manual and event runs go through the ledger's outbox: never lost, never doubled."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import redis

from hookscheduler.exceptions import ServiceUnavailable
from hookscheduler.ops import manual
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog, utcnow
from tests.helpers import drain, read_out
from tests.integration.opcli_support import assert_one_line_error, migrated, run, sub

EVENTS = {"app1": {
    "hourly": ["app1.tasks.ok"],
    "daily": ["app1.tasks.other"],
    "daily_long": [{"method": "app1.tasks.ok", "name": "nightly-ok"}],
    "daily_maintenance": [{"method": "app1.tasks.other", "name": "nightly-other"}],
    "weekly": [{"method": "app1.tasks.boom", "name": "weekly-boom"},
               {"method": "app1.tasks.boom", "name": "weekly-boom-2"}],
}}


def test_a_manual_run_recorded_while_redis_is_down_is_sent_by_the_next_tick(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    t0 = utcnow()
    ctx, conn = migrated(bench, t0)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with pytest.raises(ServiceUnavailable, match="stay in the outbox"):
        manual.run_job(ctx, dead, "app1.tasks.ok")
    ctx.database()
    row = ScheduledJobLog.get()
    assert (row.trigger, row.status, row.enqueued_at) == ("manual", "queued", None)
    # the tick's outbox pass sends it; a second send of the same row is refused by RQ (unique id)
    # at a moment after the request (I10: a run is sent from the outbox once its time has come; a manual run's
    # is the moment it was asked for) and before the hourly slot: only the outbox is at work
    assert run_pass(ctx, conn, now=row.scheduled_for).resent == 1
    manual.send_recorded(ctx, conn, [_run_of(ctx, row)])
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert ScheduledJobLog.get().status == "complete"
    assert [o["trigger"] for o in read_out(bench)] == ["manual"]


def _run_of(ctx, row):
    from hookscheduler.schedule.send import Run

    return Run(row.rq_job_id, ctx.name, row.job_name, "app1.tasks.ok", row.queue, 300, row.scheduled_for, row.trigger)


def test_trigger_scheduler_event_daily(bench_factory, db_kind):
    bench = bench_factory.make(EVENTS, db=db_kind)
    ctx, conn = migrated(bench, utcnow() - timedelta(minutes=1))
    run(bench, "jobs", "disable", "nightly-other")
    r = run(bench, "trigger-scheduler-event", "daily")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert any(ln.startswith("queued app1.tasks.other as RQ job") and "queue default" in ln for ln in lines)
    assert any(ln.startswith("queued nightly-ok as RQ job") and "queue long" in ln for ln in lines)
    assert any(ln.startswith("left out nightly-other: job stopped") for ln in lines)
    ctx.database()
    rows = list(ScheduledJobLog.select().order_by(ScheduledJobLog.job_name))
    assert [(r.job_name, r.trigger, r.status) for r in rows] == [("app1.tasks.other", "event", "queued"),
                                                                  ("nightly-ok", "event", "queued")]
    drain(ctx.bench.bench_id, conn)
    assert sorted(o["job"] for o in read_out(bench)) == ["app1.tasks.other", "nightly-ok"]

    # --force includes stopped jobs; JSON for scripts
    r = run(bench, "trigger-scheduler-event", "daily", "--force", "--format", "json")
    data = r.json()
    assert data["kind"] == "event"
    assert sorted((o["job_name"], o["status"]) for o in data["outcomes"]) == [
        ("app1.tasks.other", "queued"), ("nightly-ok", "queued"), ("nightly-other", "queued")]


def test_trigger_scheduler_event_by_method_or_name(bench_factory):
    bench = bench_factory.make(EVENTS)
    migrated(bench, utcnow() - timedelta(minutes=1))
    r = run(bench, "trigger-scheduler-event", "app1.tasks.boom", "--format", "json")  # a method: its two jobs
    assert r.code == 0, r.err
    assert r.json()["kind"] == "method"
    assert [(o["job_name"], o["status"]) for o in r.json()["outcomes"]] == [("weekly-boom", "queued"),
                                                                          ("weekly-boom-2", "queued")]
    # a job name: that job; its previous run is still queued, so it is skipped (logged) and exits 1
    r = run(bench, "trigger-scheduler-event", "weekly-boom")
    assert r.code == 1
    assert r.out.startswith("skipped weekly-boom: event run not enqueued") and "still queued" in r.out
    assert "not enqueued" in r.err
    r = run(bench, "trigger-scheduler-event", "weekly-boom", "--force")
    assert r.code == 0 and r.out.startswith("queued weekly-boom as RQ job"), r.out + r.err
    assert_one_line_error(run(bench, "trigger-scheduler-event", "nightly"), 1, "event 'nightly' does not exist",
                          "daily")
    assert_one_line_error(sub(bench, "trigger-scheduler-event", "app1.tasks.nope"), 1, "does not exist")


def test_event_with_no_jobs(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    migrated(bench, datetime(2026, 1, 5))
    r = run(bench, "trigger-scheduler-event", "monthly")
    assert r.code == 0 and "has no jobs" in r.out
