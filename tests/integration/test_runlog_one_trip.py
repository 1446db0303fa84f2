"""PostgreSQL: the run's start and outcome in one round trip each, with the careful path behind them."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from hookscheduler.schedule.claim import run_pass
from hookscheduler.store import postgres as pgstore
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from hookscheduler.store.postgres import PostgresStore
from hookscheduler.worker import ledger as runlog
from tests.integration.bgjobs_support import make_bench, site

pytestmark = pytest.mark.postgres
AFTER_SLOT = datetime(2026, 1, 5, 11, 0, 1)
STARTED = datetime(2026, 1, 5, 11, 0, 2)


def _queued(bench_factory) -> tuple[Any, Any, str]:
    bench = make_bench(bench_factory, "postgres", {"hourly": ["bgapp.tasks.seen"]})
    ctx, conn = site(bench)
    result = run_pass(ctx, conn, now=AFTER_SLOT)
    return ctx, ctx.database(), result.sent_ids[0]


class _Recorder:
    """The raw connection, recording every request sent on it (the one-trip path bypasses execute_sql)."""

    def __init__(self, conn: Any, seen: list[str]) -> None:
        self.conn, self.seen = conn, seen

    def cursor(self) -> Any:
        cursor, seen = self.conn.cursor(), self.seen

        class Cursor:
            def execute(self, sql: str, params: Any = None) -> Any:
                seen.append(sql)
                return cursor.execute(sql, params)

            def fetchone(self) -> Any:
                return cursor.fetchone()

        return Cursor()


def _ctx_db_other(db: Any) -> Any:
    import psycopg2

    return psycopg2.connect(dbname=db.database, **db.connect_params)


def _statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = PostgresStore._one_trip_connection
    monkeypatch.setattr(PostgresStore, "_one_trip_connection",
                        lambda store: None if real(store) is None else _Recorder(real(store), seen))
    return seen


def test_start_is_one_request_committed_as_it_ends_and_keeps_the_compare_and_set(bench_factory, monkeypatch):
    _ctx, db, rq_id = _queued(bench_factory)
    requests = _statements(monkeypatch)
    assert runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w1", STARTED) == "started"
    assert len(requests) == 1 and "BEGIN" not in requests[0] and "COMMIT" not in requests[0]
    assert db.connection().get_transaction_status() == 0  # idle: the implicit transaction committed
    other = _ctx_db_other(db)
    try:  # committed, as seen from another session (not a transaction left open on this one)
        with other.cursor() as cur:
            cur.execute("SELECT status FROM scheduled_job_log WHERE rq_job_id = %s", (rq_id,))
            assert cur.fetchone()[0] == "started"
    finally:
        other.close()
    row = ScheduledJobLog.get()
    assert (row.status, row.started_at, row.worker, row.enqueued_at is not None) == ("started", STARTED, "w1", True)
    assert ScheduledJobType.get().last_execution == STARTED
    later = STARTED + timedelta(minutes=5)
    assert runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w2", later) == "duplicate"
    assert ScheduledJobType.get().last_execution == STARTED, "a duplicate delivery does not advance it"
    assert ScheduledJobLog.get().worker == "w1"
    assert runlog.start_in_one_trip(db, "no-such-run", "bgapp.tasks.seen", "w3", later) == "unknown"
    assert ScheduledJobType.get().last_execution == later  # a run the ledger does not know still counts


def test_outcome_is_one_request(bench_factory, monkeypatch):
    _ctx, db, rq_id = _queued(bench_factory)
    assert runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w1", STARTED) == "started"
    done = STARTED + timedelta(seconds=3)
    requests = _statements(monkeypatch)
    assert runlog.finish_in_one_trip(db, rq_id, "failed", done, started=STARTED, traceback="tb", reason="why")
    assert len(requests) == 1
    row = ScheduledJobLog.get()
    assert (row.status, row.finished_at, row.duration, row.traceback, row.reason) == ("failed", done, 3.0, "tb", "why")


def test_a_failed_one_trip_write_rolls_back_and_hands_over(bench_factory):
    _ctx, db, rq_id = _queued(bench_factory)
    db.execute_sql("ALTER TABLE scheduled_job_log RENAME TO scheduled_job_log_away")
    assert runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w1", STARTED) is None
    assert not runlog.finish_in_one_trip(db, rq_id, "complete", STARTED, started=STARTED)
    assert ScheduledJobType.get().last_execution is None  # nothing half-written: the whole request rolled back
    assert db.connection().get_transaction_status() == 0  # idle: usable for the careful path
    db.execute_sql("ALTER TABLE scheduled_job_log_away RENAME TO scheduled_job_log")


def test_inside_an_open_transaction_the_careful_path_is_taken(bench_factory):
    _ctx, db, rq_id = _queued(bench_factory)
    with db.atomic():
        assert runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w1", STARTED) is None
    assert ScheduledJobLog.get().status == "queued"


def test_the_lock_timeout_holds_in_the_one_trip_write_and_ends_with_it(bench_factory, monkeypatch):
    """``SET LOCAL`` in the implicit transaction of one message: a locked ledger fails the write within the
    timeout (the careful path takes over), and the session's own setting is untouched afterwards."""
    _ctx, db, rq_id = _queued(bench_factory)
    monkeypatch.setattr(pgstore, "LOCK_TIMEOUT", "150ms")
    other = _ctx_db_other(db)
    try:
        with other.cursor() as cur:
            cur.execute("BEGIN; LOCK TABLE scheduled_job_log IN ACCESS EXCLUSIVE MODE")
            assert runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w1", STARTED) is None
            cur.execute("ROLLBACK")
    finally:
        other.close()
    assert db.execute_sql("SHOW lock_timeout").fetchone()[0] == "0"
    assert runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w1", STARTED) == "started"


