"""`doctor` reports a corrupt SQLite database as corrupt, with the way out (SQLite only: PostgreSQL keeps its
own pages' checksums and has no file an operator can damage under it)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from hookscheduler.store.models import utcnow
from tests.integration.opcli_support import migrated, run


def _damaged(bench_factory, where: str):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    ctx, _ = migrated(bench, utcnow() - timedelta(hours=1))
    db = ctx.database()
    db.execute_sql("CREATE TABLE filler (x TEXT)")  # pages to damage after the scheduler's tables
    db.execute_sql(
        "INSERT INTO filler SELECT printf('%.300c', 'x') FROM (WITH RECURSIVE n(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) SELECT i FROM n)"
    )
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = db.database
    ctx.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        if where == "header":
            fh.write(b"this is not an SQLite file at all" * 4)
        elif where == "pages":  # pages after the schema: the filler's rows
            fh.seek(size // 2)
            fh.write(os.urandom(4096 * 4))
        else:  # every page but the first
            fh.seek(4096)
            fh.write(os.urandom(size - 4096))
    return bench


@pytest.mark.parametrize("where", ["header", "pages", "all pages"])
def test_doctor_reports_a_corrupt_sqlite_database(bench_factory, where):
    bench = _damaged(bench_factory, where)
    result = run(bench, "doctor", "--format", "json")
    assert result.code == 1, result.err
    [check] = [c for c in result.json()["checks"] if c["check"] == "database"]
    assert not check["ok"] and "corrupt" in check["detail"], check
    problem = next(p for p in result.json()["problems"] if p["check"] == "database")
    assert "restore the database from a backup" in problem["hint"]


def test_other_commands_say_the_database_is_damaged_in_one_line(bench_factory):
    bench = _damaged(bench_factory, "all pages")
    for argv in (["jobs", "list"], ["jobs", "history"]):
        result = run(bench, *argv)
        assert result.code == 1 and "internal error" not in result.err, (argv, result.err)
        assert result.err.startswith("Error: ") and len(result.err.strip().splitlines()) == 1, result.err
