"""``migrate`` on SQLite and PostgreSQL: cold start, in-place updates, removal, prune, zero-write re-runs, dry runs,
refused input and schema versioning. Time is a parameter: every migrate runs at an explicit ``now``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import peewee as pw
import pytest

from hookscheduler.context import SiteContext, open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import Plan, migrate_site
from hookscheduler.exceptions import HookError, SchemaError
from hookscheduler.ops.jobs import list_jobs, set_stopped
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ALL_MODELS, ScheduledJobLog, ScheduledJobType
from hookscheduler.timing import cron as slots

NOW = datetime(2026, 1, 7, 10, 7, 0)  # a Wednesday
LATER = datetime(2026, 1, 9, 15, 30, 0)  # a Friday


def site_ctx(bench: Path, site: str | None = None) -> SiteContext:
    return open_site(str(bench), site)


def migrate(ctx: SiteContext, now: datetime, *, dry_run: bool = False, prune: bool = False) -> Plan:
    specs = load_job_specs(ctx.bench, ctx.site.queues)
    db = ctx.database(create=not dry_run, require_schema=False)
    return migrate_site(db, ctx.name, specs, ctx.calendar, now=now, dry_run=dry_run, prune=prune)


def set_hooks(bench: Path, events: dict[str, Any], app: str = "app1") -> None:
    (bench / "apps" / app / "hooks.py").write_text(f"scheduler_events = {json.dumps(events)}\n")


def job(name: str) -> ScheduledJobType:
    return ScheduledJobType.get(ScheduledJobType.name == name)


def dump(db: pw.Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order (the tables as an operator would see them)."""
    out = {}
    for model in ALL_MODELS:
        if db.table_exists(model._meta.table_name):
            cur = db.execute_sql(f"SELECT * FROM {model._meta.table_name} ORDER BY 1")
            out[model._meta.table_name] = [tuple(r) for r in cur.fetchall()]
    return out


def row_versions(db: pw.Database) -> Any:
    """What changes on any write, even one that stores equal values: PostgreSQL's xmin, SQLite's total_changes."""
    if isinstance(db, pw.PostgresqlDatabase):
        return {m._meta.table_name: db.execute_sql(f"SELECT xmin::text FROM {m._meta.table_name} ORDER BY 1")
                .fetchall() for m in ALL_MODELS}
    return db.connection().total_changes


@contextmanager
def recorded_statements(db: pw.Database) -> Iterator[list[str]]:
    """Every SQL statement the database runs inside the block (peewee funnels them all through execute_sql)."""
    seen: list[str] = []
    original = db.execute_sql

    def spy(sql: str, params: Any = None) -> Any:
        seen.append(sql)
        return original(sql, params)

    db.execute_sql = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del db.execute_sql


