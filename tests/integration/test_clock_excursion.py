"""A clock that jumps a day ahead for one step and comes back: the next step finds it, moves the jobs back to
their next slot, withdraws the runs claimed for future slots, logs it and `doctor` shows it; a future slot that
already ran early is not run again when it comes. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import time_machine

from hookscheduler.broker.connection import redis_for
from hookscheduler.schedule.step import SiteStep
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain
from tests.integration.opcli_support import run
from tests.integration.test_tick import queued_ids, setup_site

ELEVEN = datetime(2026, 1, 5, 11, 0, 1)
TOMORROW = datetime(2026, 1, 6, 11, 30, 1)  # the clock a day ahead
BACK = datetime(2026, 1, 5, 11, 40, 1)


def _excursion(bench_factory, db_kind, monkeypatch, run_early: bool):
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.ok"]}, db_kind)
    conn = redis_for(ctx.site)
    step = SiteStep(ctx)
    assert step.run(conn, ELEVEN, sweep=True).fired == 1
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    assert step.run(conn, TOMORROW, sweep=True).fired == 1  # one catch-up run for the day "missed"
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 6, 12)
    if run_early:
        drain(ctx.bench.bench_id, conn)
        ctx.database()
    return ctx, conn


def test_a_forward_excursion_is_found_and_the_schedule_recovered(bench_factory, db_kind, monkeypatch, caplog):
    ctx, conn = _excursion(bench_factory, db_kind, monkeypatch, run_early=False)
    step = SiteStep(ctx)
    with caplog.at_level(logging.WARNING):
        step.run(conn, BACK, sweep=True)
    assert "clock excursion" in caplog.text and "1 job(s) moved back" in caplog.text
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 12)
    future = ScheduledJobLog.get(ScheduledJobLog.scheduled_for == datetime(2026, 1, 6, 11))
    assert future.status == "skipped" and "clock excursion" in future.reason and future.rq_job_id is None
    assert queued_ids(ctx) == []  # withdrawn from its queue
    assert step.run(conn, datetime(2026, 1, 5, 12, 0, 1), sweep=True).fired == 1  # the job fires again
    with time_machine.travel(datetime(2026, 1, 5, 12, 5, tzinfo=timezone.utc), tick=False):
        doctor = run(ctx.bench.path, "doctor", "--format", "json").json()
    [check] = [c for c in doctor["checks"] if c["check"] == "clock excursion"]
    assert not check["ok"] and "1 job(s) moved back" in check["detail"], check


def test_a_future_slot_that_ran_early_is_not_run_again(bench_factory, db_kind, monkeypatch):
    ctx, conn = _excursion(bench_factory, db_kind, monkeypatch, run_early=True)
    step = SiteStep(ctx)
    step.run(conn, BACK, sweep=True)
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 12)
    fired = 0
    for hour in range(12, 24 + 13):  # the day passes again, one step an hour, up to 12:00 the next day
        now = datetime(2026, 1, 5 + hour // 24, hour % 24, 0, 1)
        fired += step.run(conn, now, sweep=True).fired
        drain(ctx.bench.bench_id, conn)
        ctx.database()
    complete = [r for r in ScheduledJobLog.select() if r.status == "complete"]
    slots = [r.scheduled_for for r in complete]
    assert len(slots) == len(set(slots)), "a slot ran twice"
    # the early catch-up run stood for 12:00 .. 11:00 the next day: those slots are served; 12:00 runs
    assert fired == 1 and datetime(2026, 1, 6, 12) in slots
