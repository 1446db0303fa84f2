"""Frappe habits and first-hour messages: ``trigger-scheduler-event daily_long``, ``scheduler status --check``,
``jobs enable`` with a typo, a missing PostgreSQL driver, and Frappe's ``scheduler_interval`` for ``all`` jobs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from hookscheduler.broker.keys import heartbeat_key
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.reanchor import reanchor_if_calendar_changed
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.integration.opcli_support import migrated, run, sub

T0 = datetime(2026, 1, 5, 10, 7, 30)

EVENTS = {
    "daily": ["app1.tasks.ok"],
    "daily_long": [{"method": "app1.tasks.other", "name": "nightly_long"}],
    "daily_maintenance": [{"method": "app1.tasks.ok", "name": "vacuum"}],
    "hourly_long": [{"method": "app1.tasks.other", "name": "hourly_long_job"}],
    "cron_long": {"0 3 * * *": [{"method": "app1.tasks.ok", "name": "reindex"}]},
}


def _event_rows(bench, trigger_target):
    ctx = open_site(str(bench))
    ctx.database()
    try:
        rows = ScheduledJobLog.select().where(ScheduledJobLog.trigger == "event")
        return sorted(r.job_name for r in rows)
    finally:
        ctx.close()


@pytest.mark.parametrize(("event", "jobs"), [
    ("daily_long", ["nightly_long"]),
    ("hourly_long", ["hourly_long_job"]),
    ("daily_maintenance", ["vacuum"]),
    ("cron_long", ["reindex"]),
    ("daily", ["app1.tasks.ok", "nightly_long", "vacuum"]),  # the family, as before
])
def test_trigger_scheduler_event_takes_every_hooks_key(bench_factory, db_kind, event, jobs):
    bench = bench_factory.make({"app1": EVENTS}, db=db_kind)
    migrated(bench, T0)
    r = run(bench, "trigger-scheduler-event", event)
    assert r.code == 0, r.err
    assert _event_rows(bench, event) == jobs


def test_trigger_scheduler_event_typo_suggests(bench_factory):
    bench = bench_factory.make({"app1": EVENTS})
    migrated(bench, T0)
    r = run(bench, "purge-jobs", "--event", "daily_lnog")
    assert r.code == 2 and "unknown event 'daily_lnog'; did you mean 'daily_long'?" in r.err


def test_jobs_enable_typo_says_did_you_mean(bench_factory, db_kind):
    hooks = {"daily": [{"method": "app1.tasks.ok", "name": "app1.tasks.send_digest"}, "app1.tasks.other"]}
    bench = bench_factory.make({"app1": hooks}, db=db_kind)
    migrated(bench, T0)
    r = run(bench, "jobs", "enable", "app1.tasks.send_digset")
    assert r.code == 1 and "did you mean 'app1.tasks.send_digest'?" in r.err
    r = run(bench, "jobs", "enable", "send_digset")  # only the method's last part, mistyped
    assert r.code == 1 and "did you mean 'app1.tasks.send_digest'?" in r.err
    r = run(bench, "jobs", "disable", "zzzzzz")
    assert r.code == 1 and "see `hookscheduler jobs list --all`" in r.err


def test_scheduler_status_check_fails_without_a_live_scheduler(bench_factory, db_kind):
    bench = bench_factory.make({"app1": EVENTS}, db=db_kind)
    migrated(bench, T0)
    assert run(bench, "scheduler", "status").code == 0  # informative: still 0
    r = run(bench, "scheduler", "status", "--check")
    assert r.code == 1 and "site default: no `hookscheduler schedule` process is alive" in r.err
    assert run(bench, "scheduler", "pause").code == 0
    r = run(bench, "scheduler", "status", "--check", "--format", "json")
    assert r.code == 1 and "site default: scheduler paused (pause_scheduler is set)" in r.err
    assert json.loads(r.out)["status"] == "paused"


def test_scheduler_status_check_passes_with_a_live_scheduler(bench_factory, redis_client):
    bench = bench_factory.make({"app1": EVENTS})
    migrated(bench, T0)
    bench_id = bench_factory.bench_ids[-1]
    key = heartbeat_key(bench_id, "web1:4242")  # what a live `schedule` process writes
    redis_client.set(key, json.dumps({"host": "web1", "pid": 4242, "at": T0.isoformat(), "sites": ["default"]}),
                     ex=60)
    try:
        r = run(bench, "scheduler", "status", "--check")
        assert r.code == 0, r.err
    finally:
        redis_client.delete(key)


def test_missing_postgresql_driver_says_what_to_install(bench_factory, tmp_path):
    """A real process whose ``import psycopg2`` fails, as on an install without the ``postgres`` extra."""
    blocker = tmp_path / "no_driver"
    (blocker / "psycopg2").mkdir(parents=True)
    (blocker / "psycopg2" / "__init__.py").write_text("raise ImportError('No module named psycopg2')\n")
    bench = bench_factory.make({"app1": EVENTS}, sites={"s": {"db_url": "postgresql://u@127.0.0.1:5432/x"}})
    for args in (("migrate",), ("jobs", "list")):
        r = sub(bench, *args, PYTHONPATH=f"{blocker}:{_root()}")
        assert r.code == 2, r.err
        assert r.err.strip().splitlines() == [
            "Error: db_url postgresql://u@127.0.0.1:5432/x is PostgreSQL, but its driver (psycopg2) is not "
            "installed: pip install 'hookscheduler[postgres]'"]


def _root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])


# --- scheduler_interval: Frappe's `all` ---------------------------------------------------------------------------

def _site_with_all(bench_factory, db_kind, common):
    bench = bench_factory.make({"app1": {"all": ["app1.tasks.ok"]}}, db=db_kind, common=common)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
    return bench, ctx


def _next(ctx):
    return ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").next_execution


def test_scheduler_interval_puts_all_on_the_wall_clock(bench_factory, db_kind):
    bench, ctx = _site_with_all(bench_factory, db_kind, {"scheduler_interval": 240})
    try:
        assert _next(ctx) == datetime(2026, 1, 5, 10, 8)  # */4: the next 4-minute mark, not T0 + 240 s
        with time_machine.travel(T0.replace(tzinfo=timezone.utc), tick=False):  # `jobs next` forecasts from now
            r = run(bench, "jobs", "next", "app1.tasks.ok", "-n", "3", "--format", "json")
        assert [x["utc"][11:16] for x in r.json()] == ["10:08", "10:12", "10:16"]
    finally:
        ctx.close()


def test_without_scheduler_interval_all_keeps_the_tick_interval(bench_factory, db_kind):
    _, ctx = _site_with_all(bench_factory, db_kind, {"scheduler_tick_interval": 60})
    try:
        assert _next(ctx) == T0 + timedelta(seconds=60)
    finally:
        ctx.close()


def test_setting_scheduler_interval_re_anchors_all_jobs(bench_factory, db_kind):
    bench, ctx = _site_with_all(bench_factory, db_kind, {})
    try:
        reanchor_if_calendar_changed(ctx, now=T0)  # records the calendar
        assert _next(ctx) == T0 + timedelta(seconds=60)
        conf_path = bench / "sites" / "common_site_config.json"
        conf = json.loads(conf_path.read_text())
        conf_path.write_text(json.dumps({**conf, "scheduler_interval": 300}))
        ctx2 = open_site(str(bench))
        ctx2.database()
        assert reanchor_if_calendar_changed(ctx2, now=T0 + timedelta(seconds=10)) == 1
        assert _next(ctx2) == datetime(2026, 1, 5, 10, 10)
        ctx2.close()
    finally:
        ctx.close()
