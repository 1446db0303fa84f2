"""A job that fails with a message of megabytes quoting a password: the worker redacts it in linear time, the
ledger row gets the failure (clipped), and RQ's own copy of the traceback in Redis is redacted and clipped too."""

from __future__ import annotations

from datetime import datetime

from rq.job import Job

from hookscheduler.schedule.claim import run_pass
from hookscheduler.security.redact import FAILURE_TEXT_LIMIT
from hookscheduler.store.models import ScheduledJobLog
from tests.integration.bgjobs_support import BG_TASKS, cli, purge_app, site

AFTER_SLOT = datetime(2026, 1, 5, 11, 0, 1)
SECRET = "Hug3-S3cret"
TASKS = (
    BG_TASKS
    + f"""

def huge_failure():
    raise RuntimeError("redis://app:{SECRET}@cache:6379/0 " + "aZ0-._~" * 300_000 + " password={SECRET}")
"""
)


def test_a_huge_failure_reaches_the_ledger_and_rq_redacted_and_clipped(bench_factory, db_kind):
    from hookscheduler.context import open_site
    from hookscheduler.declare.hooks import load_job_specs
    from hookscheduler.declare.migrate import migrate_site

    purge_app()
    bench = bench_factory.make({"bgapp": {"hourly": ["bgapp.tasks.huge_failure"]}}, db=db_kind, tasks=TASKS)
    ctx = open_site(str(bench))
    migrate_site(
        ctx.database(create=True, require_schema=False),
        ctx.name,
        load_job_specs(ctx.bench, ctx.site.queues),
        ctx.calendar,
        now=datetime(2026, 1, 5, 10, 7),
    )
    ctx.close()
    ctx, conn = site(bench)
    [rq_id] = run_pass(ctx, conn, now=AFTER_SLOT).sent_ids
    done = cli(bench, "worker", "--burst", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert SECRET not in done.stderr + done.stdout
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed", (row.status, row.reason)
    assert "RuntimeError: redis://app:***@cache:6379/0" in row.traceback and "characters cut" in row.traceback
    assert row.traceback.rstrip().endswith(" password=***") and SECRET not in row.traceback
    assert len(row.traceback) < FAILURE_TEXT_LIMIT + 100
    rq_copy = Job.fetch(rq_id, connection=conn).latest_result().exc_string
    assert "RuntimeError" in rq_copy and SECRET not in rq_copy and len(rq_copy) < FAILURE_TEXT_LIMIT + 100
