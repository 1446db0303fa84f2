"""The guarantees of a pass (docs/exactly-once.md), on SQLite and PostgreSQL, with real Redis and real RQ workers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from rq import Queue

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import queue_name
from hookscheduler.context import SiteContext, open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.database import set_state
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain, read_out

T0 = datetime(2026, 1, 5, 10, 7)  # a Monday


def setup_site(bench_factory, events, db_kind, now=T0, **make) -> SiteContext:
    bench = bench_factory.make({"app1": events}, db=db_kind, **make)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=now)
    return ctx


def queued_ids(ctx: SiteContext, queue: str = "default") -> list[str]:
    return Queue(queue_name(ctx.bench.bench_id, queue), connection=redis_for(ctx.site)).get_job_ids()


def logs(**where) -> list[ScheduledJobLog]:
    q = ScheduledJobLog.select().order_by(ScheduledJobLog.id)
    for k, v in where.items():
        q = q.where(getattr(ScheduledJobLog, k) == v)
    return list(q)


def test_cold_start_never_fires_at_migrate_time(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"], "all": ["app1.tasks.other"]}, db_kind)
    conn = redis_for(ctx.site)
    r = run_pass(ctx, conn, now=T0)
    assert (r.due, r.fired) == (0, 0)
    assert logs() == []
    # the All job first fires one interval after creation, the hourly one at 11:00
    assert run_pass(ctx, conn, now=T0 + timedelta(seconds=60)).fired == 1
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0))
    assert r.fired == 2  # hourly + the all job (its missed ticks coalesced into that one run)


def test_same_instant_twice_fires_once(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    at = datetime(2026, 1, 5, 11, 0, 0, 300)
    assert run_pass(ctx, conn, now=at).fired == 1
    assert run_pass(ctx, conn, now=at).fired == 0
    assert run_pass(ctx, conn, now=at + timedelta(minutes=59)).fired == 0
    assert len(queued_ids(ctx)) == 1
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 12, 0)


def test_48h_downtime_fires_once_and_records_the_missed_slots(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.other"],
                                     "all": [{"method": "app1.tasks.ok", "name": "every_tick"}]}, db_kind)
    conn = redis_for(ctx.site)
    back = T0 + timedelta(hours=48, minutes=3)
    r = run_pass(ctx, conn, now=back)
    assert r.fired == 3  # one run per job, whatever it missed
    runs = logs(status="queued")
    by_job = {lg.job_name: lg for lg in runs}
    hourly = by_job.get("app1.tasks.ok")
    assert hourly is not None and hourly.trigger == "catch-up"
    assert hourly.slots == 48  # 11:00 on day 1 .. 10:00 on day 3
    assert hourly.first_slot == datetime(2026, 1, 5, 11, 0)
    assert hourly.last_slot == datetime(2026, 1, 7, 10, 0)
    assert "coalesced" in hourly.reason
    daily = by_job["app1.tasks.other"]
    assert (daily.slots, daily.first_slot, daily.last_slot) == (2, datetime(2026, 1, 6), datetime(2026, 1, 7))
    # the next slot is computed forward from now: no storm
    nxt = {j.name: j.next_execution for j in ScheduledJobType.select()}
    assert nxt["app1.tasks.ok"] == datetime(2026, 1, 7, 11, 0)
    assert nxt["app1.tasks.other"] == datetime(2026, 1, 8, 0, 0)
    assert run_pass(ctx, conn, now=back).fired == 0
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert sorted(lg.status for lg in logs()) == ["complete"] * 3
    assert by_job["every_tick"].slots == 48 * 60 + 3  # every 60 s from 10:08 on day 1 to 10:10 on day 3


def test_all_frequency_downtime_is_one_row_not_a_row_per_tick(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"all": ["app1.tasks.ok"]}}, db=db_kind,
                               common={"scheduler_tick_interval": 60})
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
    conn = redis_for(ctx.site)
    run_pass(ctx, conn, now=T0 + timedelta(days=2))
    rows = logs()
    assert len(rows) == 1
    assert rows[0].slots == 2 * 24 * 60
    assert rows[0].trigger == "catch-up"
    # the grid is kept: next slot is on the creation anchor's grid, strictly after now
    nxt = ScheduledJobType.get().next_execution
    assert nxt > T0 + timedelta(days=2) and (nxt - T0).total_seconds() % 60 == 0


def test_catchup_skip_records_missed_and_waits(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": [{"method": "app1.tasks.ok", "catchup": "skip"}]}, db_kind)
    conn = redis_for(ctx.site)
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 15, 30))  # 11..15 missed, 15:00 is 30 min late
    assert r.fired == 0 and r.missed == 5
    [row] = logs()
    assert (row.status, row.slots, row.first_slot, row.last_slot) == ("missed", 5, datetime(2026, 1, 5, 11),
                                                                       datetime(2026, 1, 5, 15))
    assert "catchup=skip" in row.reason
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 16)
    # came back right at a slot: that one is on time and fires; the earlier ones are missed
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 19, 0, 5))
    assert (r.fired, r.missed) == (1, 3)


def test_catchup_all_fires_each_slot_up_to_the_limit(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": [{"method": "app1.tasks.ok", "catchup": "all", "catchup_limit": 3,
                                                 "overlap": "allow"}]}, db_kind)
    conn = redis_for(ctx.site)
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 16, 30))  # 11..16 due: 6 slots
    assert r.fired == 3 and r.missed == 3
    fired = [lg.scheduled_for.hour for lg in logs(status="queued")]
    assert fired == [14, 15, 16]
    [missed] = logs(status="missed")
    assert (missed.slots, missed.first_slot.hour, missed.last_slot.hour) == (3, 11, 13)
    assert len(set(queued_ids(ctx))) == 3


def test_overlap_skip_while_previous_run_is_queued(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 1
    # no worker: the 12:00 and 13:00 slots are skipped, in one coalesced row, with the reason
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1)).skipped == 1
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 0, 1)).skipped == 1
    skipped = logs(status="skipped")
    assert len(skipped) == 1 and skipped[0].slots == 2 and "still queued" in skipped[0].reason
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 14, 0, 1)).fired == 1


def test_overlap_allow_enqueues_anyway(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": [{"method": "app1.tasks.ok", "overlap": "allow"}]}, db_kind)
    conn = redis_for(ctx.site)
    for hour in (11, 12, 13):
        assert run_pass(ctx, conn, now=datetime(2026, 1, 5, hour, 0, 1)).fired == 1
    assert len(queued_ids(ctx)) == 3


def test_run_lost_by_redis_is_resent_once(bench_factory, db_kind, redis_client):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    [rq_id] = queued_ids(ctx)
    # Redis restarted without persistence: the queue and the job are gone
    redis_client.delete(f"rq:job:{rq_id}", f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}")
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert r.skipped == 1  # 12:00 waits for the owed 11:00 run, which is re-sent
    assert queued_ids(ctx) == [rq_id]
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert [x["slot"] for x in read_out(ctx.bench.path)] == ["2026-01-05T11:00:00"]


def test_stopped_by_direct_sql_is_honoured_next_pass_and_reenable_has_no_burst(bench_factory, db_kind):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    db = ctx.database()
    conn = redis_for(ctx.site)
    db.execute_sql("UPDATE scheduled_job_type SET stopped = %s" % ("true" if db_kind == "postgres" else "1"))
    for hour in range(11, 16):
        r = run_pass(ctx, conn, now=datetime(2026, 1, 5, hour, 0, 1))
        assert r.fired == 0 and r.skipped == 1
    [row] = logs()
    assert (row.status, row.slots, row.reason) == ("skipped", 5, "job stopped")
    db.execute_sql("UPDATE scheduled_job_type SET stopped = %s" % ("false" if db_kind == "postgres" else "0"))
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 16, 0, 1))
    assert r.fired == 1 and r.skipped == 0  # the next slot only: no burst for the five skipped ones


def test_paused_disabled_and_maintenance_hold_slots_then_catch_up_once(bench_factory, db_kind):
    """Each cause (pause, disable, maintenance) holds the due slots; the first active pass runs one catch-up
    (catchup=once) that says the slots passed while the scheduler was inactive, naming every cause."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind, sites={"s1": {"pause_scheduler": True}})
    conn = redis_for(ctx.site)
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    assert r.fired == 0 and "pause_scheduler" in (r.inactive or "")
    ctx.site = replace(ctx.site, values={**ctx.site.values, "pause_scheduler": False})
    set_state("scheduler_enabled", "0")
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert r.fired == 0 and r.inactive == "scheduler disabled"
    set_state("scheduler_enabled", "1")
    ctx.site = replace(ctx.site, values={**ctx.site.values, "maintenance_mode": 1})
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 0, 1)).fired == 0
    assert logs() == []  # held, not decided
    ctx.site = replace(ctx.site, values={**ctx.site.values, "maintenance_mode": 0})
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 14, 0, 1)).fired == 1
    [row] = logs()
    assert (row.status, row.trigger, row.slots) == ("queued", "catch-up", 4)
    assert "pause_scheduler" in row.reason and "scheduler disabled" in row.reason
    assert "maintenance_mode" in row.reason
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 15, 0)


