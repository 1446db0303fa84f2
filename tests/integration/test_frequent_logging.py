"""High-frequency jobs keep the ledger and Redis small: after a day their successful on-time runs are thinned
to one per hour (failures, misses, skips, catch-ups kept; never a row the metrics have not counted), their RQ
results expire quickly, and their start marks are shortened once the ledger has the outcome. SQLite and
PostgreSQL, real Redis."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.broker.keys import started_mark_key
from hookscheduler.metrics import ledger_counts
from hookscheduler.ops.retention import Counted, metrics_counted, thin, thin_frequent_runs
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.send import FREQUENT_RESULT_TTL
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from hookscheduler.timing.frequencies import fires_within_hour
from hookscheduler.worker import marks
from tests.helpers import drain
from tests.integration.opcli_support import migrated

APPS = {"app1": {"all": ["app1.tasks.ok"], "hourly": ["app1.tasks.other"],
                 "cron": {"*/10 * * * *": ["app1.tasks.boom"]}}}
NOW = datetime(2026, 1, 10, 12, 0)


def _add(job, status, when, **kw):
    return ScheduledJobLog.create(job=job.id, job_name=job.name, scheduled_for=when, status=status,
                                  trigger=kw.pop("trigger", "schedule"), slots=kw.pop("slots", 1), queue=job.queue,
                                  reason=kw.pop("reason", None), enqueued_at=when, duration=1.0,
                                  finished_at=when + timedelta(seconds=1), created_at=when, modified_at=when)


def _two_days(job, step_minutes=10):
    start = NOW - timedelta(hours=48)
    return [_add(job, "complete", start + timedelta(minutes=step_minutes * i)) for i in range(48 * 60 // step_minutes)]


def test_successful_runs_of_frequent_jobs_are_thinned_after_a_day(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, _conn = migrated(bench, NOW - timedelta(days=3))
    db = ctx.database()
    every = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    hourly = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.other")
    rows = _two_days(every)
    old = NOW - timedelta(hours=30)
    failed = _add(every, "failed", old + timedelta(minutes=1))
    missed = _add(every, "missed", old + timedelta(minutes=2), reason="no scheduler pass ran for 3 slots", slots=3)
    caught = _add(every, "complete", old + timedelta(minutes=3), trigger="catch-up", slots=4)
    hourly_rows = [_add(hourly, "complete", NOW - timedelta(hours=h)) for h in range(1, 40)]
    deleted = thin_frequent_runs(db, now=NOW)
    left = {r.id for r in ScheduledJobLog.select(ScheduledJobLog.id)}
    assert {failed.id, missed.id, caught.id} <= left  # trouble is never thinned
    assert {r.id for r in hourly_rows} <= left  # an hourly job is not frequent
    young = [r for r in rows if r.created_at >= NOW - timedelta(hours=24)]
    assert {r.id for r in young} <= left  # the last day in full
    old_kept = [r for r in rows if r.id in left and r.created_at < NOW - timedelta(hours=24)]
    assert len(old_kept) == 24 and all(r.scheduled_for.minute == 50 for r in old_kept)  # the last of each hour
    assert deleted == len(rows) - len(young) - 24
    assert thin_frequent_runs(db, now=NOW) == 0  # idempotent


def test_thinning_waits_for_the_metrics_and_keeps_the_counters_exact(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, NOW - timedelta(days=3))
    db = ctx.database()
    every = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    rows = _two_days(every, step_minutes=30)
    assert metrics_counted(conn, ctx.bench.bench_id, ctx.name) is None  # metrics never collected
    ledger_counts.update(conn, ctx.bench.bench_id, ctx.name, grace=0, budget=30)
    counted = metrics_counted(conn, ctx.bench.bench_id, ctx.name)
    assert counted is not None and counted.below == rows[-1].id + 1
    before = ledger_counts.read(conn, ctx.bench.bench_id, ctx.name)[("runs", every.name, "complete")]
    late = _add(every, "complete", NOW - timedelta(hours=40, minutes=5))  # written after the collection
    assert thin_frequent_runs(db, now=NOW, counted=metrics_counted(conn, ctx.bench.bench_id, ctx.name)) > 0
    assert ScheduledJobLog.get_or_none(ScheduledJobLog.id == late.id) is not None  # not counted yet: kept
    ledger_counts.update(conn, ctx.bench.bench_id, ctx.name, grace=0, budget=30)
    after = ledger_counts.read(conn, ctx.bench.bench_id, ctx.name)[("runs", every.name, "complete")]
    assert int(after) == int(before) + 1  # the thinned rows stay counted, the late one is counted once
    pending = Counted(below=10**9, pending=frozenset({late.id}))
    thin_frequent_runs(db, now=NOW, counted=pending)
    assert ScheduledJobLog.get_or_none(ScheduledJobLog.id == late.id) is not None


def test_a_frequent_run_leaves_short_lived_redis_keys(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind, common={"rq_results_ttl": 7 * 86400})
    ctx, conn = migrated(bench, NOW)
    run_pass(ctx, conn, now=NOW + timedelta(seconds=61))
    [row] = list(ScheduledJobLog.select())
    assert row.job_name == "app1.tasks.ok"
    assert int(conn.hget(f"rq:job:{row.rq_job_id}", "result_ttl")) == FREQUENT_RESULT_TTL
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert ScheduledJobLog.get_by_id(row.id).status == "complete"
    ttl = conn.ttl(started_mark_key(ctx.bench.bench_id, row.rq_job_id))
    assert 0 < ttl <= marks.TTL_AFTER_RECORDED
    # an hourly job keeps the configured result TTL and the long mark
    run_pass(ctx, conn, now=datetime(2026, 1, 10, 13, 0, 1))
    hourly = ScheduledJobLog.get(ScheduledJobLog.job_name == "app1.tasks.other")
    assert int(conn.hget(f"rq:job:{hourly.rq_job_id}", "result_ttl")) == 7 * 86400
    drain(ctx.bench.bench_id, conn)
    assert conn.ttl(started_mark_key(ctx.bench.bench_id, hourly.rq_job_id)) > marks.TTL_AFTER_RECORDED


@pytest.mark.parametrize("frequency,cron,expected", [
    ("All", "", True), ("Hourly", "", False), ("Daily", "", False), ("Cron", "*/10 * * * *", True),
    ("Cron", "0,30 * * * *", True), ("Cron", "15 18 * * *", False), ("Cron", "0 */6 * * *", False),
    ("Cron", "30 2 * * * */15", True), ("Cron", "30 2 * * * 0", False),
])
def test_fires_within_hour(frequency, cron, expected):
    assert fires_within_hour(frequency, cron) is expected


def test_thin_keeps_the_last_of_each_hour():
    t = datetime(2026, 1, 1, 10)
    rows = [(1, t), (2, t + timedelta(minutes=20)), (3, t + timedelta(minutes=59)), (4, t + timedelta(hours=1))]
    assert thin(rows) == [1, 2]
    assert thin([]) == []
