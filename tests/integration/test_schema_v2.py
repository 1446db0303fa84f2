"""Schema v2 (leaner ledger indexes): a v1 database is upgraded in place, its rows kept, and the tick's
queries still find the outbox and the active runs."""

from __future__ import annotations

from datetime import datetime

from hookscheduler.broker.connection import redis_for
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.integration.schema_support import site_at_version, upgrade

T0 = datetime(2026, 1, 5, 10, 7)
GONE = {"scheduled_job_log_job_id", "scheduled_job_log_job_id_status", "scheduled_job_log_status_enqueued_at"}
NEW = {"scheduled_job_log_active", "scheduled_job_log_outbox"}


def _indexes(db) -> set[str]:
    return {ix.name for ix in db.get_indexes("scheduled_job_log")}


def test_v1_database_upgrades_in_place_and_the_tick_uses_it(bench_factory, db_kind):
    ctx, db = site_at_version(bench_factory, db_kind, 1)
    assert _indexes(db) >= GONE and not NEW & _indexes(db)
    plan = upgrade(ctx, db, T0)
    assert plan.schema_steps == dbmod.SCHEMA_VERSION - 1
    assert dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
    assert _indexes(db) >= NEW and not GONE & _indexes(db)
    assert dbmod.ensure_schema(db) == 0  # idempotent
    job = ScheduledJobType.get()
    conn = redis_for(ctx.site)
    # an unsent outbox row (a sender died after the commit) is found and sent by the next pass
    ScheduledJobLog.create(job=job, job_name=job.name, scheduled_for=datetime(2026, 1, 5, 10), trigger="schedule",
                           status="queued", queue="default", rq_job_id=f"{ctx.bench.bench_id}_x_sched-outbox")
    r = run_pass(ctx, conn, now=T0)
    assert (r.resent, r.fired) == (1, 0)
    assert ScheduledJobLog.get().enqueued_at is not None
    # the run still counts as active: overlap=skip holds the next slot back
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    assert (r.fired, r.skipped) == (0, 1)
