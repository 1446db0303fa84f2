"""A database that refuses writes: ``migrate`` checks every site before it writes any and names the one that
cannot be written; a write that fails anyway (the database turned read-only after the check) names the site
and says which sites were migrated; every other command and ``doctor`` say which database is read-only and
what to check. PostgreSQL databases are made read-only with ``default_transaction_read_only`` on a database
created for the test; SQLite files with the immutable flag (root ignores permission bits)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookscheduler.cli import migrate_cmd
from tests.conftest import PG_DSN
from tests.helpers import own_pg_database, pg_admin_conn
from tests.integration.opcli_support import assert_one_line_error, run

TASKS = ["app1.tasks.ok", "app1.tasks.other"]


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A PostgreSQL database of this test's own (``ALTER DATABASE`` acts on a whole database); its URL."""
    with own_pg_database(PG_DSN, "hs_ro_") as url:
        yield url


def read_only(url: str, on: bool = True) -> None:
    """New connections to the database start read-only (or no longer do)."""
    base, name = url.rsplit("/", 1)
    admin = pg_admin_conn(f"{base}/postgres")
    with admin.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
    admin.close()


@pytest.fixture
def immutable() -> Iterator[Any]:
    """``chattr +i`` on a file (undone afterwards): a file even root cannot write. Skipped where the flag
    cannot be set (not root, or a filesystem without it)."""
    flagged: list[Path] = []

    def flag(path: Path) -> None:
        proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot make a SQLite file immutable here (chattr +i: {proc.stderr.strip()})")
        flagged.append(path)

    try:
        yield flag
    finally:
        for path in flagged:
            subprocess.run(["chattr", "-i", str(path)], check=False)


def set_hooks(bench: Path, methods: list[str]) -> None:
    (bench / "apps" / "app1" / "hooks.py").write_text(f"scheduler_events = {json.dumps({'daily': methods})}\n")


def job_names(bench: Path, site: str) -> list[str]:
    result = run(bench, "jobs", "list", "--format", "json", site=site)
    assert result.code == 0, result.err
    return sorted(j["name"] for j in result.json() if j["name"].startswith("app1."))  # not the built-in job


def test_a_read_only_postgres_site_stops_migrate_before_any_site_is_written(bench_factory, pg_db):
    bench = bench_factory.make({"app1": {"daily": TASKS[:1]}},
                               sites={"site1": {}, "site2": {"db_url": pg_db}, "site3": {}})
    assert run(bench, "migrate").code == 0
    read_only(pg_db)
    set_hooks(bench, TASKS)
    result = run(bench, "migrate")
    assert_one_line_error(result, 1, "site site2: PostgreSQL database", "is read-only",
                          "default_transaction_read_only", "no site was migrated")
    assert "internal error" not in result.err and result.out == ""
    assert job_names(bench, "site1") == job_names(bench, "site3") == ["app1.tasks.ok"]
    assert run(bench, "migrate", "--dry-run").code == 0  # a dry run writes nothing: a read-only site is fine
    read_only(pg_db, on=False)
    assert run(bench, "migrate").code == 0
    assert job_names(bench, "site1") == job_names(bench, "site2") == job_names(bench, "site3") == sorted(TASKS)


def test_an_immutable_sqlite_site_stops_migrate_before_any_site_is_written(bench_factory, immutable):
    bench = bench_factory.make({"app1": {"daily": TASKS[:1]}}, sites={"site1": {}, "site2": {}})
    assert run(bench, "migrate").code == 0
    path = bench / "sites" / "site2" / "scheduler.sqlite3"
    immutable(path)
    set_hooks(bench, TASKS)
    result = run(bench, "migrate")
    assert_one_line_error(result, 1, f"site site2: SQLite database {path} is read-only", "immutable flag",
                          "no site was migrated")
    assert job_names(bench, "site1") == ["app1.tasks.ok"]


