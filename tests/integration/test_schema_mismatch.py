"""A database whose schema is not this hookscheduler's: an outdated one (not migrated yet) or a newer one (a newer
hookscheduler migrated it; simulated by recording version ``SCHEMA_VERSION + 1``). Every command that writes
refuses both, with the fix that fits (``migrate``, or upgrade hookscheduler); ``migrate --dry-run`` shows what
the real migrate does, the schema upgrade and the re-anchor included. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import time_machine

from hookscheduler.context import open_site
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobType
from tests.integration.opcli_support import assert_one_line_error, run

BERLIN = {"time_zone": "Europe/Berlin"}
NEWER = dbmod.SCHEMA_VERSION + 1


def _at(moment: datetime) -> time_machine.travel:
    return time_machine.travel(moment.replace(tzinfo=timezone.utc), tick=False)


def _bench(bench_factory, db_kind) -> Path:
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"], "hourly": ["app1.tasks.other"]}},
                               db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 5, 10, 0)):
        assert run(bench, "migrate").code == 0
    return bench


def _set_version(bench: Path, version: int) -> None:
    ctx = open_site(str(bench))
    try:
        ctx.database(require_schema=False)
        dbmod.set_state("schema_version", str(version))
    finally:
        ctx.close()


def _slots(bench: Path) -> tuple[list[tuple[str, datetime | None]], dict[str, str | None]]:
    """Every job's next slot, and the calendar state a re-anchor writes."""
    ctx = open_site(str(bench))
    try:
        ctx.database(require_schema=False)
        rows = [(r.name, r.next_execution) for r in ScheduledJobType.select().order_by(ScheduledJobType.id)]
        keys = ("clock_signature", "clock_changed_at", "clock_previous_signature")
        return rows, {k: dbmod.get_state(k) for k in keys}
    finally:
        ctx.close()


def _common_zone(bench: Path) -> str:
    return str(json.loads((bench / "sites" / "common_site_config.json").read_text())["time_zone"])


def test_set_config_of_the_zone_is_refused_on_a_newer_or_outdated_schema_and_writes_nothing(bench_factory, db_kind):
    bench = _bench(bench_factory, db_kind)
    for version, fix in ((NEWER, "upgrade hookscheduler"), (1, "run `hookscheduler migrate`")):
        _set_version(bench, version)
        before = _slots(bench)
        with _at(datetime(2026, 1, 5, 11, 0)):
            r = run(bench, "set-config", "-g", "time_zone", "America/New_York")
            own = run(bench, "set-config", "time_zone", "America/New_York")
        assert_one_line_error(r, 1, "site default:", f"schema version {version}"
                              if version == NEWER else f"at version {version}", fix, "time_zone not set")
        assert_one_line_error(own, 1, fix)
        assert _slots(bench) == before  # not re-anchored
        assert _common_zone(bench) == "Europe/Berlin"  # nor the config written: nothing half-done
        own_config = bench / "sites" / "default" / "site_config.json"
        assert not own_config.exists() or "time_zone" not in own_config.read_text()
    # a key that is not part of the calendar writes no job row: still allowed
    assert run(bench, "set-config", "log_retention_days", "20").code == 0
    _set_version(bench, dbmod.SCHEMA_VERSION)
    with _at(datetime(2026, 1, 5, 11, 0)):
        r = run(bench, "set-config", "-g", "time_zone", "America/New_York")
    assert r.code == 0 and "re-anchored" in r.out, (r.out, r.err)


def test_worker_refuses_to_start_on_a_newer_or_outdated_schema(bench_factory, db_kind):
    bench = _bench(bench_factory, db_kind)
    for version, fix in ((NEWER, "upgrade hookscheduler"), (1, "run `hookscheduler migrate`")):
        _set_version(bench, version)
        for command in (("worker", "--burst"), ("worker-pool", "--burst", "--num-workers", "1")):
            r = run(bench, *command)
            assert_one_line_error(r, 1, "site default:", fix, "no worker started")


