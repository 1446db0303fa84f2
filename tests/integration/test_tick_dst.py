"""DST through the whole tick (not only the cron maths): passes every 5 minutes across the change days."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hookscheduler.broker.connection import redis_for
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog

UTC = ZoneInfo("UTC")

CASES = [
    # zone, a day before the change (UTC), local time that repeats on fall-back, one that is skipped on spring
    ("America/New_York", datetime(2026, 10, 31, 12), "30 1 * * *", datetime(2026, 3, 7, 12), "30 2 * * *"),
    ("Europe/Berlin", datetime(2026, 10, 24, 12), "30 2 * * *", datetime(2026, 3, 28, 12), "30 2 * * *"),
]


def _drive(bench_factory, db_kind, zone, start, cron):
    events = {"cron": {cron: [{"method": "app1.tasks.ok", "name": "daily_at", "overlap": "allow"}]},
              "hourly": [{"method": "app1.tasks.other", "name": "hourly", "overlap": "allow"}]}
    bench = bench_factory.make({"app1": events}, db=db_kind, common={"time_zone": zone})
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=start)
    conn = redis_for(ctx.site)
    for i in range(0, 48 * 12):  # 48 hours, a pass every 5 minutes
        run_pass(ctx, conn, now=start + timedelta(minutes=5 * i, seconds=1))
    rows = list(ScheduledJobLog.select().order_by(ScheduledJobLog.scheduled_for))
    assert all(r.status == "queued" and r.trigger == "schedule" for r in rows)
    return ctx, rows


@pytest.mark.parametrize("zone,fall,fall_cron,spring,spring_cron", CASES, ids=[c[0] for c in CASES])
def test_fall_back_daily_fires_once_and_hourly_every_real_hour(bench_factory, db_kind, zone, fall, fall_cron,
                                                               spring, spring_cron):
    tz = ZoneInfo(zone)
    _, rows = _drive(bench_factory, db_kind, zone, fall, fall_cron)
    daily = [r.scheduled_for.replace(tzinfo=UTC).astimezone(tz) for r in rows if r.job_name == "daily_at"]
    per_day = Counter(d.date() for d in daily)
    assert set(per_day.values()) == {1}, per_day  # once per local day, also on the 25-hour day
    hourly = [r.scheduled_for for r in rows if r.job_name == "hourly"]
    gaps = {(b - a) for a, b in itertools.pairwise(hourly)}
    assert gaps == {timedelta(hours=1)} and len(hourly) == len(set(hourly))


@pytest.mark.parametrize("zone,fall,fall_cron,spring,spring_cron", CASES, ids=[c[0] for c in CASES])
def test_spring_forward_skipped_time_fires_once_at_the_end_of_the_gap(bench_factory, db_kind, zone, fall,
                                                                      fall_cron, spring, spring_cron):
    tz = ZoneInfo(zone)
    _, rows = _drive(bench_factory, db_kind, zone, spring, spring_cron)
    daily = [r.scheduled_for.replace(tzinfo=UTC).astimezone(tz) for r in rows if r.job_name == "daily_at"]
    assert set(Counter(d.date() for d in daily).values()) == {1}
    # the change day's 02:30 does not exist: it fires at 03:00; the next day at 02:30 again
    assert [(d.hour, d.minute) for d in daily] == [(3, 0), (2, 30)]
    hourly = [r.scheduled_for for r in rows if r.job_name == "hourly"]
    assert {(b - a) for a, b in itertools.pairwise(hourly)} == {timedelta(hours=1)}
