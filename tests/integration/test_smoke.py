from __future__ import annotations

from datetime import datetime, timedelta

from hookscheduler.broker.connection import redis_for
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain, read_out


def test_due_slot_fires_once_and_runs(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx = open_site(str(bench))
    t0 = datetime(2026, 1, 5, 10, 7)
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=t0)
    row = ScheduledJobType.get()
    assert row.next_execution == datetime(2026, 1, 5, 11, 0)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=t0 + timedelta(minutes=30)).fired == 0
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    assert r.fired == 1
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 0
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    logs = list(ScheduledJobLog.select())
    assert [(lg.status, lg.trigger) for lg in logs] == [("complete", "schedule")]
    assert read_out(bench)[0]["slot"] == "2026-01-05T11:00:00"
    assert ScheduledJobType.get().last_execution is not None
