"""The loop wakes just before a slot to work ahead of its pass, then waits for the slot itself (fire latency)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.loop import LEAD, Scheduler
from hookscheduler.schedule.reanchor import reanchor_if_calendar_changed
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow

T0 = datetime(2026, 1, 5, 10, 7)


def _migrated(bench_factory, db_kind, events, now=T0, **make):
    bench = bench_factory.make({"app1": events}, db=db_kind, **make)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=now)
    reanchor_if_calendar_changed(ctx, now=now)  # remember the calendar, as a first loop sweep would
    ctx.close()
    return bench


def test_work_ahead_reanchors_before_the_pass_and_the_cycle_does_not_sweep_twice(bench_factory, db_kind):
    bench = _migrated(bench_factory, db_kind, {"daily": ["app1.tasks.ok"]})
    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    conf["time_zone"] = "Europe/Berlin"
    common.write_text(json.dumps(conf))
    clock = {"now": datetime(2026, 1, 5, 12, 0)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    sched.work_ahead()  # re-reads the config (the new zone) and runs the sweep that must precede a pass
    state = sched.sites["default"]
    assert state.step.swept_ahead and sched.worked_ahead_at is not None
    state.ctx.database()
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 23, 0)  # moved before any pass
    sched.cycle()
    assert not state.step.swept_ahead and state.step.last_sweep == clock["now"]  # the sweep's second half ran
    assert sched.worked_ahead_at is None  # work ahead serves one cycle only
    assert ScheduledJobLog.select().count() == 0  # nothing fired at the old time


def test_a_cycle_after_work_ahead_fires_the_due_slot(bench_factory, db_kind):
    bench = _migrated(bench_factory, db_kind, {"hourly": ["app1.tasks.ok"]})
    clock = {"now": datetime(2026, 1, 5, 10, 59, 59, 950000)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    sched.work_ahead()
    clock["now"] = datetime(2026, 1, 5, 11, 0, 0, 1000)
    sched.cycle()
    sched.sites["default"].ctx.database()
    assert [r.scheduled_for for r in ScheduledJobLog.select()] == [datetime(2026, 1, 5, 11, 0)]


@pytest.mark.parametrize("past", [False, True])
def test_the_work_ahead_starts_no_sweep_once_its_slot_has_come(bench_factory, past):
    """Many sites' sweeps falling due together must not push the work ahead past the slot it prepares (and the
    slot's release with it): a site reached at or after ``until`` is left to its step, which sweeps it."""
    bench = _migrated(bench_factory, "sqlite", {"daily": ["app1.tasks.ok"]})
    now = datetime(2026, 1, 5, 12, 0)
    sched = Scheduler(bench=str(bench), now_fn=lambda: now)
    sched.work_ahead(until=now if past else now + timedelta(seconds=LEAD))
    assert sched.sites["default"].step.swept_ahead is not past
    assert sched.worked_ahead_at is not None  # the config was read either way


def test_sleep_works_ahead_then_returns_only_once_the_slot_has_passed(bench_factory):
    start = utcnow()
    bench = _migrated(bench_factory, "sqlite", {"cron": {"* * * * * *": ["app1.tasks.ok"]}}, now=start)
    sched = Scheduler(bench=str(bench))
    worked: list[datetime] = []
    original = sched.work_ahead

    def work_ahead(until: datetime | None = None) -> None:
        assert until == due, "the work ahead is told the slot it must not run past"
        worked.append(utcnow())
        original(until)

    sched.work_ahead = work_ahead  # type: ignore[method-assign]
    due = start + timedelta(seconds=LEAD * 3)
    sched.refresh_sites()
    sched.sites["default"].next_due = due
    sched._sleep((due - utcnow()).total_seconds())
    assert worked and worked[0] < due, "the loop works ahead of the pass, before its slot"
    assert utcnow() >= due, "the loop never wakes for a slot before the slot"


def test_sleep_without_a_slot_does_not_work_ahead(bench_factory):
    bench = _migrated(bench_factory, "sqlite", {"daily": ["app1.tasks.ok"]})
    sched = Scheduler(bench=str(bench))
    sched.refresh_sites()
    sched.sites["default"].next_due = utcnow() + timedelta(days=1)  # the sleep is the tick-interval cap
    sched.stop_event.set()
    sched.wake_event.set()  # a stop: the sleep ends at once
    sched._sleep(60.0)
    assert sched.worked_ahead_at is None


def test_the_spin_before_a_slot_is_bounded_even_when_the_clock_stands_still(bench_factory):
    bench = _migrated(bench_factory, "sqlite", {"daily": ["app1.tasks.ok"]})
    frozen = datetime(2026, 1, 5, 10, 0)
    sched = Scheduler(bench=str(bench), now_fn=lambda: frozen)
    sched._spin_until(frozen + timedelta(seconds=1))  # returns: bounded by real time, not by the clock
    sched.wake_event.set()
    sched._spin_until(frozen + timedelta(days=1))  # and at once on a wake-up


def test_a_slot_closer_than_the_lead_is_waited_for_exactly_without_preparing(bench_factory):
    start = utcnow()
    bench = _migrated(bench_factory, "sqlite", {"cron": {"* * * * * *": ["app1.tasks.ok"]}}, now=start)
    sched = Scheduler(bench=str(bench))
    sched.refresh_sites()
    due = utcnow() + timedelta(seconds=LEAD / 2)
    sched.sites["default"].next_due = due
    sched._sleep((due - utcnow()).total_seconds())
    assert utcnow() >= due and sched.worked_ahead_at is None