def writes(statements: list[str]) -> list[str]:
    verbs = ("INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "BEGIN", "REPLACE", "SAVEPOINT")
    return [s for s in statements if s.lstrip().upper().startswith(verbs)]


# --- cold start -----------------------------------------------------------------------------------------------------

ALL_SECTIONS = {
    "all": ["app1.tasks.ok"],
    "hourly": [{"method": "app1.tasks.ok", "name": "hourly"}],
    "hourly_long": [{"method": "app1.tasks.ok", "name": "hourly_long"}],
    "hourly_maintenance": [{"method": "app1.tasks.ok", "name": "hourly_maintenance"}],
    "daily": [{"method": "app1.tasks.ok", "name": "daily"}],
    "daily_long": [{"method": "app1.tasks.ok", "name": "daily_long"}],
    "daily_maintenance": [{"method": "app1.tasks.ok", "name": "daily_maintenance"}],
    "weekly": [{"method": "app1.tasks.ok", "name": "weekly"}],
    "weekly_long": [{"method": "app1.tasks.ok", "name": "weekly_long"}],
    "monthly": [{"method": "app1.tasks.ok", "name": "monthly"}],
    "monthly_long": [{"method": "app1.tasks.ok", "name": "monthly_long"}],
    "yearly": [{"method": "app1.tasks.ok", "name": "yearly"}],
    "annual": [{"method": "app1.tasks.ok", "name": "annual"}],
    "cron": {"15 18 * * *": [{"method": "app1.tasks.ok", "name": "cron"}],
             "*/6 * * * *": [{"method": "app1.tasks.ok", "name": "cron6"}]},
    "cron_long": {"0 3 * * *": [{"method": "app1.tasks.ok", "name": "cron_long"}]},
}


def expected_cold_start(site: str) -> dict[str, tuple[str, str, str, int, datetime]]:
    off = slots.maintenance_offset(site)
    hourly_m = datetime(2026, 1, 7, 10, off) if off > 7 else datetime(2026, 1, 7, 11, off)
    return {
        "app1.tasks.ok": ("All", "", "default", 300, datetime(2026, 1, 7, 10, 8)),
        "hourly": ("Hourly", "", "default", 300, datetime(2026, 1, 7, 11, 0)),
        "hourly_long": ("Hourly Long", "", "long", 1500, datetime(2026, 1, 7, 11, 0)),
        "hourly_maintenance": ("Hourly Maintenance", "", "long", 1500, hourly_m),
        "daily": ("Daily", "", "default", 300, datetime(2026, 1, 8)),
        "daily_long": ("Daily Long", "", "long", 1500, datetime(2026, 1, 8)),
        "daily_maintenance": ("Daily Maintenance", "", "long", 1500, datetime(2026, 1, 8, 0, off)),
        "weekly": ("Weekly", "", "default", 300, datetime(2026, 1, 11)),  # Sunday 00:00
        "weekly_long": ("Weekly Long", "", "long", 1500, datetime(2026, 1, 11)),
        "monthly": ("Monthly", "", "default", 300, datetime(2026, 2, 1)),
        "monthly_long": ("Monthly Long", "", "long", 1500, datetime(2026, 2, 1)),
        "yearly": ("Yearly", "", "default", 300, datetime(2027, 1, 1)),
        "annual": ("Annual", "", "default", 300, datetime(2027, 1, 1)),
        "cron": ("Cron", "15 18 * * *", "default", 300, datetime(2026, 1, 7, 18, 15)),
        "cron6": ("Cron", "*/6 * * * *", "default", 300, datetime(2026, 1, 7, 10, 12)),
        "cron_long": ("Cron Long", "0 3 * * *", "long", 1500, datetime(2026, 1, 8, 3, 0)),
    }


def test_cold_start_next_execution_for_every_frequency(bench_factory, db_kind):
    bench = bench_factory.make({"app1": ALL_SECTIONS}, db=db_kind)
    ctx = site_ctx(bench)
    plan = migrate(ctx, NOW)
    steps = dbmod.SCHEMA_VERSION
    assert (len(plan.added), plan.updated, plan.removed, plan.unchanged, plan.schema_steps) == (16, [], [], [], steps)
    got = {r.name: (r.frequency, r.cron_format, r.queue, r.timeout, r.next_execution)
           for r in ScheduledJobType.select()}
    assert got == expected_cold_start("default")
    for r in ScheduledJobType.select():
        assert (r.app, r.method, r.stopped, r.removed, r.last_execution) == ("app1", "app1.tasks.ok", False, False,
                                                                              None)
        assert r.created_at == r.modified_at == NOW
        assert r.next_execution > NOW  # never "at once"


def test_maintenance_offset_is_per_site_and_deterministic(bench_factory, db_kind):
    names = ["a.example.com", "b.example.com", "c.example.com"]
    offsets = {n: slots.maintenance_offset(n) for n in names}
    assert len(set(offsets.values())) > 1  # the sites really differ
    bench = bench_factory.make({"app1": {"hourly_maintenance": ["app1.tasks.ok"],
                                         "daily_maintenance": ["app1.tasks.other"]}},
                               db=db_kind, sites={n: {} for n in names})
    for name in names:
        ctx = site_ctx(bench, name)
        migrate(ctx, NOW)
        off = offsets[name]
        assert job("app1.tasks.ok").next_execution == (datetime(2026, 1, 7, 10, off) if off > 7
                                                       else datetime(2026, 1, 7, 11, off))
        assert job("app1.tasks.other").next_execution == datetime(2026, 1, 8, 0, off)
        ctx.close()
    assert offsets == {n: slots.maintenance_offset(n) for n in names}  # stable across calls


def test_cold_start_in_the_site_time_zone_and_with_a_tick_interval(bench_factory, db_kind):
    events = {"all": ["app1.tasks.ok"], "daily": ["app1.tasks.other"], "weekly": ["app1.tasks.boom"],
              "cron": {"30 9 * * 1-5": ["app1.tasks.slow"]}}
    bench = bench_factory.make({"app1": events}, db=db_kind,
                               common={"time_zone": "Europe/Berlin", "scheduler_tick_interval": 300})
    ctx = site_ctx(bench)
    migrate(ctx, NOW + timedelta(seconds=30))
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 7, 10, 12, 30)  # now + 300 s
    assert job("app1.tasks.other").next_execution == datetime(2026, 1, 7, 23, 0)  # Berlin midnight
    assert job("app1.tasks.boom").next_execution == datetime(2026, 1, 10, 23, 0)  # Berlin Sunday 00:00
    assert job("app1.tasks.slow").next_execution == datetime(2026, 1, 8, 8, 30)  # Thu 09:30 Berlin


