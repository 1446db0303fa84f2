"""A clock that jumps a day ahead for one step and comes back: the next step finds it, logs it and `doctor`
shows it. Recovery is conservative: nothing sent to Redis is withdrawn (a worker may already hold it), a run
decided under the clock ahead runs early, once, and a job is moved back only to the first slot after now that
no ledger row covers, so no slot is ever decided (or run) twice. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import time_machine

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import queue_name
from hookscheduler.schedule.step import SiteStep
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain
from tests.integration.opcli_support import run
from tests.integration.test_tick import queued_ids, setup_site

ELEVEN = datetime(2026, 1, 5, 11, 0, 1)
TOMORROW = datetime(2026, 1, 6, 11, 30, 1)  # the clock a day ahead
BACK = datetime(2026, 1, 5, 11, 40, 1)
NOON = datetime(2026, 1, 5, 12)  # the first slot after BACK
TOMORROW_NOON = datetime(2026, 1, 6, 12)  # the first slot after the early catch-up run's stretch


def _ran_at_eleven(bench_factory, db_kind):
    """An hourly job whose 11:00 run fired and ran, on the right clock."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    step = SiteStep(ctx)
    assert step.run(conn, ELEVEN, sweep=True).fired == 1
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    return ctx, conn, step


def _excursion(bench_factory, db_kind, run_early: bool):
    ctx, conn, step = _ran_at_eleven(bench_factory, db_kind)
    assert step.run(conn, TOMORROW, sweep=True).fired == 1  # one catch-up run for the day "missed"
    assert ScheduledJobType.get().next_execution == TOMORROW_NOON
    if run_early:
        drain(ctx.bench.bench_id, conn)
        ctx.database()
    return ctx, conn


def _each_slot_decided_once(until: datetime) -> None:
    """Every hourly slot from 11:00 on the first day up to ``until`` is covered by exactly one ledger row."""
    rows = list(ScheduledJobLog.select())
    slot = datetime(2026, 1, 5, 11)
    while slot <= until:
        covering = [r.id for r in rows if r.first_slot <= slot <= r.last_slot]
        assert len(covering) == 1, f"slot {slot} decided {len(covering)} times: rows {covering}"
        slot += timedelta(hours=1)


def _doctor_detail(ctx) -> str:
    with time_machine.travel(datetime(2026, 1, 5, 12, 5, tzinfo=timezone.utc), tick=False):
        doctor = run(ctx.bench.path, "doctor", "--format", "json").json()
    [check] = [c for c in doctor["checks"] if c["check"] == "clock excursion"]
    assert not check["ok"], check
    return str(check["detail"])