@pytest.mark.parametrize("path", ["one trip", "careful"])
def test_the_start_write_takes_the_job_row_before_the_ledger_row(bench_factory, monkeypatch, path):
    """The order a scheduler's pass takes them in (the job's row ``FOR UPDATE``, then the ledger rows it
    settles): a start write that took the ledger row first could deadlock with a pass (seen once in a 30-minute
    chaos run). Here a pass holds the job's row; the start write must wait without holding the ledger row, so
    that the pass can still update that row and commit."""
    import threading

    _ctx, db, rq_id = _queued(bench_factory)
    other = _ctx_db_other(db)
    result: dict[str, Any] = {}
    try:
        with other.cursor() as cur:
            cur.execute("BEGIN; SET LOCAL lock_timeout = '3s'")
            cur.execute("SELECT id FROM scheduled_job_type WHERE name = %s FOR UPDATE", ("bgapp.tasks.seen",))
            if path == "careful":  # the path taken when the one-trip write fails
                from hookscheduler.worker import runner

                monkeypatch.setattr(runlog, "start_in_one_trip", lambda *a, **k: None)
                write = lambda: runner._record_start(db, rq_id, "bgapp.tasks.seen", "w1", STARTED)  # noqa: E731
            else:
                write = lambda: runlog.start_in_one_trip(db, rq_id, "bgapp.tasks.seen", "w1", STARTED)  # noqa: E731
            t = threading.Thread(target=lambda: result.update(state=write()))
            t.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until the start write waits on the job's row
                cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cur.fetchone()[0]:
                    break
                time.sleep(0.01)
            # the pass settles the run's ledger row: it must not wait for the start write
            cur.execute("UPDATE scheduled_job_log SET reason = 'settled by the pass' WHERE rq_job_id = %s", (rq_id,))
            cur.execute("COMMIT")
            t.join(10)
    finally:
        other.close()
    assert result["state"] == "started"
    row = ScheduledJobLog.get()
    assert row.status == "started" and row.reason == "settled by the pass"