def test_a_job_created_exactly_on_a_slot_waits_for_the_next(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.other"]}}, db=db_kind)
    migrate(site_ctx(bench), datetime(2026, 1, 8, 0, 0, 0))
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 8, 1, 0)
    assert job("app1.tasks.other").next_execution == datetime(2026, 1, 9, 0, 0)


# --- in-place updates -----------------------------------------------------------------------------------------------

def _add_history(name: str, last: datetime) -> None:
    row = job(name)
    ScheduledJobType.update(last_execution=last).where(ScheduledJobType.id == row.id).execute()
    for i, status in enumerate(("complete", "failed")):
        ScheduledJobLog.create(job=row, job_name=name, scheduled_for=last - timedelta(days=i), trigger="schedule",
                               status=status, rq_job_id=f"{name}-{i}", queue=row.queue)


def test_moving_to_or_from_the_maintenance_twin_keeps_one_run_per_period(bench_factory, db_kind):
    """``daily`` -> ``daily_maintenance`` (and back, and the hourly pair) keeps the period the job was due to serve:
    re-anchored from now, a daily job that ran at 00:00 and moved at 00:10 would run again at 00:OFF that day."""
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"], "hourly": ["app1.tasks.other"]}}, db=db_kind)
    ctx = site_ctx(bench)
    off = slots.maintenance_offset(ctx.name)
    assert off > 10  # the default site's offset: after the moves below
    migrate(ctx, datetime(2026, 1, 6, 12, 0))
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 7, 0, 0)  # ran at 00:00 on the 7th, then:
    ScheduledJobType.update(next_execution=datetime(2026, 1, 8, 0, 0)).where(
        ScheduledJobType.name == "app1.tasks.ok").execute()
    ScheduledJobType.update(next_execution=datetime(2026, 1, 7, 1, 0)).where(
        ScheduledJobType.name == "app1.tasks.other").execute()  # the hourly job ran at 00:00
    set_hooks(bench, {"daily_maintenance": ["app1.tasks.ok"], "hourly_maintenance": ["app1.tasks.other"]})
    migrate(ctx, datetime(2026, 1, 7, 0, 10))
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 8, 0, off)  # not 2026-01-07 00:OFF
    assert job("app1.tasks.other").next_execution == datetime(2026, 1, 7, 1, off)  # not 00:OFF
    # back again, after that day's base slot but before the maintenance twin's: the day's run is kept, once
    ScheduledJobType.update(next_execution=datetime(2026, 1, 8, 0, off)).where(
        ScheduledJobType.name == "app1.tasks.ok").execute()
    set_hooks(bench, {"daily": ["app1.tasks.ok"], "hourly_maintenance": ["app1.tasks.other"]})
    migrate(ctx, datetime(2026, 1, 8, 0, 5))
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 8, 0, off)
    # any other move is re-anchored from now, as before
    set_hooks(bench, {"weekly": ["app1.tasks.ok"], "hourly_maintenance": ["app1.tasks.other"]})
    migrate(ctx, datetime(2026, 1, 8, 0, 6))
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 11, 0, 0)
    ctx.close()


