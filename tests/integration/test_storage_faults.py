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
