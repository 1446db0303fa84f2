"""The worker-side wrapper of scheduled runs: the Scheduled Job Log, the transaction, and log-write failures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from rq import Queue
from rq.job import Job

from hookscheduler.broker.keys import queue_name, started_mark_key
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.ops.manual import run_job
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.reconcile import reconcile_active
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from hookscheduler.worker.runner import MAINTENANCE_AT_START, REMOVED_BEFORE_START
from tests.helpers import drain
from tests.integration.bgjobs_support import create_invoice_table, make_bench, out_rows, site

SLOT = datetime(2026, 1, 5, 11, 0)
AFTER_SLOT = datetime(2026, 1, 5, 11, 0, 1)


def _fire(bench_factory, db_kind, method, **entry):
    bench = make_bench(bench_factory, db_kind, {"hourly": [{"method": method, **entry}]})
    ctx, conn = site(bench)
    result = run_pass(ctx, conn, now=AFTER_SLOT)
    assert result.fired == 1
    return bench, ctx, conn, result.sent_ids[0]


def test_success_is_logged_complete_with_times_worker_and_last_execution(bench_factory, db_kind):
    bench, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    row = ScheduledJobLog.get()
    assert (row.status, row.rq_job_id, row.trigger, row.traceback) == ("complete", rq_id, "schedule", None)
    assert row.started_at <= row.finished_at and row.duration >= 0 and row.worker
    assert ScheduledJobType.get().last_execution == row.started_at
    [seen] = out_rows(bench, "seen")
    assert (seen["kind"], seen["trigger"], seen["frequency"], seen["queue"], seen["rq_job_id"]) == (
        "scheduled", "schedule", "Hourly", "default", rq_id)
    assert Job.fetch(rq_id, connection=conn).get_status() == "finished"


def test_failure_is_logged_with_the_traceback_and_reaches_rqs_failed_registry(bench_factory, db_kind):
    _, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.boom")
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and "RuntimeError: boom: the task failed on purpose" in row.traceback
    assert row.finished_at is not None and row.duration is not None
    assert ScheduledJobType.get().last_execution == row.started_at  # advanced when the run started
    failed = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).failed_job_registry
    assert rq_id in failed.get_job_ids()
    assert "RuntimeError: boom" in Job.fetch(rq_id, connection=conn).latest_result().exc_string


def test_the_run_commits_its_writes_and_rolls_them_back_on_failure(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, {"hourly": ["bgapp.tasks.write_for_slot",
                                                           "bgapp.tasks.write_for_slot_then_fail"]})
    ctx, conn = site(bench)
    invoice = create_invoice_table(ctx)
    assert run_pass(ctx, conn, now=AFTER_SLOT).fired == 2
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert [r.name for r in invoice.select()] == ["slot 2026-01-05T11:00:00"]  # one row: the failed run's is gone
    assert sorted(r.status for r in ScheduledJobLog.select()) == ["complete", "failed"]


def test_a_duplicate_delivery_does_not_run_the_slot_twice(bench_factory, db_kind):
    bench, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    drain(ctx.bench.bench_id, conn)
    q = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn)
    q.enqueue_job(Job.fetch(rq_id, connection=conn))  # RQ hands the same run out again
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "seen")) == 1
    ctx.database()
    assert ScheduledJobLog.get().status == "complete"


def test_a_duplicate_delivery_is_refused_by_the_ledger_when_redis_lost_the_start_mark(bench_factory, db_kind):
    """The start mark is the first guard; the ledger's ``queued -> started`` compare-and-set is the second, and
    the only one left once the mark is gone (a Redis restart without persistence, or its TTL passed)."""
    bench, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    drain(ctx.bench.bench_id, conn)
    assert conn.delete(started_mark_key(ctx.bench.bench_id, rq_id)) == 1
    Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).enqueue_job(Job.fetch(rq_id, connection=conn))
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "seen")) == 1
    ctx.database()
    row = ScheduledJobLog.get()
    assert (row.status, row.rq_job_id) == ("complete", rq_id)


def test_a_broken_log_table_does_not_stop_the_run_nor_last_execution(bench_factory, db_kind):
    """Frappe #41245: the job must run and its next/last execution move even when the log cannot be written."""
    bench, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    db = ctx.database()
    db.execute_sql("ALTER TABLE scheduled_job_log RENAME TO scheduled_job_log_away")
    ctx.close()
    before = datetime.utcnow() - timedelta(seconds=1)
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "seen")) == 1
    assert Job.fetch(rq_id, connection=conn).get_status() == "finished"
    db = ctx.database()
    assert ScheduledJobType.get().last_execution >= before
    db.execute_sql("ALTER TABLE scheduled_job_log_away RENAME TO scheduled_job_log")
    assert ScheduledJobLog.get().status == "queued"  # the worker could not write it ...
    assert reconcile_active(ctx, conn, now=AFTER_SLOT + timedelta(minutes=1)) == 1
    row = ScheduledJobLog.get()  # ... the tick settles it from RQ's outcome
    assert row.status == "complete" and "outcome taken from RQ" in row.reason


