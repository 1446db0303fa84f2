"""A site's clock (time zone, tick interval) changing re-anchors its jobs forward from now."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.schedule.reanchor import reanchor_if_calendar_changed
from hookscheduler.store.models import ScheduledJobType

T0 = datetime(2026, 1, 5, 10, 7)


def test_time_zone_change_moves_next_slots_to_the_new_zone(bench_factory, db_kind):
    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
    assert reanchor_if_calendar_changed(ctx, now=T0) == 0  # first sight: remembered, nothing moved
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 6, 0, 0)
    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    conf["time_zone"] = "Europe/Berlin"
    common.write_text(json.dumps(conf))
    # the running loop notices at its next sweep, before it fires anything at the old time
    sched = Scheduler(bench=str(bench), now_fn=lambda: datetime(2026, 1, 5, 12, 0))
    sched.cycle()
    sched.sites["default"].ctx.database()
    assert ScheduledJobType.get().next_execution == datetime(2026, 1, 5, 23, 0)  # Berlin midnight, in UTC
    ctx2 = open_site(str(bench))
    assert reanchor_if_calendar_changed(ctx2, now=datetime(2026, 1, 5, 12, 0)) == 0


def test_a_time_zone_change_does_not_offer_a_slot_already_skipped_again(bench_factory, db_kind):
    """``jobs skip-next`` records the next slot as skipped and moves the row on; a re-anchor right after (a new
    time zone) must not move the row back onto the skipped slot: ``jobs list`` showed it as the next run, and
    only the pass's own check (I9) kept it from being decided twice."""
    from hookscheduler.ops.jobs import skip_next

    bench = bench_factory.make({"app1": {"cron": {"* * * * * */20": ["app1.tasks.ok"]}}}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
    reanchor_if_calendar_changed(ctx, now=T0)
    now = T0 + timedelta(seconds=5)  # 10:07:05: the next slot is 10:07:20
    skipped = skip_next(db, "app1.tasks.ok", ctx.calendar, now=now)
    assert (skipped.skipped_slot, skipped.next_execution) == (T0 + timedelta(seconds=20), T0 + timedelta(seconds=40))
    ctx.close()
    common = bench / "sites" / "common_site_config.json"
    conf = json.loads(common.read_text())
    conf["time_zone"] = "Asia/Tokyo"  # a whole-hour offset: the same seconds grid, so only the ledger can tell
    common.write_text(json.dumps(conf))
    ctx2 = open_site(str(bench))
    assert reanchor_if_calendar_changed(ctx2, now=now) == 0  # 10:07:40 stays: the first slot after the skipped one
    ctx2.database()
    assert ScheduledJobType.get().next_execution == T0 + timedelta(seconds=40)