def test_a_site_that_fails_after_the_check_is_named_with_the_sites_migrated_and_a_rerun_finishes(
        bench_factory, pg_db, monkeypatch):
    bench = bench_factory.make({"app1": {"daily": TASKS[:1]}},
                               sites={"site1": {}, "site2": {"db_url": pg_db}, "site3": {}})
    assert run(bench, "migrate").code == 0
    set_hooks(bench, TASKS)
    read_only(pg_db)
    # the database turns read-only between the check and the write: the check saw it writable
    monkeypatch.setattr(migrate_cmd, "check_writable", lambda db: None)
    result = run(bench, "migrate")
    assert_one_line_error(result, 1, "site site2: PostgreSQL database", "is read-only", "read-only transaction",
                          "migrated: site1; NOT migrated: site2, site3", "run `hookscheduler migrate` again")
    assert "internal error" not in result.err
    assert result.out.startswith("site site1: 1 added") and "site2" not in result.out  # what was written
    assert job_names(bench, "site1") == sorted(TASKS)
    assert job_names(bench, "site2") == job_names(bench, "site3") == ["app1.tasks.ok"]
    monkeypatch.undo()
    read_only(pg_db, on=False)
    again = run(bench, "migrate")
    assert again.code == 0, again.err
    assert "site site1: 0 added" in again.out and "site site2: 1 added" in again.out
    assert "site site3: 1 added" in again.out


def test_a_read_only_postgres_site_is_named_by_every_command_and_doctor(bench_factory, pg_db):
    bench = bench_factory.make({"app1": {"daily": TASKS[:1]}}, sites={"site1": {"db_url": pg_db}})
    assert run(bench, "migrate").code == 0
    healthy = run(bench, "doctor", "--format", "json")
    [check] = [c for c in healthy.json()["checks"] if c["check"] == "writable"]
    assert check["ok"] is True
    read_only(pg_db)
    result = run(bench, "jobs", "disable", "app1.tasks.ok")
    name = pg_db.rsplit("/", 1)[1]
    assert_one_line_error(result, 1, f"site site1: PostgreSQL database {name} on 127.0.0.1:5432 is read-only",
                          "default_transaction_read_only", "replica")
    assert "server is up" not in result.err
    doctor = run(bench, "doctor", "--format", "json")
    assert doctor.code == 1
    [check] = [c for c in doctor.json()["checks"] if c["check"] == "writable"]
    assert check["ok"] is False and f"PostgreSQL database {name}" in check["detail"]
    assert "default_transaction_read_only" in check["hint"]


def test_an_immutable_sqlite_site_is_named_by_every_command_and_doctor(bench_factory, immutable):
    bench = bench_factory.make({"app1": {"daily": TASKS[:1]}}, sites={"site1": {}})
    assert run(bench, "migrate").code == 0
    path = bench / "sites" / "site1" / "scheduler.sqlite3"
    immutable(path)
    result = run(bench, "jobs", "disable", "app1.tasks.ok")
    assert_one_line_error(result, 1, f"site site1: SQLite database {path} is read-only", "immutable flag")
    doctor = run(bench, "doctor")
    assert doctor.code == 1
    assert "FAIL  writable" in doctor.out and "chattr -i" in doctor.out


def test_a_sqlite_site_whose_folder_cannot_be_written_stops_migrate(bench_factory, monkeypatch):
    """SQLite makes its -wal file beside the database: a folder the user may not write (as a non-root user
    sees one; root may write any folder, so the check's answer is given here) blocks the migrate."""
    import os

    bench = bench_factory.make({"app1": {"daily": TASKS[:1]}}, sites={"site1": {}, "site2": {}})
    assert run(bench, "migrate").code == 0
    folder = str(bench / "sites" / "site2")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != folder and real_access(path, mode))
    set_hooks(bench, TASKS)
    result = run(bench, "migrate")
    assert_one_line_error(result, 1, "site site2: SQLite database", "the file or its folder is not writable",
                          "no site was migrated")
    monkeypatch.undo()
    assert job_names(bench, "site1") == ["app1.tasks.ok"]