def test_an_unreachable_database_does_not_stop_the_run(bench_factory, db_kind, monkeypatch):
    bench, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.boom")
    ctx.close()
    unreachable = ("sqlite:////nonexistent-dir/site.sqlite3" if db_kind == "sqlite"
                   else "postgresql://postgres@127.0.0.1:1/nowhere")
    with monkeypatch.context() as env:
        env.setenv("HOOKSCHEDULER_DB_URL", unreachable)  # what the worker sees
        drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "boom")) == 1  # it ran
    assert Job.fetch(rq_id, connection=conn).get_status() == "failed"  # and RQ has its outcome
    ctx, conn = site(bench)
    assert reconcile_active(ctx, conn, now=AFTER_SLOT + timedelta(minutes=1)) == 1
    assert ScheduledJobLog.get().status == "failed"


def test_an_unreachable_database_is_logged_once_per_job_not_at_each_attempt(bench_factory, monkeypatch, caplog):
    """A job tries its database for its start, its outcome and a retry: one ERROR line, not three."""
    from hookscheduler.worker import runner

    monkeypatch.setattr(runner, "_unavailable_said", {}, raising=False)
    bench, ctx, conn, _rq_id = _fire(bench_factory, "sqlite", "bgapp.tasks.boom")
    ctx.close()
    with monkeypatch.context() as env:
        env.setenv("HOOKSCHEDULER_DB_URL", f"sqlite:///{bench}")  # a folder, not a database: cannot be opened
        drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "boom")) == 1
    said = [r for r in caplog.records if r.levelname == "ERROR" and "database unavailable" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]


def test_the_same_unavailable_database_is_logged_again_after_a_minute_and_a_new_error_at_once(monkeypatch,
                                                                                                caplog):
    from hookscheduler.worker import runner

    monkeypatch.setattr(runner, "_unavailable_said", {})
    for name, error, now in (("a", "down", 0.0), ("a", "down", 30.0), ("a", "other", 31.0), ("b", "down", 32.0),
                             ("a", "down", 61.0)):
        runner._say_unavailable(name, error, now)
    assert [r.getMessage().split(" (")[0:2] for r in caplog.records if r.levelname == "ERROR"] == [
        ["site a: database unavailable", "down); the job runs without it"],
        ["site a: database unavailable", "other); the job runs without it"],
        ["site b: database unavailable", "down); the job runs without it"],
        ["site a: database unavailable", "down); the job runs without it"],
    ]


@pytest.mark.postgres
def test_a_connection_dropped_during_the_run_still_gets_its_outcome_logged(bench_factory):
    bench, ctx, conn, _ = _fire(bench_factory, "postgres", "bgapp.tasks.kill_own_db_connection")
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "kill_own_db_connection")) == 1
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and "server closed the connection" in row.traceback  # written on a new connection
    assert row.started_at is not None and ScheduledJobType.get().last_execution == row.started_at


