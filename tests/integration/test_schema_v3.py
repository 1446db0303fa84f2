"""Schema v3 (the trouble index): a v2 database is upgraded in place, and the "what went wrong since T"
queries (`jobs missed`, failed runs) can be answered from the index instead of a scan of the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta

from hookscheduler.ops import history
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.integration.schema_support import site_at_version, upgrade
from tests.integration.sql_spy import selects

T0 = datetime(2026, 1, 5, 10, 7)


def _plan(db, sql: str, params: tuple) -> str:
    if isinstance(db, dbmod.pw.SqliteDatabase):
        return " ".join(str(r) for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    db.execute_sql("SET enable_seqscan = off")  # tiny tables: ask whether the index *can* serve the query
    try:
        return " ".join(r[0] for r in db.execute_sql("EXPLAIN " + sql, params).fetchall())
    finally:
        db.execute_sql("RESET enable_seqscan")


def test_v2_database_upgrades_and_trouble_queries_use_the_index(bench_factory, db_kind, monkeypatch):
    ctx, db = site_at_version(bench_factory, db_kind, 2)
    plan = upgrade(ctx, db, T0)
    assert plan.schema_steps == dbmod.SCHEMA_VERSION - 2 and dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
    assert "scheduled_job_log_trouble" in {ix.name for ix in db.get_indexes("scheduled_job_log")}
    job = ScheduledJobType.get()
    for i, status in enumerate(("complete", "failed", "missed", "skipped", "complete")):
        slot = T0 - timedelta(hours=i)
        ScheduledJobLog.create(job=job, job_name=job.name, scheduled_for=slot, trigger="schedule", status=status,
                               slots=3 if i == 4 else 1, first_slot=slot, last_slot=slot)
    since = T0 - timedelta(days=1)
    # the answers are what they were
    assert [r["status"] for r in history.history(status="failed", since=since)] == ["failed"]
    groups = history.missed(since).groups
    assert (groups[0].missed_slots, groups[0].skipped_slots, groups[0].caught_up_slots) == (1, 1, 3)
    # and the index can serve both: the statements they send, explained
    with selects(db, monkeypatch) as sent:
        history.history(status="failed", since=since)
        history.missed(since)
    assert len(sent) == 3  # the missed rows, and their counts per job
    for sql, params in sent:
        plan = _plan(db, sql, params)
        assert "scheduled_job_log_trouble" in plan, (sql, plan)
