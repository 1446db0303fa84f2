"""Storage faults say what went wrong: a commit that fails because the disk is full (or the database turned
read-only) reports that, not the "cannot rollback - no transaction is active" of the rollback that follows."""

from __future__ import annotations

import peewee as pw
import pytest

from hookscheduler.store.database import write_txn
from hookscheduler.worker.runner import job_transaction
from tests.integration.bgjobs_support import make_bench, site


def _commit_fails(db: pw.Database, monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """The database gives the transaction up at COMMIT, as SQLite does when the disk fills (it rolls back
    itself, so the rollback that follows finds no transaction)."""

    def commit() -> None:
        db.execute_sql("ROLLBACK")
        raise pw.OperationalError(message)

    monkeypatch.setattr(db, "commit", commit)


@pytest.mark.parametrize("message", ["database or disk is full", "attempt to write a readonly database"])
@pytest.mark.parametrize("txn", [write_txn, job_transaction])
def test_a_failed_commit_reports_its_real_cause(bench_factory, db_kind, monkeypatch, message, txn):
    ctx, _ = site(make_bench(bench_factory, db_kind, {"hourly": ["bgapp.tasks.seen"]}))
    db = ctx.database()
    _commit_fails(db, monkeypatch, message)
    with pytest.raises(pw.OperationalError) as caught, txn(db):
        db.execute_sql("UPDATE scheduled_job_type SET modified_at = modified_at")
    assert message in str(caught.value) and "no transaction is active" not in str(caught.value)
    monkeypatch.undo()
    with write_txn(db):  # the connection is usable again
        db.execute_sql("UPDATE scheduled_job_type SET modified_at = modified_at")


def test_a_replaced_sqlite_file_is_detected_and_reopened(bench_factory, caplog):
    """SQLite only: a PostgreSQL database has no file to replace under an open connection."""
    import shutil

    from hookscheduler.store.models import ScheduledJobType

    ctx, _ = site(make_bench(bench_factory, "sqlite", {"hourly": ["bgapp.tasks.seen"]}))
    db = ctx.database()
    path = db.database
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(path, path + ".restored")
    with write_txn(db):  # written into the file about to be replaced
        ScheduledJobType.update(stopped=True).execute()
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # no write-ahead log left to apply to the restored file
    shutil.move(path + ".restored", path)  # a restored backup moved into place
    with caplog.at_level("WARNING"):
        db = ctx.database()
    assert f"the SQLite database {path} was replaced while open; reopening it" in caplog.text
    assert ScheduledJobType.get().stopped is False  # the restored file's row, not the stale connection's
    with write_txn(db):
        ScheduledJobType.update(stopped=True).execute()
    ctx.close()
    assert site(ctx.bench.path)[0].database() and ScheduledJobType.get().stopped is True  # the write is in the file


def test_a_deleted_sqlite_file_is_an_error_not_silent_writes(bench_factory, caplog):
    import os

    from hookscheduler.exceptions import SchemaError

    ctx, _ = site(make_bench(bench_factory, "sqlite", {"hourly": ["bgapp.tasks.seen"]}))
    path = ctx.database().database
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with (
        caplog.at_level("WARNING"),
        pytest.raises(SchemaError, match="does not exist yet; run `hookscheduler migrate`"),
    ):
        ctx.database()
    assert "was deleted while open" in caplog.text
