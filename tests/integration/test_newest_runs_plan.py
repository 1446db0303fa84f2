"""`jobs list` and the dashboard's jobs page look up the newest run of each job listed: one probe of the
``(job_id, scheduled_for)`` index from its end per job, which stops at the first run, not a read of every row
of the job's history."""

from __future__ import annotations

import re
from datetime import timedelta

from hookscheduler.ops import jobs as jobs_lib
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow
from tests.integration.opcli_support import migrated, run
from tests.integration.sql_spy import selects

APPS = {"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"], "daily": ["app1.tasks.boom"]}}
H = timedelta(hours=1)


def _seed(now) -> dict[str, int]:
    """300 hourly rows per job; ``ok``'s newest rows are missed (no runs), ``boom`` has none at all; ``other``
    has a backfill run (created last) of an old slot."""
    ids = {j.name: j.id for j in ScheduledJobType.select()}
    rows = []
    for h in range(300, 0, -1):
        slot = now - h * H
        for name in ("app1.tasks.ok", "app1.tasks.other"):
            status = "missed" if name == "app1.tasks.ok" and h <= 3 else ("failed" if h == 4 else "complete")
            rows.append({"job": ids[name], "job_name": name, "scheduled_for": slot, "trigger": "schedule",
                         "status": status, "slots": 1, "first_slot": slot, "last_slot": slot, "created_at": slot,
                         "modified_at": slot, "finished_at": slot + timedelta(seconds=5)})
    old = now - 200 * H
    rows.append({"job": ids["app1.tasks.other"], "job_name": "app1.tasks.other", "scheduled_for": old,
                 "trigger": "backfill", "status": "started", "slots": 1, "first_slot": old, "last_slot": old,
                 "created_at": now, "modified_at": now})
    ScheduledJobLog.insert_many(rows).execute()
    return ids


def _plan(db, sql: str, params: tuple) -> str:
    if isinstance(db, dbmod.pw.SqliteDatabase):
        return " | ".join(str(r[-1]) for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    # A few hundred rows fit in a couple of pages, where PostgreSQL may rightly prefer reading them all; what is
    # checked is that the query lets it probe the index per job, as it does on a ledger of any real size.
    with db.atomic():
        db.execute_sql("SET LOCAL enable_seqscan = off")
        rows = db.execute_sql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql, params).fetchall()
    return " | ".join(r[0].strip() for r in rows)


def test_the_newest_run_of_each_job_is_one_probe_per_job(bench_factory, db_kind, monkeypatch):
    bench = bench_factory.make(APPS, db=db_kind)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    ctx, _ = migrated(bench, now - 400 * H)
    db = ctx.database()
    ids = _seed(now)
    with selects(db, monkeypatch, '"scheduled_job_log" AS "run"') as sent:
        listed = {j["name"]: j for j in jobs_lib.list_jobs()}
    # the run of the latest slot: the missed rows after it are no runs, and a backfill of an old slot is not newer
    assert listed["app1.tasks.ok"]["last_status"] == "failed"
    assert listed["app1.tasks.ok"]["last_log_at"] == now - 4 * H + timedelta(seconds=5)
    assert listed["app1.tasks.other"]["last_status"] == "complete"
    assert listed["app1.tasks.boom"]["last_status"] is None and len(ids) == 3

    assert len(sent) == 1
    plan = _plan(db, *sent[0])
    assert "scheduled_job_log_job_id_scheduled_for" in plan, plan
    if isinstance(db, dbmod.pw.SqliteDatabase):
        # walked from the end of each job's range, already in (slot, id) order: no sort, no scan, no grouping
        assert "TEMP B-TREE" not in plan and "SCAN" not in plan.replace("SCAN scheduled_job_type", ""), plan
    else:
        # the index is walked backwards per job and stops at the first run (a handful of rows per job of its
        # 300: ``ok`` passes its 3 missed rows, ``boom`` has none), with no sort of the job's rows and no scan
        lines = plan.split(" | ")
        scan = next(line for line in lines if "Index Scan Backward using scheduled_job_log_job_id_sched" in line)
        per_loop = re.search(r"actual rows=(\d+) loops=3\)", scan)
        assert per_loop and int(per_loop.group(1)) <= 1, plan
        removed = [int(line.split(":")[1]) for line in lines if line.startswith("Rows Removed by Filter")]
        assert removed and max(removed) <= 1, plan  # per loop: 3 rows over 3 jobs
        assert not any(re.match(r"(->  )?(Sort \(|Seq Scan on scheduled_job_log |Hash)", line) for line in lines), plan
    assert "complete" in run(bench, "jobs", "list").out
    ctx.close()
