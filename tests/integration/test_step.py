"""One step per site (``schedule/step.py``), the same for the ``schedule`` loop and the ``tick`` command:
re-anchor and repair before the pass, reconcile after it, then the site's last tick."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import redis
import time_machine

from hookscheduler.broker.keys import last_tick_key
from hookscheduler.context import open_site
from hookscheduler.ops.scheduler import last_tick
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.schedule.step import SiteStep
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.integration.opcli_support import migrated, run

T0 = datetime(2026, 1, 5, 10, 7)  # a Monday


def _at(moment: datetime) -> time_machine.travel:
    return time_machine.travel(moment.replace(tzinfo=timezone.utc), tick=False)


def _set_time_zone(bench, zone: str) -> None:
    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    conf["time_zone"] = zone
    common.write_text(json.dumps(conf))


def _next_execution(bench) -> datetime:
    ctx = open_site(str(bench))
    ctx.database()
    try:
        return ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok").next_execution
    finally:
        ctx.close()


def test_tick_reanchors_after_a_time_zone_change(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind)
    with _at(T0):
        assert run(bench, "migrate").code == 0
        assert run(bench, "tick").code == 0
    assert _next_execution(bench) == datetime(2026, 1, 6, 0, 0)
    _set_time_zone(bench, "Europe/Berlin")
    with _at(datetime(2026, 1, 5, 12, 0)):
        r = run(bench, "tick")
    assert r.code == 0, r.err
    assert _next_execution(bench) == datetime(2026, 1, 5, 23, 0)  # Berlin midnight, in UTC
    with _at(datetime(2026, 1, 5, 23, 0, 1)):
        assert run(bench, "tick", "--format", "json").json()[0]["fired"] == 1
    with _at(datetime(2026, 1, 6, 0, 0, 1)):  # the old slot: the job does not fire at it
        assert run(bench, "tick").code == 0
    assert _next_execution(bench) == datetime(2026, 1, 6, 23, 0)
    ctx = open_site(str(bench))
    ctx.database()
    assert [r.scheduled_for for r in ScheduledJobLog.select().where(ScheduledJobLog.job_name == "app1.tasks.ok")] == [
        datetime(2026, 1, 5, 23, 0)
    ]
    ctx.close()


def test_tick_writes_the_last_tick_so_doctor_sees_a_cron_driven_site(bench_factory, db_kind, redis_client):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx, conn = migrated(bench, T0)
    ctx.close()
    assert last_tick(conn, ctx.bench.bench_id, "default") is None
    doctor = run(bench, "doctor", "--format", "json").json()
    assert {"last tick", "scheduler process"} <= {p["check"] for p in doctor["problems"]}
    check = run(bench, "scheduler", "status", "--check")
    assert check.code == 1 and "scheduler process NOT RUNNING (start `hookscheduler schedule`" in check.out
    with _at(T0):
        assert run(bench, "tick").code == 0
        assert last_tick(conn, ctx.bench.bench_id, "default") == T0
        assert 0 < redis_client.ttl(last_tick_key(ctx.bench.bench_id, "default")) <= 7 * 86400
        doctor = run(bench, "doctor", "--format", "json").json()
    with _at(T0 + timedelta(seconds=12)):
        check = run(bench, "scheduler", "status", "--check")  # judged as doctor judges it
    assert check.code == 0, check.err
    # the status line says what drives the site, and sends nobody to start a process it does not need
    assert "(12.0s ago); scheduler process none (driven by `hookscheduler tick`);" in check.out, check.out
    assert "NOT RUNNING" not in check.out
    checks = {c["check"]: c for c in doctor["checks"]}
    assert checks["last tick"]["ok"] is True, checks["last tick"]
    # no `schedule` process, and none needed: the passes come from cron
    assert checks["scheduler process"]["ok"] is True and "tick" in checks["scheduler process"]["detail"]


def _scheduler_up(bench) -> float:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from hookscheduler.metrics.bench import BenchSites
    from hookscheduler.metrics.exporter import registry_for

    sites = BenchSites(str(bench))
    try:
        text = generate_latest(registry_for(sites, grace=0)).decode()
    finally:
        sites.close()
    [up] = [s.value for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == "hookscheduler_scheduler_up"]
    return up


def test_recent_passes_of_a_stopped_schedule_process_are_not_taken_for_cron(bench_factory, redis_client):
    """A `schedule` process killed a moment ago leaves a recent last pass behind: status, ``--check``, doctor and
    the dashboard must say it has stopped, not that cron drives the site (the passes of ``tick`` do)."""
    from tests.web.support import client

    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    ctx, conn = migrated(bench, T0)
    SiteStep(ctx).run(conn, T0, sweep=True)  # the loop's own step; its process has no heartbeat any more
    ctx.close()
    with _at(T0 + timedelta(seconds=12)):
        check = run(bench, "scheduler", "status", "--check")
        doctor = run(bench, "doctor", "--format", "json").json()
        page = client(bench).get("/scheduler").text
        up = _scheduler_up(bench)
    assert check.code == 1, check.out
    assert up == 0  # the SchedulerDown alert's input
    assert ("scheduler process NOT RUNNING (the `schedule` process that made the last pass has stopped; "
            "start `hookscheduler schedule`") in check.out, check.out
    assert ("site default: the `hookscheduler schedule` process that made its last pass (12.0s ago) has stopped, "
            "and no `hookscheduler tick` runs") in check.err, check.err
    checks = {c["check"]: c for c in doctor["checks"]}
    assert checks["scheduler process"]["ok"] is False and "has stopped" in checks["scheduler process"]["detail"]
    assert checks["last tick"]["ok"] is True  # the pass itself is recent
    assert "the process that made the last pass has stopped" in page and "driven by" not in page
    with _at(T0 + timedelta(seconds=20)):
        assert run(bench, "tick").code == 0  # from now on cron drives it
    with _at(T0 + timedelta(seconds=30)):
        check = run(bench, "scheduler", "status", "--check", "--format", "json")
        page = client(bench).get("/scheduler").text
        up = _scheduler_up(bench)
    assert check.code == 0, check.err
    assert up == 1  # a cron-driven bench is scheduled: no SchedulerDown alert
    st = json.loads(check.out)
    assert st["last_tick_command"].startswith("2026-01-05T10:07:20") and st["scheduler_alive"] is False
    assert "driven by <code>hookscheduler tick</code>, last 10.0 s ago" in page


def test_a_step_whose_runs_were_not_sent_neither_reconciles_nor_claims_a_last_tick(
    bench_factory, db_kind, redis_client
):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx, conn = migrated(bench, T0)
    step = SiteStep(ctx)
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens there
    result = step.run(down, datetime(2026, 1, 5, 11, 0, 1))
    assert result.fired == 1 and result.send_error  # claimed and recorded: the outbox keeps it
    assert step.last_sweep is None  # no reconcile against the Redis that just failed
    assert last_tick(conn, ctx.bench.bench_id, "default") is None
    result = step.run(conn, datetime(2026, 1, 5, 11, 0, 2))  # Redis is back: the outbox is sent
    assert (result.resent, result.send_error) == (1, None)
    assert step.last_sweep == datetime(2026, 1, 5, 11, 0, 2)
    assert last_tick(conn, ctx.bench.bench_id, "default") == datetime(2026, 1, 5, 11, 0, 2)
    ctx.close()


def test_the_loop_sweeps_every_sweep_every_seconds_and_the_tick_always(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx, conn = migrated(bench, T0)
    step = SiteStep(ctx)
    step.run(conn, T0)
    assert step.last_sweep == T0
    step.run(conn, datetime(2026, 1, 5, 10, 7, 10))
    assert step.last_sweep == T0  # ten seconds later: the pass only
    step.run(conn, datetime(2026, 1, 5, 10, 7, 11), sweep=True)  # as `tick` runs it
    assert step.last_sweep == datetime(2026, 1, 5, 10, 7, 11)
    ctx.close()
    sched = Scheduler(bench=str(bench), now_fn=lambda: datetime(2026, 1, 5, 10, 8))
    sched.cycle()  # the loop runs the same step
    assert sched.sites["default"].step.last_sweep == datetime(2026, 1, 5, 10, 8)
    sched.sites["default"].ctx.close()