@pytest.mark.postgres
def test_a_locked_log_table_does_not_hold_the_run_back(bench_factory, monkeypatch):
    """An operator's ``LOCK TABLE scheduled_job_log`` (or a long ALTER): the worker gives up on its log row
    after a short lock timeout and runs the job; last_execution still advances."""
    import psycopg2

    import hookscheduler.worker.ledger as runlog

    monkeypatch.setattr(runlog, "LOCK_TIMEOUT", "300ms")
    bench, ctx, conn, rq_id = _fire(bench_factory, "postgres", "bgapp.tasks.seen")
    ctx.close()
    locker = psycopg2.connect(ctx.site.db_url)  # libpq reads the search_path option from the URL
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE scheduled_job_log IN ACCESS EXCLUSIVE MODE")
            drain(ctx.bench.bench_id, conn)
        assert len(out_rows(bench, "seen")) == 1
        assert Job.fetch(rq_id, connection=conn).get_status() == "finished"
    finally:
        locker.rollback()
        locker.close()
    ctx.database()
    assert ScheduledJobType.get().last_execution is not None
    assert ScheduledJobLog.get().status == "queued"
    assert reconcile_active(ctx, conn, now=AFTER_SLOT + timedelta(minutes=1)) == 1
    assert ScheduledJobLog.get().status == "complete"



@pytest.mark.postgres
def test_the_jobs_transaction_sends_its_begin_with_its_first_statement(bench_factory, monkeypatch):
    """PostgreSQL: a job that touches no table costs no BEGIN and no COMMIT (two round trips per run); one that
    does is one transaction as before, committed, or rolled back when it raises."""
    import peewee as pw

    from hookscheduler.worker.runner import job_transaction

    ctx, _ = site(make_bench(bench_factory, "postgres", {"hourly": ["bgapp.tasks.seen"]}))
    db = ctx.database()
    sent: list[str] = []
    real_cursor = pw.Database.cursor

    class Recording:
        def __init__(self, cursor):
            self._cursor = cursor

        def execute(self, sql, params=None):
            sent.append(sql.split()[0].upper())
            return self._cursor.execute(sql, params)

        def __getattr__(self, name):
            return getattr(self._cursor, name)

    monkeypatch.setattr(pw.Database, "cursor", lambda self, *a, **k: Recording(real_cursor(self, *a, **k)))
    with job_transaction(db):
        pass
    assert sent == [] and db.transaction_depth() == 0
    with job_transaction(db):
        db.execute_sql("UPDATE scheduled_job_type SET modified_at = modified_at")
        assert db.connection().get_transaction_status() == 2  # psycopg2's "in transaction": BEGIN went first
    assert sent == ["BEGIN", "UPDATE", "COMMIT"]
    before = ScheduledJobType.get().stopped
    with pytest.raises(RuntimeError), job_transaction(db):
        ScheduledJobType.update(stopped=not before).execute()
        raise RuntimeError("the job failed")
    assert ScheduledJobType.get().stopped == before  # rolled back
    sent.clear()
    with db.atomic():  # any other transaction begins at once, as peewee does
        pass
    assert sent == ["BEGIN", "COMMIT"]
    assert db.connection().get_transaction_status() == 0  # idle: nothing left open for the next user


def _migrated(bench, db_url: str):
    """The site with ``db_url`` written into its config (as ``set-config db_url`` does), migrated there."""
    from hookscheduler.config import update_site_config
    from hookscheduler.context import open_site
    from hookscheduler.declare.hooks import load_job_specs
    from hookscheduler.declare.migrate import migrate_site
    from tests.integration.bgjobs_support import T0

    update_site_config(open_site(str(bench)).site, {"db_url": db_url})
    ctx = open_site(str(bench))
    migrate_site(ctx.database(create=True, require_schema=False), ctx.name, load_job_specs(ctx.bench, ctx.site.queues),
                 ctx.calendar, now=T0)
    ctx.close()
    return site(bench)