def test_a_queued_run_decided_under_the_clock_ahead_is_kept_and_runs_once(bench_factory, db_kind, caplog):
    ctx, conn = _excursion(bench_factory, db_kind, run_early=False)
    [early] = queued_ids(ctx)
    # a worker took the run off its queue just before the clock came back (not marked started yet)
    queue_key = f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}"
    assert conn.lrem(queue_key, 0, early) == 1
    step = SiteStep(ctx)
    with caplog.at_level(logging.WARNING):
        assert step.run(conn, BACK, sweep=True).fired == 0
    assert "clock excursion" in caplog.text and "0 job(s) moved back" in caplog.text
    assert "1 run(s) decided under the clock ahead kept" in caplog.text
    row = ScheduledJobLog.get(ScheduledJobLog.rq_job_id == early)  # not withdrawn: the worker holding it runs it
    assert row.status == "queued" and row.first_slot == NOON and row.last_slot == datetime(2026, 1, 6, 11)
    assert conn.exists(f"rq:job:{early}")
    assert ScheduledJobType.get().next_execution == TOMORROW_NOON  # its stretch is not decided again
    assert "1 run(s) decided under the clock ahead kept" in _doctor_detail(ctx)
    conn.rpush(queue_key, early)  # the worker that took it performs it
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    fired = 0
    for hour in range(12, 24 + 13):  # the day passes again, one step an hour, up to 12:00 the next day
        fired += step.run(conn, datetime(2026, 1, 5 + hour // 24, hour % 24, 0, 1), sweep=True).fired
        drain(ctx.bench.bench_id, conn)
        ctx.database()
    assert fired == 1  # 12:00 the next day, the first slot no row stood for
    assert ScheduledJobLog.get(ScheduledJobLog.rq_job_id == early).status == "complete"
    _each_slot_decided_once(TOMORROW_NOON)


def test_a_future_slot_that_ran_early_is_not_run_again(bench_factory, db_kind):
    ctx, conn = _excursion(bench_factory, db_kind, run_early=True)
    step = SiteStep(ctx)
    step.run(conn, BACK, sweep=True)
    assert ScheduledJobType.get().next_execution == TOMORROW_NOON
    fired = 0
    for hour in range(12, 24 + 13):
        now = datetime(2026, 1, 5 + hour // 24, hour % 24, 0, 1)
        fired += step.run(conn, now, sweep=True).fired
        drain(ctx.bench.bench_id, conn)
        ctx.database()
    # the early catch-up run stood for 12:00 .. 11:00 the next day: those slots are served; 12:00 runs
    assert fired == 1
    _each_slot_decided_once(TOMORROW_NOON)


def test_a_catch_up_run_never_covers_a_slot_that_ran_early(bench_factory, db_kind):
    """The pass after the recovery is a catch-up of several hours (no scheduler ran meanwhile): its stretch
    must not reach back over the slots the early run stood for."""
    ctx, conn = _excursion(bench_factory, db_kind, run_early=True)
    step = SiteStep(ctx)
    step.run(conn, BACK, sweep=True)
    assert step.run(conn, datetime(2026, 1, 6, 14, 0, 1), sweep=True).fired == 1
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    _each_slot_decided_once(datetime(2026, 1, 6, 14))


def test_a_job_moves_back_only_to_the_first_slot_no_row_covers(bench_factory, db_kind, caplog):
    ctx, conn = _excursion(bench_factory, db_kind, run_early=True)
    # something under the clock ahead moved the job further than its rows reach (e.g. a re-anchoring sweep)
    ScheduledJobType.update(next_execution=datetime(2026, 1, 7, 12)).execute()
    with caplog.at_level(logging.WARNING):
        SiteStep(ctx).run(conn, BACK, sweep=True)
    assert "1 job(s) moved back" in caplog.text
    assert ScheduledJobType.get().next_execution == TOMORROW_NOON  # not to 12:00 today: the early run covers it
    assert "1 job(s) moved back" in _doctor_detail(ctx)


def test_a_job_ahead_with_no_row_for_its_slots_moves_back_to_now(bench_factory, db_kind):
    ctx, conn, step = _ran_at_eleven(bench_factory, db_kind)
    step.run(conn, TOMORROW + timedelta(seconds=30), sweep=False)  # records the step ahead
    ScheduledJobLog.delete().where(ScheduledJobLog.created_at > BACK).execute()  # no row stands for its slots
    for rq_id in queued_ids(ctx):
        conn.lrem(f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}", 0, rq_id)
    assert ScheduledJobType.get().next_execution == TOMORROW_NOON
    step.run(conn, BACK, sweep=True)
    assert ScheduledJobType.get().next_execution == NOON
    assert step.run(conn, datetime(2026, 1, 5, 12, 0, 1), sweep=True).fired == 1


def test_the_loop_finds_and_recovers_an_excursion_in_its_batched_check(bench_factory, db_kind, caplog):
    """In the loop, the check rides on the cycle's one round trip of last ticks: the cycle after the clock came
    back moves the job back after its pass, and the loop plans its next wake-up from the moved slot."""
    from hookscheduler.schedule.loop import Scheduler

    ctx, conn = _excursion(bench_factory, db_kind, run_early=False)
    ScheduledJobLog.delete().where(ScheduledJobLog.created_at > BACK).execute()  # no row stands for its slots
    for rq_id in queued_ids(ctx):
        conn.lrem(f"rq:queue:{queue_name(ctx.bench.bench_id, 'default')}", 0, rq_id)
    clock = [BACK]
    sched = Scheduler(bench=str(ctx.bench.path), now_fn=lambda: clock[0])
    with caplog.at_level(logging.WARNING):
        sched.cycle()
    assert "clock excursion" in caplog.text
    ctx.database()
    assert ScheduledJobType.get().next_execution == NOON
    assert sched.sites[ctx.name].next_due == NOON and sched.sites[ctx.name].failures == 0
    clock[0] = datetime(2026, 1, 5, 12, 0, 1)
    sched.keep_results = True
    sched.cycle()
    assert [r.fired for r in sched.results] == [1]
    sched.cycle()  # found once: the recovery recorded now as the latest step
    assert caplog.text.count("clock excursion") == 1
    ctx.database()
    _each_slot_decided_once(datetime(2026, 1, 5, 12))
