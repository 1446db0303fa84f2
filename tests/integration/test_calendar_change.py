"""A change of the site's calendar (``time_zone``, the tick interval) seen by every command: slots already due
are decided under the job's catchup policy, not dropped; ``migrate`` pins the zone it used; a backfill that
reaches back before the change is refused; ``set-config`` re-anchors at once; ``skip-next`` of an overdue job
skips its pending catch-up. SQLite and PostgreSQL, real Redis."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import time_machine

from hookscheduler.context import open_site
from hookscheduler.store.models import ScheduledJobLog
from tests.integration.opcli_support import assert_one_line_error, run
from tests.integration.test_step import _next_execution

BERLIN = {"time_zone": "Europe/Berlin"}


def _at(moment: datetime) -> time_machine.travel:
    return time_machine.travel(moment.replace(tzinfo=timezone.utc), tick=False)


def _ledger(bench) -> list[tuple[str, str, datetime, int]]:
    ctx = open_site(str(bench))
    ctx.database()
    try:
        rows = ScheduledJobLog.select().where(ScheduledJobLog.job_name == "app1.tasks.ok").order_by(ScheduledJobLog.id)
        return [(r.status, r.trigger, r.scheduled_for, r.slots) for r in rows]
    finally:
        ctx.close()


def test_a_zone_change_after_a_downtime_catches_the_due_slots_up(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 5, 11, 0, 30)):
        assert run(bench, "migrate").code == 0
        assert run(bench, "tick", "--format", "json").json()[0]["fired"] == 0
    # the scheduler is down from here until 15:19; then the operator moves the site to New York
    with _at(datetime(2026, 1, 5, 15, 19)):
        r = run(bench, "set-config", "-g", "time_zone", "America/New_York")
    assert r.code == 0, r.err
    with _at(datetime(2026, 1, 5, 15, 20)):
        tick = run(bench, "tick", "--format", "json")
    assert tick.code == 0, tick.err
    assert tick.json()[0]["fired"] == 1  # one catch-up run for the four slots 12:00 .. 15:00
    assert _ledger(bench) == [("queued", "catch-up", datetime(2026, 1, 5, 15, 0), 4)]
    assert _next_execution(bench) == datetime(2026, 1, 5, 16, 0)
    with _at(datetime(2026, 1, 5, 15, 21)):
        assert run(bench, "tick", "--format", "json").json()[0]["fired"] == 0  # once, not again


def test_a_zone_change_while_paused_keeps_the_held_slots_for_the_resume(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": [{"method": "app1.tasks.ok", "catchup": "skip"}]}},
                               db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 5, 10, 0)):
        assert run(bench, "migrate").code == 0
        assert run(bench, "scheduler", "pause").code == 0
    assert _next_execution(bench) == datetime(2026, 1, 5, 23, 0)  # Berlin midnight
    with _at(datetime(2026, 1, 5, 23, 0, 1)):
        assert run(bench, "tick", "--format", "json").json()[0]["fired"] == 0  # held
    with _at(datetime(2026, 1, 6, 8, 0)):
        assert run(bench, "set-config", "-g", "time_zone", "America/New_York").code == 0
        assert run(bench, "tick").code == 0  # still paused: holds, and keeps, the slot
        assert run(bench, "scheduler", "resume").code == 0
    with _at(datetime(2026, 1, 6, 8, 0, 5)):
        assert run(bench, "tick").code == 0
    # catchup=skip: the held slots are recorded missed, the Berlin midnight held before the change and New York's
    # first midnight after it
    assert _ledger(bench) == [("missed", "schedule", datetime(2026, 1, 6, 5, 0), 2)]
    assert _next_execution(bench) == datetime(2026, 1, 7, 5, 0)  # New York midnight, in UTC


def test_migrate_reports_the_re_anchor_of_a_calendar_change_and_the_dry_run_writes_nothing(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 5, 10, 0)):
        assert run(bench, "migrate").code == 0
    common = bench / "sites" / "common_site_config.json"
    common.write_text(common.read_text().replace("Europe/Berlin", "America/New_York"))  # edited by hand
    with _at(datetime(2026, 1, 5, 11, 0)):
        dry = run(bench, "migrate", "--dry-run")
        dry_json = run(bench, "migrate", "--dry-run", "--format", "json")
    assert dry.code == 0, dry.err
    # the daily job and the site's maintenance job
    assert "2 would be re-anchored (calendar changed: Europe/Berlin -> America/New_York)" in dry.out, dry.out
    [plan] = dry_json.json()
    assert plan["reanchored"]["jobs"] == 2 and plan["reanchored"]["to"].startswith("America/New_York|")
    assert _next_execution(bench) == datetime(2026, 1, 5, 23, 0)  # nothing written
    with _at(datetime(2026, 1, 5, 11, 0)):
        real = run(bench, "migrate", "--format", "json")
        again = run(bench, "migrate")
    assert real.code == 0, real.err
    [plan] = real.json()
    assert plan["reanchored"]["summary"] == "2 re-anchored (calendar changed: Europe/Berlin -> America/New_York)"
    assert _next_execution(bench) == datetime(2026, 1, 6, 5, 0)  # New York midnight, in UTC
    assert "re-anchored" not in again.out  # done once



def test_migrate_dry_run_on_a_database_without_its_tables_yet(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind)
    with _at(datetime(2026, 1, 5, 10, 0)):
        dry = run(bench, "migrate", "--dry-run", "--format", "json")
    assert dry.code == 0, dry.err  # no calendar recorded yet: nothing to re-anchor, and no table to read it from
    assert dry.json()[0]["reanchored"] is None

def test_set_config_of_the_zone_re_anchors_at_once_so_next_shows_the_new_calendar(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 5, 10, 0)):
        assert run(bench, "migrate").code == 0
        r = run(bench, "set-config", "-g", "time_zone", "America/New_York")
        nxt = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "1", "--format", "json")
    assert r.code == 0, r.err
    assert "site default: 2 re-anchored (calendar changed: Europe/Berlin -> America/New_York)" in r.out, r.out
    # no pass ran since: the next slot is already New York's midnight, not Berlin's under the new label
    assert [p["utc"] for p in nxt.json()] == ["2026-01-06T05:00:00Z"]
    assert _next_execution(bench) == datetime(2026, 1, 6, 5, 0)
    with _at(datetime(2026, 1, 5, 10, 1)):
        same = run(bench, "set-config", "time_zone", "America/New_York")  # the site's own file, same calendar
        tick = run(bench, "set-config", "scheduler_tick_interval", "30")
    assert same.code == 0 and "re-anchored" not in same.out
    assert tick.code == 0 and "tick interval 60 -> 30" in tick.out, tick.out


def test_set_config_of_the_zone_with_a_database_down_writes_the_config_and_says_when_it_re_anchors(
        bench_factory, db_kind, monkeypatch):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 5, 10, 0)):
        assert run(bench, "migrate").code == 0
    with monkeypatch.context() as m, _at(datetime(2026, 1, 5, 10, 0)):
        m.setenv("HOOKSCHEDULER_DB_URL", "postgresql://postgres@127.0.0.1:1/unreachable")  # the database is down
        r = run(bench, "set-config", "-g", "time_zone", "America/New_York")
    assert r.code == 0, r.err
    assert "time_zone set to" in r.out
    assert "site default: database not reachable, so its jobs are re-anchored at its next pass" in r.err, r.err
    assert "America/New_York" in (bench / "sites" / "common_site_config.json").read_text()
    assert _next_execution(bench) == datetime(2026, 1, 5, 23, 0)  # untouched until then
    with _at(datetime(2026, 1, 5, 10, 1)):
        assert run(bench, "tick").code == 0
    assert _next_execution(bench) == datetime(2026, 1, 6, 5, 0)


def test_backfill_reaching_back_before_a_zone_change_is_refused_and_runs_nothing(bench_factory, db_kind):
    """The slots before the change were Berlin midnights; enumerated in New York's calendar they fall on other
    instants, which the ledger shows as never served: a backfill would run days that already ran."""
    jobs = {"app1": {"daily": [{"method": "app1.tasks.ok", "overlap": "allow"}]}}
    bench = bench_factory.make(jobs, db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 4, 12, 0)):
        assert run(bench, "migrate").code == 0
    for day in (4, 5):  # Berlin midnight, 23:00 UTC
        with _at(datetime(2026, 1, day, 23, 0, 1)):
            assert run(bench, "tick").code == 0
    with _at(datetime(2026, 1, 6, 10, 0)):
        assert run(bench, "set-config", "-g", "time_zone", "America/New_York").code == 0
    with _at(datetime(2026, 1, 7, 5, 0, 1)):  # New York midnight
        assert run(bench, "tick").code == 0
    before = _ledger(bench)
    assert [slot for *_, slot, _n in before] == [datetime(2026, 1, 4, 23), datetime(2026, 1, 5, 23),
                                                 datetime(2026, 1, 7, 5)]
    with _at(datetime(2026, 1, 8, 12, 0)):
        for extra in (["--dry-run"], [], ["--policy", "all", "--yes"]):
            r = run(bench, "jobs", "backfill", "app1.tasks.ok", "--from", "2026-01-04T00:00:00Z",
                    "--to", "2026-01-08T00:00:00Z", *extra)
            assert_one_line_error(r, 2, "--from (2026-01-04 00:00:00 UTC) reaches back before the site's calendar "
                                  "changed (Europe/Berlin -> America/New_York) at 2026-01-06 10:00:00 UTC",
                                  "give --from 2026-01-06T05:00:00-05:00 or later")
        assert _ledger(bench) == before  # nothing recorded, nothing queued
        # the suggestion is typed back as given: in the site's zone with its offset, so it is not read again
        # as a New York wall time and refused a second time
        suggested = r.err.split("give --from ")[1].split(" or later")[0]
        later = run(bench, "jobs", "backfill", "app1.tasks.ok", "--from", suggested,
                    "--to", "2026-01-08T00:00:00Z")
    assert later.code == 0, later.err
    assert "0 to backfill" in later.out  # New York's first midnight ran
    assert _ledger(bench) == before


def test_migrate_pins_the_system_zone_so_a_process_with_another_tz_keeps_the_calendar(bench_factory, db_kind,
                                                                                     monkeypatch):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind)
    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    del conf["time_zone"]  # the bench as Frappe's installer leaves it: the zone is the system's
    common.write_text(json.dumps(conf))
    with _at(datetime(2026, 1, 5, 10, 0)):
        monkeypatch.setenv("TZ", "Asia/Kolkata")  # inside: time-machine sets $TZ when it travels
        dry = run(bench, "migrate", "--dry-run")
        assert "time_zone" not in json.loads(common.read_text())  # a dry run writes nothing
        r = run(bench, "migrate", "--format", "json")
    assert dry.code == 0 and "migrate would pin this process's zone, time_zone 'Asia/Kolkata'" in dry.err, dry.err
    assert r.code == 0, r.err
    r.json()  # the note is on stderr: the JSON stays whole
    [note] = [ln for ln in r.err.splitlines() if "pinned" in ln]
    assert "time_zone 'Asia/Kolkata'" in note and "set-config -g time_zone ZONE" in note
    assert json.loads(common.read_text())["time_zone"] == "Asia/Kolkata"
    assert _next_execution(bench) == datetime(2026, 1, 5, 18, 30)  # Kolkata midnight, in UTC
    # cron runs tick with another $TZ: the same calendar, nothing re-anchored, the day's run fires at its slot
    with _at(datetime(2026, 1, 5, 12, 0)):
        monkeypatch.setenv("TZ", "America/New_York")
        again = run(bench, "migrate")
        assert run(bench, "tick").code == 0
    assert "re-anchored" not in again.out and "pinned" not in again.err
    assert _next_execution(bench) == datetime(2026, 1, 5, 18, 30)
    with _at(datetime(2026, 1, 5, 18, 30, 1)):
        monkeypatch.setenv("TZ", "America/New_York")
        assert run(bench, "tick").code == 0
    assert _ledger(bench) == [("queued", "schedule", datetime(2026, 1, 5, 18, 30), 1)]