def test_a_running_worker_records_runs_in_the_database_the_site_config_names_now(bench_factory):
    """A worker that read the site's config before (here: this process, which drained a run) records the runs it
    takes after ``set-config db_url`` + ``migrate`` in the new database, not silently in the old one."""
    bench, old, conn, first = _fire(bench_factory, "sqlite", "bgapp.tasks.seen")
    drain(old.bench.bench_id, conn)
    old.close()
    new, conn = _migrated(bench, f"sqlite:///{bench / 'sites' / 'moved.sqlite3'}")
    assert run_pass(new, conn, now=AFTER_SLOT.replace(hour=12)).fired == 1  # the new database's own first run
    [second] = [r.rq_job_id for r in ScheduledJobLog.select()]
    assert second != first
    new.close()
    drain(new.bench.bench_id, conn)
    new.database()
    row = ScheduledJobLog.get()
    assert (row.rq_job_id, row.status) == (second, "complete") and row.worker  # written by the worker, not settled
    old.database()
    assert [(r.rq_job_id, r.status) for r in ScheduledJobLog.select()] == [(first, "complete")]


def test_a_config_that_no_longer_loads_keeps_the_worker_on_its_last_one_logged_once(bench_factory, caplog):
    """An invalid config file (a hand edit) must not stop a worker's runs: the config read before is kept, and the
    problem is logged once, not at every job."""
    bench, ctx, conn, _ = _fire(bench_factory, "sqlite", "bgapp.tasks.seen")
    drain(ctx.bench.bench_id, conn)
    (bench / "sites" / ctx.name / "site_config.json").write_text("{not json")
    for hour in (12, 13):
        assert run_pass(ctx, conn, now=AFTER_SLOT.replace(hour=hour)).fired == 1
        with caplog.at_level("ERROR", logger="hookscheduler.worker.runner"):
            drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert [r.status for r in ScheduledJobLog.select()] == ["complete"] * 3
    assert [r.getMessage() for r in caplog.records if "no longer loads" in r.getMessage()] == [
        f"site {ctx.name}: its config no longer loads (ConfigError: {bench / 'sites' / ctx.name / 'site_config.json'}"
        ": not valid JSON (line 1, column 2: Expecting property name enclosed in double quotes); fix the file); "
        "this worker keeps the config it read before"]


def _unhook(ctx, prune: bool) -> None:
    """The job's hook entry is gone and the site is migrated again (optionally with ``--prune``)."""
    migrate_site(ctx.database(), ctx.name, [], ctx.calendar, now=AFTER_SLOT, prune=prune)
    ctx.close()


def test_a_run_queued_before_its_job_was_removed_from_hooks_is_skipped_not_run(bench_factory, db_kind):
    bench, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    _unhook(ctx, prune=False)
    drain(ctx.bench.bench_id, conn)
    assert out_rows(bench, "seen") == []  # the method did not run
    ctx.database()
    row = ScheduledJobLog.get()
    assert (row.status, row.rq_job_id, row.reason) == ("skipped", rq_id, REMOVED_BEFORE_START)
    assert row.started_at is None
    assert ScheduledJobType.get().last_execution is None  # a run that did not start does not move it
    assert Job.fetch(rq_id, connection=conn).return_value() == {"skipped": REMOVED_BEFORE_START}
    assert reconcile_active(ctx, conn, now=AFTER_SLOT + timedelta(minutes=1)) == 0  # settled: nothing to repair
    assert ScheduledJobLog.get().status == "skipped"


