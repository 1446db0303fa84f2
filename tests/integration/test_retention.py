"""Retention: the built-in daily job prunes old Scheduled Job Log rows; RQ's failed registries stay bounded."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from rq import Queue

from hookscheduler import enqueue
from hookscheduler.broker.keys import queue_name, scheduled_job_id
from hookscheduler.ops.retention import prune_site_logs, trim_failed_registry
from hookscheduler.schedule.send import Run, send_runs
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from tests.helpers import drain
from tests.integration.bgjobs_support import make_bench, site

pytestmark = pytest.mark.usefixtures("fresh_api")  # the API forgets the bench a previous test chose


def _log(job, status, age_days, now, touched_days=None, rq_job_id=None):
    created = now - timedelta(days=age_days)
    modified = now - timedelta(days=age_days if touched_days is None else touched_days)
    return ScheduledJobLog.create(job=job, job_name=job.name, scheduled_for=created, trigger="schedule",
                                  status=status, queue="default", created_at=created, modified_at=modified,
                                  rq_job_id=rq_job_id)


def test_prune_keeps_recent_rows_and_runs_still_active(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, {"hourly": ["bgapp.tasks.ok"]})
    ctx, _ = site(bench)
    db = ctx.database()
    now = datetime(2026, 3, 1, 12, 0)
    job = ScheduledJobType.get()
    old = [_log(job, s, 40, now) for s in ("complete", "failed", "missed", "skipped")]
    kept = [
        _log(job, "complete", 29, now),
        _log(job, "queued", 90, now, rq_job_id="x-queued"),  # still owed to Redis: the outbox needs it
        _log(job, "started", 90, now, rq_job_id="x-started"),
        _log(job, "skipped", 90, now, touched_days=1),  # a skip the tick is still extending
    ]
    assert prune_site_logs(db, 30, now=now) == len(old)
    assert sorted(r.id for r in ScheduledJobLog.select()) == sorted(r.id for r in kept)
    assert prune_site_logs(db, 30, now=now) == 0


def test_prune_deletes_in_batches(bench_factory, monkeypatch):
    import hookscheduler.ops.retention as retention

    bench = make_bench(bench_factory, "sqlite", {"hourly": ["bgapp.tasks.ok"]})
    ctx, _ = site(bench)
    db = ctx.database()
    now = datetime(2026, 3, 1)
    job = ScheduledJobType.get()
    for _ in range(7):
        _log(job, "complete", 60, now)
    monkeypatch.setattr(retention, "BATCH", 3)
    assert prune_site_logs(db, 30, now=now) == 7 and ScheduledJobLog.select().count() == 0


def test_the_builtin_daily_job_is_synced_and_prunes_its_site(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, {"hourly": ["bgapp.tasks.ok"]}, builtin=True,
                       common={"log_retention_days": 7})
    ctx, conn = site(bench)
    builtin = ScheduledJobType.get(ScheduledJobType.name == "hookscheduler.retention.prune_logs")
    assert (builtin.app, builtin.frequency, builtin.queue, builtin.timeout) == (
        "hookscheduler", "Daily Maintenance", "long", 1500)
    job = ScheduledJobType.get(ScheduledJobType.name == "bgapp.tasks.ok")
    now = utcnow()
    stale, fresh = _log(job, "complete", 8, now), _log(job, "complete", 6, now)
    slot = now.replace(microsecond=0)
    rq_id = scheduled_job_id(ctx.bench.bench_id, ctx.name, builtin.name, slot, "manual")
    ScheduledJobLog.create(job=builtin, job_name=builtin.name, scheduled_for=slot, trigger="manual",
                           status="queued", queue="long", rq_job_id=rq_id)
    send_runs(conn, ctx.bench.bench_id, [Run(rq_id, ctx.name, builtin.name, builtin.method, "long", 1500, slot,
                                             "manual")])
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    ids = {r.id for r in ScheduledJobLog.select()}
    assert stale.id not in ids and fresh.id in ids
    assert ScheduledJobLog.get(ScheduledJobLog.rq_job_id == rq_id).status == "complete"


def test_migrate_syncs_the_builtin_job(bench_factory):
    from tests.integration.bgjobs_support import cli

    bench = make_bench(bench_factory, events={"hourly": ["bgapp.tasks.ok"]}, migrate=False)
    done = cli(bench, "migrate")
    assert done.returncode == 0, done.stderr
    assert "+ hookscheduler.retention.prune_logs  [Daily Maintenance, queue long]" in done.stdout
    assert "0 added" in cli(bench, "migrate").stdout  # and keeps it


def test_failed_registry_is_bounded(bench_factory):
    bench = make_bench(bench_factory, common={"rq_failed_jobs_limit": 3})
    ctx, conn = site(bench)
    jobs = [enqueue("bgapp.tasks.fail_with", message=f"n{i}") for i in range(6)]
    drain(ctx.bench.bench_id, conn)  # the worker trims after every failure
    registry = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).failed_job_registry
    kept = set(registry.get_job_ids())
    assert len(kept) == 3 and jobs[-1].id in kept  # the job that just failed is always kept
    dropped = [j for j in jobs if j.id not in kept]
    assert not any(conn.exists(j.key) for j in dropped)  # dropped jobs are deleted, not only unlisted


def test_trimming_keeps_the_newest_failures(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    jobs = [enqueue("bgapp.tasks.fail_with", message=f"n{i}") for i in range(4)]
    drain(ctx.bench.bench_id, conn)
    registry = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).failed_job_registry
    for age, job in enumerate(reversed(jobs)):  # scores are expiry times: older failures score lower
        conn.zadd(registry.key, {job.id: 2_000_000_000 - age * 60})
    assert trim_failed_registry(conn, registry.name, limit=2) == 2
    assert set(registry.get_job_ids()) == {jobs[2].id, jobs[3].id}
    assert trim_failed_registry(conn, registry.name, limit=2) == 0


def test_prune_logs_outside_a_worker_says_how_to_call_it():
    from hookscheduler.exceptions import HookSchedulerError
    from hookscheduler.ops.retention import prune_logs

    with pytest.raises(HookSchedulerError, match="prune_site_logs"):
        prune_logs()