def test_commands_and_doctor_tell_a_newer_schema_to_upgrade_hookscheduler_not_to_migrate(bench_factory, db_kind):
    bench = _bench(bench_factory, db_kind)
    _set_version(bench, NEWER)
    listed = run(bench, "jobs", "list")
    assert_one_line_error(listed, 1, f"schema version {NEWER} is newer than this hookscheduler",
                          "upgrade hookscheduler")
    assert "`hookscheduler migrate`" not in listed.err
    doctor = run(bench, "doctor", "--format", "json")
    [problem] = [c for c in doctor.json()["problems"] if c["check"] == "database"]
    assert "upgrade hookscheduler" in problem["hint"] and "run `hookscheduler migrate`" not in problem["hint"], problem


def test_migrate_dry_run_refuses_a_newer_schema_as_the_real_migrate_does(bench_factory, db_kind):
    bench = _bench(bench_factory, db_kind)
    _set_version(bench, NEWER)
    dry = run(bench, "migrate", "--dry-run")
    real = run(bench, "migrate")
    assert_one_line_error(dry, 1, "newer than this hookscheduler", "upgrade hookscheduler")
    assert_one_line_error(real, 1, "newer than this hookscheduler", "upgrade hookscheduler")


def test_migrate_dry_run_of_an_outdated_schema_shows_the_upgrade_and_the_re_anchor_the_real_one_does(
        bench_factory, db_kind):
    bench = _bench(bench_factory, db_kind)
    _set_version(bench, 1)  # as version 1 left it: the tables a re-anchor reads, the calendar recorded
    common = bench / "sites" / "common_site_config.json"
    common.write_text(common.read_text().replace("Europe/Berlin", "Asia/Tokyo"))
    before = _slots(bench)
    with _at(datetime(2026, 1, 5, 11, 0)):
        dry = run(bench, "migrate", "--dry-run")
        dry_json = run(bench, "migrate", "--dry-run", "--format", "json")
    assert dry.code == 0 and dry_json.code == 0, (dry.err, dry_json.err)
    assert _slots(bench) == before
    # the daily job and the site's maintenance job (the hourly one keeps its slot: the same hour in Tokyo)
    assert "2 would be re-anchored (calendar changed: Europe/Berlin -> Asia/Tokyo)" in dry.out, dry.out
    assert f"schema 1 -> {dbmod.SCHEMA_VERSION}" in dry.out, dry.out
    [plan] = dry_json.json()
    assert plan["reanchored"]["jobs"] == 2 and plan["schema"] == {"from": 1, "to": dbmod.SCHEMA_VERSION}
    with _at(datetime(2026, 1, 5, 11, 0)):
        real = run(bench, "migrate", "--format", "json")
        again = run(bench, "migrate")
    [done] = real.json()
    assert done["reanchored"]["jobs"] == 2 and done["schema"] == {"from": 1, "to": dbmod.SCHEMA_VERSION}
    assert "schema" not in again.out and "re-anchored" not in again.out, again.out


def test_migrate_text_names_the_schema_upgrade_and_a_new_database(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind, common=BERLIN)
    with _at(datetime(2026, 1, 5, 10, 0)):
        dry = run(bench, "migrate", "--dry-run")
        real = run(bench, "migrate")
    assert f"schema created (version {dbmod.SCHEMA_VERSION})" in dry.out, dry.out
    assert f"schema created (version {dbmod.SCHEMA_VERSION})" in real.out, real.out


def test_a_sqlite_migrate_blocked_by_a_stray_table_blames_the_table_not_a_server(bench_factory):
    bench = _bench(bench_factory, "sqlite")
    ctx = open_site(str(bench))
    try:
        db = ctx.database(require_schema=False)
        db.execute_sql('DROP INDEX "scheduled_job_log_scheduled_for"')
        db.execute_sql('CREATE TABLE "scheduled_job_log_scheduled_for" ("id" INTEGER)')
        dbmod.set_state("schema_version", str(dbmod.SCHEMA_VERSION - 1))
    finally:
        ctx.close()
    r = run(bench, "migrate")
    assert_one_line_error(r, 1, "already a table named scheduled_job_log_scheduled_for", "rename or drop it")
    assert "server" not in r.err