def test_a_run_queued_before_its_job_was_pruned_is_not_run_and_is_logged(bench_factory, db_kind, caplog):
    bench, ctx, conn, rq_id = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    _unhook(ctx, prune=True)
    with caplog.at_level("WARNING", logger="hookscheduler.worker.runner"):
        drain(ctx.bench.bench_id, conn)
    assert out_rows(bench, "seen") == []
    [warning] = [r for r in caplog.records if r.name == "hookscheduler.worker.runner"]
    assert warning.levelname == "WARNING"
    assert "bgapp.tasks.seen" in warning.getMessage() and rq_id in warning.getMessage()
    assert "pruned" in warning.getMessage()
    ctx.database()
    assert ScheduledJobType.select().count() == 0 and ScheduledJobLog.select().count() == 0  # nothing written


def test_a_stopped_jobs_already_queued_run_still_runs(bench_factory, db_kind):
    """A stop decides the slots the scheduler has yet to serve (they are recorded skipped); a run queued before
    it, like one ``jobs run --force`` queues for a stopped job, is run."""
    bench, ctx, conn, _ = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    ScheduledJobType.update(stopped=True).execute()
    ctx.close()
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "seen")) == 1
    ctx.database()
    assert ScheduledJobLog.get().status == "complete"


def _set_maintenance(bench, ctx, on: bool) -> None:
    path = bench / "sites" / ctx.name / "site_config.json"
    if not path.exists():  # a bench of one site keeps its config in the common file
        path = bench / "sites" / "common_site_config.json"
    config = json.loads(path.read_text())
    config["maintenance_mode"] = 1 if on else 0
    path.write_text(json.dumps(config, indent=2))


def test_a_clock_run_queued_before_maintenance_began_is_skipped_not_run(bench_factory, db_kind):
    """Maintenance mode holds the schedule; a run the clock had already queued when it began must not write into
    a site being upgraded either (Frappe's wrapper refuses it). It is settled ``skipped`` with the reason, so the
    slot shows as not served and ``jobs backfill`` can run it later."""
    bench, ctx, conn, _ = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    drain(ctx.bench.bench_id, conn)  # the worker has this site's config cached from an earlier run
    assert run_pass(ctx, conn, now=AFTER_SLOT.replace(hour=12)).fired == 1
    _set_maintenance(bench, ctx, True)
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "seen")) == 1  # the first run only
    ctx.database()
    rows = list(ScheduledJobLog.select().order_by(ScheduledJobLog.scheduled_for))
    assert [(r.status, r.reason) for r in rows] == [("complete", None), ("skipped", MAINTENANCE_AT_START)]
    assert rows[1].started_at is None
    assert ScheduledJobType.get().last_execution == rows[0].started_at  # a run that did not start does not move it
    [second] = [r.rq_job_id for r in rows[1:]]
    assert Job.fetch(second, connection=conn).return_value() == {"skipped": MAINTENANCE_AT_START}
    assert reconcile_active(ctx, conn, now=AFTER_SLOT.replace(hour=12) + timedelta(minutes=1)) == 0
    assert ScheduledJobLog.get(ScheduledJobLog.rq_job_id == second).status == "skipped"


def test_a_forced_request_in_maintenance_still_runs_in_the_worker(bench_factory, db_kind):
    """A person's request was checked against maintenance mode when it was made; ``--force`` answered it."""
    bench, ctx, conn, _ = _fire(bench_factory, db_kind, "bgapp.tasks.seen")
    drain(ctx.bench.bench_id, conn)
    _set_maintenance(bench, ctx, True)
    ctx.close()
    ctx, conn = site(bench)
    name = ScheduledJobType.get().name
    outcome = run_job(ctx, conn, name, force=True, now=AFTER_SLOT + timedelta(minutes=5))
    assert outcome.status == "queued"
    drain(ctx.bench.bench_id, conn)
    assert len(out_rows(bench, "seen")) == 2
    ctx.database()
    assert ScheduledJobLog.get(ScheduledJobLog.rq_job_id == outcome.rq_job_id).status == "complete"