@pytest.mark.parametrize("section,queue", [
    ("hourly_long", "long"), ("daily_long", "long"), ("weekly_long", "long"), ("monthly_long", "long"),
    ("hourly_maintenance", "long"), ("daily_maintenance", "long"), ("hourly", "default"), ("daily", "default"),
])
def test_long_and_maintenance_land_on_the_long_queue(bench_factory, section, queue):
    ctx = setup_site(bench_factory, {section: ["app1.tasks.ok"]}, "sqlite")
    run_pass(ctx, redis_for(ctx.site), now=T0 + timedelta(days=40))
    assert len(queued_ids(ctx, queue)) == 1


def test_cron_long_lands_on_the_long_queue(bench_factory):
    ctx = setup_site(bench_factory, {"cron_long": {"0 3 * * *": ["app1.tasks.ok"]},
                                     "cron": {"*/5 * * * *": ["app1.tasks.other"]}}, "sqlite")
    run_pass(ctx, redis_for(ctx.site), now=datetime(2026, 1, 6, 3, 0, 1))
    assert len(queued_ids(ctx, "long")) == 1 and len(queued_ids(ctx, "default")) == 1


def test_two_sites_share_redis_without_collisions(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind,
                               sites={"a.example.com": {}, "b.example.com": {}})
    ids = []
    for name in ("a.example.com", "b.example.com"):
        ctx = open_site(str(bench), name)
        if db_kind == "sqlite":
            assert str(ctx.site.path) in ctx.site.db_url
        db = ctx.database(create=True, require_schema=False)
        migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
        r = run_pass(ctx, redis_for(ctx.site), now=datetime(2026, 1, 5, 11, 0, 1))
        assert r.fired == 1
        ids += r.sent_ids
        ctx.close()
    assert len(set(ids)) == 2


def test_row_without_next_execution_is_rescheduled_not_forgotten(bench_factory, db_kind):
    from hookscheduler.schedule.repair import repair_missing_slots

    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    ctx.database().execute_sql("UPDATE scheduled_job_type SET next_execution = NULL")
    assert repair_missing_slots(ctx, now=datetime(2026, 1, 5, 12, 30)) == 1
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 13, 0)
    assert repair_missing_slots(ctx, now=datetime(2026, 1, 5, 12, 30)) == 0
