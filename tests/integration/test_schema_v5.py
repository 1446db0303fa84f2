"""Schema v5 (the ledger by slot, ``(scheduled_for, id)``): a v4 database is upgraded in place, and `jobs history`
without a job name -- the newest slots of the whole ledger, with or without ``--since`` and ``--status`` -- walks
that index from its end instead of scanning and sorting every row."""

from __future__ import annotations

from datetime import datetime, timedelta

from hookscheduler.ops import history
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.integration.schema_support import site_at_version, upgrade
from tests.integration.sql_spy import selects
from tests.integration.test_schema_v3 import _plan

T0 = datetime(2026, 1, 5, 10, 7)
H = timedelta(hours=1)


def test_v4_database_upgrades_and_the_whole_ledger_s_history_walks_the_slot_index(bench_factory, db_kind,
                                                                                    monkeypatch):
    ctx, db = site_at_version(bench_factory, db_kind, 4)
    plan = upgrade(ctx, db, T0)
    assert plan.schema_steps == dbmod.SCHEMA_VERSION - 4 and dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
    assert "scheduled_job_log_scheduled_for" in {ix.name for ix in db.get_indexes("scheduled_job_log")}
    job = ScheduledJobType.get()
    ScheduledJobLog.insert_many([
        {"job": job.id, "job_name": job.name, "scheduled_for": T0 - (h // 2) * H, "trigger": "schedule",
         "status": "failed" if h % 7 == 0 else "complete", "slots": 1, "created_at": T0, "modified_at": T0}
        for h in range(200)]).execute()
    # the answers: newest slot first, then the newest id of a slot
    rows = history.history(limit=3)
    assert [(r["scheduled_for"], r["id"]) for r in rows] == [(T0, 2), (T0, 1), (T0 - H, 4)]
    assert [r["id"] for r in history.history(since=T0 - H, limit=10)] == [2, 1, 4, 3]
    assert [r["id"] for r in history.history(status="complete", limit=2, offset=1)] == [4, 3]

    with selects(db, monkeypatch) as sent:
        history.history()  # `jobs history`
        history.history(since=T0 - 10 * H)  # `jobs history --since 10h`
        history.history(status="complete")  # `jobs history --status complete`
    assert len(sent) == 3
    for n, (sql, params) in enumerate(sent):
        plan_text = _plan(db, sql, params)
        assert "scheduled_job_log_scheduled_for" in plan_text, (sql, plan_text)
        if isinstance(db, dbmod.pw.SqliteDatabase):
            assert "TEMP B-TREE" not in plan_text and "SCAN scheduled_job_log " not in plan_text + " ", plan_text
        elif n == 1:  # a window: read through the index's range (on a table this small, sorted after)
            assert "Index Cond: (scheduled_for >=" in plan_text, plan_text
        else:  # walked from the index's end, already in order, stopping at the limit
            assert "Index Scan Backward" in plan_text and "Sort" not in plan_text, plan_text
    # a job's own history keeps its (job_id, scheduled_for) range
    with selects(db, monkeypatch) as sent:
        history.history(job.name)
    assert "scheduled_job_log_job_id_scheduled_for" in _plan(db, *sent[-1])
    ctx.close()
