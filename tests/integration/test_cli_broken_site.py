"""One broken site of several (its PostgreSQL database does not exist): the commands still serve the healthy
sites, and every error names the site it is about, on one line, with exit 1."""

from __future__ import annotations

import uuid
from pathlib import Path

from hookscheduler.context import open_site
from hookscheduler.ops import scheduler as sched
from hookscheduler.store.models import utcnow
from tests.integration.opcli_support import assert_one_line_error, migrated, run

APPS = {"app1": {"hourly": ["app1.tasks.ok"]}}
HEALTHY = ("s1", "s2", "s4")


def broken_bench(bench_factory, migrate: bool = True) -> Path:
    """Sites s1, s2, s4 on SQLite (migrated unless told not to), s5 on a PostgreSQL database that does not exist."""
    missing = f"postgresql://postgres@127.0.0.1:5432/hs_missing_{uuid.uuid4().hex[:10]}"
    sites = {name: {} for name in HEALTHY} | {"s5": {"db_url": missing}}
    bench = bench_factory.make(APPS, sites=sites)
    if migrate:
        for name in HEALTHY:
            migrated(bench, utcnow(), site=name)
    return bench


def test_status_reports_the_healthy_sites_and_names_the_broken_one(bench_factory):
    bench = broken_bench(bench_factory)
    r = run(bench, "scheduler", "status")
    assert_one_line_error(r, 1, "Error: site s5: cannot connect to database", "hs_missing_")
    for name in HEALTHY:
        assert f"Scheduler is enabled for site {name}" in r.out
    assert "s5" not in r.out


def test_status_json_has_an_entry_with_the_error_of_the_broken_site(bench_factory):
    bench = broken_bench(bench_factory)
    r = run(bench, "scheduler", "status", "--format", "json")
    assert_one_line_error(r, 1, "Error: site s5: cannot connect to database")
    data = {entry["site"]: entry for entry in r.json()}
    assert sorted(data) == ["s1", "s2", "s4", "s5"]
    assert all(data[name]["status"] == "enabled" for name in HEALTHY)
    assert "cannot connect to database" in data["s5"]["error"] and "status" not in data["s5"]


def test_status_check_still_fails_and_reports_the_others(bench_factory):
    bench = broken_bench(bench_factory)
    assert run(bench, "tick").code == 1  # the healthy sites get a fresh pass (s5 fails, and says so)
    r = run(bench, "scheduler", "status", "--check")
    assert_one_line_error(r, 1, "Error: site s5: cannot connect to database")
    assert all(f"site {name}" in r.out for name in HEALTHY)


def test_switches_on_all_sites_name_the_broken_site_and_switch_the_others(bench_factory):
    bench = broken_bench(bench_factory)
    for args, done in ((["scheduler", "disable", "--note", "x"], "disabled"), (["scheduler", "enable"], "enabled"),
                       (["scheduler", "pause"], "paused"), (["scheduler", "resume"], "resumed")):
        r = run(bench, *args, site="all")
        assert_one_line_error(r, 1, "Error: site s5: cannot connect to database", "hs_missing_")
        for name in HEALTHY:
            assert f"Scheduler is {done} for site {name}" in r.out, (args, r.out)
    r = run(bench, "scheduler", "disable", "--note", "x", site="all")
    for name in HEALTHY:
        assert sched.scheduler_state(open_site(str(bench), name))[0] == sched.DISABLED


def test_migrate_names_the_site_that_blocked_it_and_migrates_none(bench_factory):
    bench = broken_bench(bench_factory, migrate=False)
    r = run(bench, "migrate")
    assert_one_line_error(r, 1, "Error: site s5: cannot connect to database", "no site was migrated")
    assert r.out == ""
    assert not any((bench / "sites" / name / "scheduler.sqlite3").exists() for name in HEALTHY)