def test_moving_a_job_between_sections_updates_in_place(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"], "hourly": ["app1.tasks.other"]}}, db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    before = job("app1.tasks.ok")
    last = datetime(2026, 1, 7, 0, 0, 5)
    _add_history("app1.tasks.ok", last)
    set_stopped(ctx.database(), "app1.tasks.ok", True, note="broken upstream", who="ops@host", now=NOW)

    set_hooks(bench, {"hourly_long": ["app1.tasks.ok"], "hourly": ["app1.tasks.other"]})
    plan = migrate(ctx, LATER)
    assert [c.name for c in plan.updated] == ["app1.tasks.ok"]
    assert plan.updated[0].fields == {"frequency": ("Daily", "Hourly Long"), "queue": ("default", "long"),
                                      "timeout": (300, 1500)}
    assert plan.unchanged == ["app1.tasks.other"]
    after = job("app1.tasks.ok")
    assert after.id == before.id
    assert (after.frequency, after.queue, after.timeout) == ("Hourly Long", "long", 1500)
    assert (after.stopped, after.stopped_note, after.stopped_by, after.stopped_at) == (True, "broken upstream",
                                                                                        "ops@host", NOW)
    assert after.last_execution == last
    assert after.next_execution == datetime(2026, 1, 9, 16, 0)  # forward from LATER, not from last_execution
    assert (after.created_at, after.modified_at) == (NOW, LATER)
    logs = list(ScheduledJobLog.select().order_by(ScheduledJobLog.id))
    assert [(lg.job_id, lg.status) for lg in logs] == [(before.id, "complete"), (before.id, "failed")]
    assert job("app1.tasks.other").modified_at == NOW  # the other job was not touched


def test_cron_change_recomputes_next_execution_and_policy_change_does_not(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"cron": {"0 5 * * *": ["app1.tasks.ok"]}, "daily": ["app1.tasks.other"]}},
                               db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 8, 5)
    set_hooks(bench, {"cron": {"0 20 * * *": ["app1.tasks.ok"]},
                      "daily": [{"method": "app1.tasks.other", "queue": "short", "timeout": 60, "catchup": "skip",
                                 "catchup_limit": 3, "overlap": "allow"}]})
    plan = migrate(ctx, NOW + timedelta(hours=1))
    changes = {c.name: c.fields for c in plan.updated}
    assert changes["app1.tasks.ok"] == {"cron_format": ("0 5 * * *", "0 20 * * *")}
    assert changes["app1.tasks.other"] == {"queue": ("default", "short"), "timeout": (300, 60),
                                           "catchup": ("once", "skip"), "catchup_limit": (10, 3),
                                           "overlap": ("skip", "allow")}
    assert job("app1.tasks.ok").next_execution == datetime(2026, 1, 7, 20, 0)
    other = job("app1.tasks.other")
    assert other.next_execution == datetime(2026, 1, 8)  # the schedule did not change: the slot stays
    assert (other.queue, other.timeout, other.catchup, other.catchup_limit, other.overlap) == (
        "short", 60, "skip", 3, "allow")


def test_cron_to_cron_long_keeps_row_and_changes_queue(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"cron": {"0 5 * * *": ["app1.tasks.ok"]}}}, db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    first = job("app1.tasks.ok")
    set_hooks(bench, {"cron_long": {"0 5 * * *": ["app1.tasks.ok"]}})
    plan = migrate(ctx, LATER)
    assert plan.updated[0].fields["frequency"] == ("Cron", "Cron Long")
    row = job("app1.tasks.ok")
    assert (row.id, row.queue, row.frequency) == (first.id, "long", "Cron Long")
    assert row.next_execution == datetime(2026, 1, 10, 5)


# --- removal, re-adding, prune ----------------------------------------------------------------------------------------

