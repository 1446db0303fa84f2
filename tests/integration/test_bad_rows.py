"""One bad row (changed with SQL) never stops its site: it is skipped and reported once, shown by `jobs list`
and `doctor`, and the other jobs and the outbox carry on. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from rq.job import Job

from hookscheduler.schedule import rows as rows_module
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.outbox import resend_outbox
from hookscheduler.schedule.step import SiteStep
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain
from tests.integration.bgjobs_support import make_bench, site
from tests.integration.opcli_support import run

AFTER_SLOT = datetime(2026, 1, 5, 11, 0, 1)
NEXT_SLOT = datetime(2026, 1, 5, 12, 0, 1)
HOOKS = {"hourly": ["bgapp.tasks.seen", "bgapp.tasks.add"]}
BAD = "bgapp.tasks.seen"


@pytest.fixture(autouse=True)
def _fresh_reports(monkeypatch):
    monkeypatch.setattr(rows_module, "_reported", set())


def _site_with(bench_factory, db_kind, sql: str, *params):
    bench = make_bench(bench_factory, db_kind, HOOKS)
    ctx, conn = site(bench)
    db = ctx.database()
    p = "%s" if db_kind == "postgres" else "?"
    db.execute_sql(sql.replace("?", p), [*params, BAD])
    return bench, ctx, conn


BAD_ROWS = {
    "invalid cron": (
        "UPDATE scheduled_job_type SET frequency = 'Cron', cron_format = 'every day' WHERE name = ?",
        "cron 'every day' has 2 field(s)",
    ),
    "unknown frequency": (
        "UPDATE scheduled_job_type SET frequency = 'Fortnightly' WHERE name = ?",
        "unknown frequency 'Fortnightly'",
    ),
    "timeout 0": ("UPDATE scheduled_job_type SET timeout = 0 WHERE name = ?", "timeout 0 is not a whole number"),
    "unknown catchup": ("UPDATE scheduled_job_type SET catchup = 'most' WHERE name = ?", "unknown catchup 'most'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_bad_row_is_skipped_reported_once_and_the_others_fire(bench_factory, db_kind, caplog, case):
    sql, problem = BAD_ROWS[case]
    bench, ctx, conn = _site_with(bench_factory, db_kind, sql)
    with caplog.at_level(logging.ERROR):
        first = run_pass(ctx, conn, now=AFTER_SLOT)
        drain(ctx.bench.bench_id, conn)
        second = run_pass(ctx, conn, now=NEXT_SLOT)
    assert (first.fired, first.bad, second.fired, second.bad) == (1, 1, 1, 1)
    fired = {r.job_name for r in ScheduledJobLog.select()}
    assert fired == {"bgapp.tasks.add"}
    reports = [r for r in caplog.records if r.name == "hookscheduler.schedule.rows"]
    assert len(reports) == 1 and problem in reports[0].getMessage() and BAD in reports[0].getMessage()
    listed = {r["name"]: r for r in run(bench, "jobs", "list", "--format", "json").json()}
    assert problem in listed[BAD]["problem"] and listed["bgapp.tasks.add"]["problem"] is None
    table = run(bench, "jobs", "list")
    assert table.code == 0 and "INVALID (skipped)" in table.out
    doctor = run(bench, "doctor", "--format", "json")
    [check] = [c for c in doctor.json()["checks"] if c["check"] == "job rows"]
    assert not check["ok"] and BAD in check["detail"] and problem in check["detail"]


def test_an_outbox_run_rq_refuses_is_failed_with_why_and_the_rest_are_sent(bench_factory, db_kind):
    _, ctx, conn = _site_with(bench_factory, db_kind, "UPDATE scheduled_job_type SET queue = queue WHERE name = ?")
    result = run_pass(ctx, conn, now=AFTER_SLOT)
    assert result.fired == 2
    for rq_id in result.sent_ids:  # as if Redis lost the send: both runs back in the outbox
        Job.fetch(rq_id, connection=conn).delete()
    ScheduledJobLog.update(enqueued_at=None).execute()
    ScheduledJobType.update(timeout=0).where(ScheduledJobType.name == BAD).execute()
    assert len(resend_outbox(ctx, conn, AFTER_SLOT).ids) == 1
    rows = {r.job_name: r for r in ScheduledJobLog.select()}
    assert rows[BAD].status == "failed" and "not sent: RQ refused it" in rows[BAD].reason
    assert rows["bgapp.tasks.add"].enqueued_at is not None
    assert resend_outbox(ctx, conn, AFTER_SLOT).ids == []  # the outbox is empty: no pass dies on it again


def test_a_text_boolean_reads_as_written(bench_factory, db_kind):
    _, ctx, conn = _site_with(bench_factory, db_kind, "UPDATE scheduled_job_type SET stopped = 'false' WHERE name = ?")
    assert ScheduledJobType.get(ScheduledJobType.name == BAD).stopped is False
    assert SiteStep(ctx).run(conn, AFTER_SLOT).fired == 2  # and the sweep stores the word as 0 on SQLite
    assert {r.job_name for r in ScheduledJobLog.select() if r.status == "queued"} == {BAD, "bgapp.tasks.add"}
    if db_kind == "sqlite":
        assert ctx.database().execute_sql("SELECT typeof(stopped) FROM scheduled_job_type").fetchall() == [
            ("integer",),
            ("integer",),
        ]
    ScheduledJobType.update(stopped="TRUE").where(ScheduledJobType.name == BAD).execute()
    assert ScheduledJobType.get(ScheduledJobType.name == BAD).stopped is True


def test_a_next_execution_that_is_not_a_time_is_rescheduled_and_listed(bench_factory, caplog):
    """SQLite only: PostgreSQL's timestamp column refuses such a value."""
    bench, ctx, conn = _site_with(
        bench_factory, "sqlite", "UPDATE scheduled_job_type SET next_execution = 'soon' WHERE name = ?"
    )
    table = run(bench, "jobs", "list")
    assert table.code == 0 and "invalid: 'soon'" in table.out
    with caplog.at_level(logging.WARNING):
        SiteStep(ctx).run(conn, AFTER_SLOT)
    assert "had next_execution 'soon', not a time; rescheduling it forward from now" in caplog.text
    assert ScheduledJobType.get(ScheduledJobType.name == BAD).next_execution == datetime(2026, 1, 5, 12)
    run_pass(ctx, conn, now=NEXT_SLOT)
    assert ScheduledJobLog.get(ScheduledJobLog.job_name == BAD).scheduled_for == datetime(2026, 1, 5, 12)


def test_a_bad_rows_name_cannot_forge_a_log_line(caplog):
    """A name changed with SQL reaches the log quoted and escaped: a newline in it cannot start a line of its
    own that looks like the scheduler's."""
    from hookscheduler.schedule.rows import report_once

    with caplog.at_level("ERROR", logger="hookscheduler.schedule.rows"):
        assert report_once("s1", "x\n2026-12-07 22:00:00 INFO forged", "bad cron")
    [message] = [r.getMessage() for r in caplog.records]
    assert "\n" not in message and "'x\\n2026-12-07 22:00:00 INFO forged'" in message
