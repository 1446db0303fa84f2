"""`doctor`'s failed runs of the last 24 hours are counted from the trouble index (which holds every failed row),
not from a scan of the whole ledger; a run that failed today counts whatever its slot (a backfill of old slots)."""

from __future__ import annotations

from datetime import timedelta

from hookscheduler.store import ledger_reads
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from tests.integration.opcli_support import migrated
from tests.integration.sql_spy import selects
from tests.integration.test_schema_v3 import _plan

APPS = {"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}
H = timedelta(hours=1)


def test_failures_since_reads_the_trouble_index(bench_factory, db_kind, monkeypatch):
    bench = bench_factory.make(APPS, db=db_kind)
    now = utcnow().replace(microsecond=0)
    ctx, _ = migrated(bench, now - 100 * H)
    db = ctx.database()
    jobs = {j.name: j.id for j in ScheduledJobType.select()}
    rows = []
    for h in range(1, 80):
        for name in jobs:
            status = "failed" if h % 5 == 0 and (name.endswith("ok") or h < 30) else "complete"
            slot = now - h * H
            rows.append({"job": jobs[name], "job_name": name, "scheduled_for": slot, "trigger": "schedule",
                         "status": status, "slots": 1, "finished_at": slot + timedelta(seconds=4), "created_at": slot,
                         "modified_at": slot})
    old = now - 70 * H  # a backfill of a slot three days ago that failed an hour ago
    rows.append({"job": jobs["app1.tasks.other"], "job_name": "app1.tasks.other", "scheduled_for": old,
                 "trigger": "backfill", "status": "failed", "slots": 1, "finished_at": now - H, "created_at": now - H,
                 "modified_at": now - H})
    ScheduledJobLog.insert_many(rows).execute()

    with selects(db, monkeypatch) as sent:
        found = ledger_reads.failures_since(now - 24 * H, 5)
    # slots 5, 10, 15, 20 hours ago failed for both jobs, and the backfill run
    assert found == (9, [("app1.tasks.other", 5), ("app1.tasks.ok", 4)])
    assert len(sent) == 2
    for sql, params in sent:
        plan = _plan(db, sql, params)
        assert "scheduled_job_log_trouble" in plan, (sql, plan)
    ctx.close()
