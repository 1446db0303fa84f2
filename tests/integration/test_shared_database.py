"""Two sites on one database: ``migrate`` refuses before writing, ``doctor`` fails, ``schedule`` serves only the
first. A site is one tenant with its own database; on PostgreSQL a schema of its own (``options``) counts as one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hookscheduler.schedule.loop import Scheduler
from hookscheduler.store.database import database_key
from tests.integration.opcli_support import run

APPS = {"app1": {"hourly": ["app1.tasks.ok"]}}


def _share(bench: Path, src: str, dst: str) -> None:
    """What an operator does by copying a site's config: ``dst`` gets ``src``'s db_url."""
    (bench / "sites" / dst / "site_config.json").write_text((bench / "sites" / src / "site_config.json").read_text())


def _shared_bench(bench_factory, db_kind: str) -> Path:
    if db_kind == "sqlite":  # one file, named by two different spellings of its path
        bench = bench_factory.make(APPS, sites={"site1": {"db_url": "sqlite:///sites/site1/x.sqlite3"},
                                               "site2": {}, "site4": {}})
        (bench / "sites" / "site4" / "site_config.json").write_text(
            json.dumps({"db_url": f"sqlite:///{bench}/sites/site4/../site1/x.sqlite3"}))
        return bench
    bench = bench_factory.make(APPS, db="postgres", sites={"site1": {}, "site2": {}, "site4": {}})
    _share(bench, "site1", "site4")
    return bench


def test_migrate_refuses_two_sites_on_one_database_before_writing(bench_factory, db_kind):
    bench = _shared_bench(bench_factory, db_kind)
    result = run(bench, "migrate")
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "sites site1, site4 share one database" in lines[0]
    assert "give each site its own db_url" in lines[0] and "site2" not in lines[0]
    assert result.out == ""
    assert run(bench, "migrate", site="site4").code == 2  # naming one of them is refused too
    if db_kind == "sqlite":
        assert not (bench / "sites" / "site1" / "x.sqlite3").exists()
        assert not (bench / "sites" / "site2" / "scheduler.sqlite3").exists()


def test_doctor_fails_each_site_of_a_shared_database(bench_factory, db_kind):
    bench = _shared_bench(bench_factory, db_kind)
    (bench / "sites" / "site4" / "site_config.json").write_text("{}")
    assert run(bench, "migrate").code == 0
    _share(bench, "site1", "site4")  # after a migrate: the copy is what doctor must catch
    result = run(bench, "doctor", "--format", "json")
    assert result.code == 1
    shared = {(p["site"], p["check"]) for p in result.json()["problems"] if p["check"] == "own database"}
    assert shared == {("site1", "own database"), ("site4", "own database")}


def test_one_url_for_every_site_from_the_environment_is_refused(bench_factory, monkeypatch):
    bench = bench_factory.make(APPS, sites={"site1": {}, "site2": {}})
    monkeypatch.setenv("HOOKSCHEDULER_DB_URL", f"sqlite:///{bench}/one.sqlite3")
    result = run(bench, "migrate")
    assert result.code == 2 and "sites site1, site2 share one database" in result.err
    assert "HOOKSCHEDULER_DB_URL is set" in result.err
    assert not (bench / "one.sqlite3").exists()


def test_schedule_serves_only_the_first_site_of_a_shared_database(bench_factory, db_kind, caplog):
    bench = _shared_bench(bench_factory, db_kind)
    (bench / "sites" / "site4" / "site_config.json").write_text("{}")
    assert run(bench, "migrate").code == 0
    _share(bench, "site1", "site4")
    caplog.set_level(logging.ERROR, logger="hookscheduler.schedule.loop")
    sched = Scheduler(bench=str(bench))
    try:
        sched.refresh_sites()
        sched.config_seen = None  # read the config again, as after a change: still logged once
        sched.refresh_sites()
        assert sorted(sched.sites) == ["site1", "site2"]
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "sites site1, site4 share one database" in errors[0]
        assert "serving only site site1" in errors[0]
    finally:
        for state in sched.sites.values():
            state.ctx.close()


def test_tick_steps_only_the_first_site_of_a_shared_database(bench_factory, db_kind):
    bench = _shared_bench(bench_factory, db_kind)
    (bench / "sites" / "site4" / "site_config.json").write_text("{}")
    assert run(bench, "migrate").code == 0
    _share(bench, "site1", "site4")
    result = run(bench, "tick")
    assert result.code == 1
    assert "sites site1, site4 share one database" in result.err and "stepping only site site1" in result.err
    assert "site site1:" in result.out and "site site2:" in result.out and "site site4:" not in result.out


@pytest.mark.parametrize(("a", "b", "same"), [
    ("postgresql://u:p@DB.example:5432/x", "postgres://other@db.example/x", True),
    ("postgresql://u@db/x?options=-csearch_path%3Ds1", "postgresql://u@db/x?options=-csearch_path%3Ds2", False),
    ("postgresql://u@db:5433/x", "postgresql://u@db/x", False),
    ("postgresql://u@%2Fvar%2Frun%2Fpostgresql/x", "postgresql://u@/x?host=/var/run/postgresql", True),
    ("sqlite:///:memory:", "sqlite:///:memory:", False),
])
def test_database_key(a: str, b: str, same: bool) -> None:
    assert (database_key(a) is not None and database_key(a) == database_key(b)) is same


@pytest.mark.postgres
def test_a_unix_socket_url_reaches_the_server(bench_factory, pg_database):
    """``postgresql://user@%2Fvar%2Frun%2Fpostgresql/db``: the socket's folder, percent-encoded, as the host."""
    from urllib.parse import urlsplit

    folder = Path("/var/run/postgresql")
    if not any(folder.glob(".s.PGSQL.*")):
        pytest.fail(f"no PostgreSQL unix socket in {folder}")
    base = urlsplit(pg_database)
    url = f"postgresql://{base.username}@%2Fvar%2Frun%2Fpostgresql:{base.port or 5432}{base.path}"
    bench = bench_factory.make(APPS, sites={"site1": {"db_url": url}})
    result = run(bench, "migrate")
    assert result.code == 0, result
    assert "site site1: 2 added" in result.out  # its job and the built-in one, in the public schema