def test_removal_marks_removed_and_re_adding_restores(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    original = job("app1.tasks.other")
    _add_history("app1.tasks.other", datetime(2026, 1, 7, 9))
    set_stopped(ctx.database(), "app1.tasks.other", True, note="paused", who="ops", now=NOW)

    set_hooks(bench, {"hourly": ["app1.tasks.ok"]})
    plan = migrate(ctx, LATER)
    assert (plan.removed, plan.unchanged, plan.added, plan.updated) == (["app1.tasks.other"], ["app1.tasks.ok"], [],
                                                                        [])
    gone = job("app1.tasks.other")
    assert (gone.removed, gone.removed_at, gone.next_execution, gone.modified_at) == (True, LATER, None, LATER)
    assert [j["name"] for j in list_jobs()] == ["app1.tasks.ok"]
    assert [j["name"] for j in list_jobs(include_removed=True)] == ["app1.tasks.ok", "app1.tasks.other"]
    assert ScheduledJobLog.select().count() == 2  # history kept

    # still removed on the next run: nothing to do
    plan = migrate(ctx, LATER + timedelta(hours=1))
    assert not plan.changes_anything

    set_hooks(bench, {"hourly": ["app1.tasks.ok", "app1.tasks.other"]})
    back_at = LATER + timedelta(days=1)
    plan = migrate(ctx, back_at)
    assert plan.updated[0].name == "app1.tasks.other" and plan.updated[0].fields == {"removed": (True, False)}
    back = job("app1.tasks.other")
    assert (back.id, back.removed, back.removed_at) == (original.id, False, None)
    assert back.next_execution == datetime(2026, 1, 10, 16, 0)  # forward from the re-adding
    assert (back.stopped, back.stopped_note, back.last_execution) == (True, "paused", datetime(2026, 1, 7, 9))
    assert ScheduledJobLog.select().count() == 2


def test_prune_deletes_removed_jobs_and_their_history_only(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other", "app1.tasks.boom"]}},
                               db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    for name in ("app1.tasks.ok", "app1.tasks.other", "app1.tasks.boom"):
        _add_history(name, datetime(2026, 1, 7, 9))
    set_hooks(bench, {"hourly": ["app1.tasks.ok", "app1.tasks.boom"]})
    migrate(ctx, LATER)  # other: marked removed
    set_hooks(bench, {"hourly": ["app1.tasks.ok"]})  # boom: removed and pruned in the same run
    plan = migrate(ctx, LATER + timedelta(hours=1), prune=True)
    assert sorted(plan.pruned) == ["app1.tasks.boom", "app1.tasks.other"]
    assert plan.removed == []
    assert [r.name for r in ScheduledJobType.select()] == ["app1.tasks.ok"]
    assert {lg.job_name for lg in ScheduledJobLog.select()} == {"app1.tasks.ok"}
    assert ScheduledJobLog.select().count() == 2
    assert not migrate(ctx, LATER + timedelta(hours=2), prune=True).changes_anything


# --- zero writes, dry run -------------------------------------------------------------------------------------------

def test_unchanged_re_run_performs_zero_writes(bench_factory, db_kind):
    bench = bench_factory.make({"app1": ALL_SECTIONS}, db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    set_hooks(bench, {k: v for k, v in ALL_SECTIONS.items() if k != "annual"})
    migrate(ctx, NOW)  # leaves a removed row, which must stay untouched too
    db = ctx.database(require_schema=False)
    before, versions = dump(db), row_versions(db)
    with recorded_statements(db) as statements:
        plan = migrate(ctx, LATER)
    assert any("scheduled_job_type" in st for st in statements)  # the spy saw the migrate's reads
    assert writes(statements) == [], statements
    assert (plan.added, plan.updated, plan.removed, plan.pruned, plan.schema_steps) == ([], [], [], [], 0)
    assert len(plan.unchanged) == 15
    assert dump(db) == before
    assert row_versions(db) == versions


def test_dry_run_writes_nothing_and_shows_the_real_plan(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    set_hooks(bench, {"daily": ["app1.tasks.ok"], "weekly": ["app1.tasks.boom"]})
    db = ctx.database(require_schema=False)
    before, versions = dump(db), row_versions(db)
    with recorded_statements(db) as statements:
        dry = migrate(ctx, LATER, dry_run=True)
        dry_prune = migrate(ctx, LATER, dry_run=True, prune=True)
    assert writes(statements) == []
    assert (dump(db), row_versions(db)) == (before, versions)
    assert dry_prune.pruned == ["app1.tasks.other"] and dry_prune.removed == []
    real = migrate(ctx, LATER)
    assert dry.as_dict() == real.as_dict()


def test_dry_run_on_a_fresh_database_creates_nothing(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx = site_ctx(bench)
    if db_kind == "sqlite":
        with pytest.raises(SchemaError):
            ctx.database(create=False, require_schema=False)
        assert not (bench / "sites" / "default").exists()
        return
    db = ctx.database(create=False, require_schema=False)
    plan = migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=NOW, dry_run=True)
    assert [s.name for s in plan.added] == ["app1.tasks.ok"]
    assert db.get_tables() == []


# --- refused input --------------------------------------------------------------------------------------------------

def test_refused_hooks_leave_every_table_as_it_was(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.other"]}}, db=db_kind)
    ctx = site_ctx(bench)
    migrate(ctx, NOW)
    _add_history("app1.tasks.ok", datetime(2026, 1, 7, 9))
    db = ctx.database(require_schema=False)
    before, versions = dump(db), row_versions(db)
    # a valid change (daily -> weekly, a new job) next to invalid ones: nothing of it may be applied
    set_hooks(bench, {"hourly": ["app1.tasks.ok"], "weekly": ["app1.tasks.other"], "monthly": ["app1.tasks.boom"],
                      "cron": {"bad cron": ["app1.tasks.slow"]}, "daily": ["app1.tasks.missing"]})
    with pytest.raises(HookError) as info:
        migrate(ctx, LATER)
    assert len(info.value.problems) == 2
    assert (dump(db), row_versions(db)) == (before, versions)


# --- schema versioning ----------------------------------------------------------------------------------------------

def test_schema_versioning_is_idempotent(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx = site_ctx(bench)
    db = ctx.database(create=True, require_schema=False)
    assert dbmod.schema_version(db) == 0
    with pytest.raises(SchemaError, match="run `hookscheduler migrate`"):
        dbmod.require_schema(db)
    assert dbmod.ensure_schema(db) == dbmod.SCHEMA_VERSION
    assert dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
    with recorded_statements(db) as statements:
        assert dbmod.ensure_schema(db) == 0
    assert writes(statements) == []
    dbmod.require_schema(db)
    assert sorted(db.get_tables()) == ["scheduled_job_log", "scheduled_job_type", "scheduler_inactivity",
                                       "scheduler_state"]
    assert "scheduled_job_type_next_execution" in {i.name for i in db.get_indexes("scheduled_job_type")}
    dbmod.set_state("schema_version", str(dbmod.SCHEMA_VERSION + 1))
    with pytest.raises(SchemaError, match="newer than this hookscheduler"):
        dbmod.ensure_schema(db)
    with pytest.raises(SchemaError, match="newer than this hookscheduler"):
        migrate(ctx, NOW)


def test_migrate_requires_no_schema_but_jobs_commands_do(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx = site_ctx(bench)
    if db_kind == "postgres":
        with pytest.raises(SchemaError, match=f"expected {dbmod.SCHEMA_VERSION}; run `hookscheduler migrate`"):
            ctx.database()
    else:
        with pytest.raises(SchemaError, match="does not exist yet; run `hookscheduler migrate`"):
            ctx.database()
    ctx.close()
    migrate(ctx, NOW)
    ctx.close()
    ctx.database()  # now it opens


# --- SQLite and PostgreSQL agree --------------------------------------------------------------------------------------

def _scenario(bench: Path) -> list[Any]:
    """A sequence of migrates; returns each plan and the table after it (without database-specific types)."""
    ctx = site_ctx(bench)
    out: list[Any] = []
    steps = [
        (ALL_SECTIONS, NOW, False),
        ({**ALL_SECTIONS, "daily": [{"method": "app1.tasks.ok", "name": "daily", "queue": "short"}]}, LATER, False),
        ({k: v for k, v in ALL_SECTIONS.items() if k not in ("weekly", "cron")}, LATER + timedelta(hours=3), False),
        ({**{k: v for k, v in ALL_SECTIONS.items() if k != "weekly"},
          "hourly": [{"method": "app1.tasks.ok", "name": "weekly"}]}, LATER + timedelta(days=3), False),
        ({"hourly": ["app1.tasks.ok"]}, LATER + timedelta(days=4), True),
    ]
    for events, now, prune in steps:
        set_hooks(bench, events)
        plan = migrate(ctx, now, prune=prune)
        rows = [{c: getattr(r, c) for c in ("id", "name", "frequency", "cron_format", "queue", "timeout", "removed",
                                            "removed_at", "next_execution", "created_at", "modified_at")}
                for r in ScheduledJobType.select().order_by(ScheduledJobType.id)]
        out.append((plan.as_dict(), rows))
    ctx.close()
    return out


@pytest.mark.postgres
def test_sqlite_and_postgres_give_identical_results(bench_factory):
    results = {}
    for kind in ("sqlite", "postgres"):
        bench = bench_factory.make({"app1": {}}, db=kind)
        results[kind] = _scenario(bench)
    assert results["sqlite"] == results["postgres"]
    # the scenario really exercised adds, updates, removals, re-adding and pruning
    plans = [plan for plan, _ in results["sqlite"]]
    assert [len(p["added"]) for p in plans] == [16, 0, 0, 0, 0]
    assert [len(p["updated"]) for p in plans] == [0, 1, 1, 3, 1]
    assert [len(p["removed"]) for p in plans] == [0, 0, 3, 1, 0]
    assert [len(p["pruned"]) for p in plans] == [0, 0, 0, 0, 15]

