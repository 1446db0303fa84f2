"""Clock skew between hosts: a scheduler whose clock runs ten minutes ahead of the worker's must not declare a
30-second run abandoned (and so defeat ``overlap=skip``); `doctor` reports the skew it can see."""

from __future__ import annotations

from datetime import datetime, timedelta

from rq.job import Job

from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from hookscheduler.worker import ledger as runlog
from tests.integration.opcli_support import run
from tests.integration.test_tick import setup_site


def _started_by_a_live_worker(ctx, conn, rq_id: str, started: datetime) -> str:
    """What a worker on another host leaves: the ledger row started on its clock, RQ's job started by it, and
    its own key (renewed by its heartbeat)."""
    runlog.record_started(ctx.database(), rq_id, "w-elsewhere", started)
    name = f"hst-skew-{rq_id[-8:]}"
    conn.hset(f"rq:job:{rq_id}", mapping={"status": "started", "worker_name": name})
    conn.hset(f"rq:worker:{name}", mapping={"state": "busy", "current_job": rq_id})
    conn.expire(f"rq:worker:{name}", 90)
    return name


def test_a_scheduler_ahead_of_the_worker_does_not_abandon_a_running_run(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"cron": {"* * * * *": [{"method": "app1.tasks.ok", "timeout": 30}]}}, db_kind)
    from hookscheduler.broker.connection import redis_for

    conn = redis_for(ctx.site)
    [rq_id] = run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 8, 1)).sent_ids
    started = datetime(2026, 1, 5, 10, 8, 2)  # the worker's clock
    name = _started_by_a_live_worker(ctx, conn, rq_id, started)
    # the scheduler's clock is ten minutes ahead: the run looks 600 s old, its timeout is 30 s
    result = run_pass(ctx, conn, now=started + timedelta(minutes=10, seconds=5))
    assert result.fired == 0 and result.skipped >= 1
    row = ScheduledJobLog.get(ScheduledJobLog.rq_job_id == rq_id)
    assert row.status == "started"
    skipped = ScheduledJobLog.get(ScheduledJobLog.status == "skipped")
    assert "still running" in skipped.reason
    conn.delete(f"rq:worker:{name}")  # the worker died: Redis expires its key
    ScheduledJobType.update(next_execution=datetime(2026, 1, 5, 10, 19)).execute()
    result = run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 19, 1))
    assert result.fired == 1
    row = ScheduledJobLog.get(ScheduledJobLog.rq_job_id == rq_id)
    assert row.status == "failed" and "its worker is gone from Redis" in row.reason
    Job.fetch(rq_id, connection=conn).delete()


def test_doctor_reports_skew_between_this_host_and_redis(bench_factory, monkeypatch):
    import hookscheduler.ops.doctor as doctor_module

    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, "sqlite")
    bench = ctx.bench.path
    ok = run(bench, "doctor", "--format", "json").json()
    [check] = [c for c in ok["checks"] if c["check"] == "clock"]
    assert check["ok"], check
    monkeypatch.setattr(doctor_module, "utcnow", lambda: utcnow() + timedelta(minutes=10))
    ahead = run(bench, "doctor", "--format", "json").json()
    [check] = [c for c in ahead["checks"] if c["check"] == "clock"]
    assert not check["ok"] and "ahead of Redis" in check["detail"] and "600" in check["detail"], check
