"""Redis outages: the loop is back within seconds of the service, not after a minute of back-off, and the
slots that came due during the outage are served by the job's catch-up policy, not skipped behind a run the
outage lost. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.schedule.loop import MAX_BACKOFF, Scheduler
from hookscheduler.schedule.reconcile import LOST_UNKNOWN
from hookscheduler.store.models import ScheduledJobLog
from tests.integration.test_double_run import own_redis  # noqa: F401  (a fixture)
from tests.integration.test_loop import _migrated

pytestmark = pytest.mark.slow


def _loop(bench_factory, db_kind, server, start):
    bench = _migrated(bench_factory, db_kind, {"hourly": ["app1.tasks.ok"]}, common={"redis_queue": server.url})
    clock = {"now": start}
    return Scheduler(bench=str(bench), now_fn=lambda: clock["now"]), clock


def test_the_loop_recovers_within_five_seconds_of_redis_returning(bench_factory, db_kind, own_redis):  # noqa: F811
    sched, clock = _loop(bench_factory, db_kind, own_redis, datetime(2026, 1, 5, 10, 30))
    sched.cycle()
    own_redis.stop()
    state = sched.sites["default"]
    clock["now"] = datetime(2026, 1, 5, 11, 0, 1)  # a slot comes due during the outage: every attempt fails
    for _ in range(20):  # a long outage: the back-off has grown as far as it goes
        clock["now"] = max(state.retry_at or clock["now"], clock["now"]) + timedelta(milliseconds=1)
        sched.cycle()
        assert state.retry_at is not None and (state.retry_at - clock["now"]).total_seconds() <= MAX_BACKOFF
    assert state.failures == 20 and MAX_BACKOFF <= 4
    own_redis.start()  # the service returns; the next attempt is due at most MAX_BACKOFF later
    clock["now"] = state.retry_at
    sched.cycle()
    assert state.failures == 0


def test_slots_due_during_an_outage_follow_the_catch_up_policy(bench_factory, db_kind, own_redis):  # noqa: F811
    sched, clock = _loop(bench_factory, db_kind, own_redis, datetime(2026, 1, 5, 11, 0, 1))
    sched.cycle()  # 11:00 is sent; no worker takes it before Redis goes
    own_redis.stop()
    state = sched.sites["default"]
    for hour in (12, 13):  # both slots come while Redis is down
        clock["now"] = datetime(2026, 1, 5, hour, 0, 1)
        state.retry_at = None
        sched.cycle()
    own_redis.start()  # back, without its data
    clock["now"] = datetime(2026, 1, 5, 13, 30)
    state.retry_at = None
    sched.cycle()
    assert state.failures == 0
    state.ctx.database()
    rows = [
        (r.scheduled_for.hour, r.status, r.trigger, r.slots, r.reason)
        for r in ScheduledJobLog.select().order_by(ScheduledJobLog.id)
    ]
    assert rows[0] == (11, "failed", "schedule", 1, LOST_UNKNOWN)
    assert rows[1][:4] == (13, "queued", "catch-up", 2) and "12:00" in rows[1][4], rows
    assert len(rows) == 2
