"""A schema changed under a running scheduler: a newer hookscheduler's ``migrate`` (simulated by recording
version ``SCHEMA_VERSION + 1``), or an older version recorded by hand. The loop stops serving that site at its
next pass, says so once, keeps serving the other sites, and serves the site again by itself once its schema is
this hookscheduler's again. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from hookscheduler.broker.connection import redis_for
from hookscheduler.context import open_site
from hookscheduler.exceptions import SchemaError
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.schedule.step import SiteStep
from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain
from tests.integration.opcli_support import migrated

T0 = datetime(2026, 1, 5, 10, 7)
SITES = ("a.example", "b.example")


def _set_version(bench, site: str, version: int) -> None:
    ctx = open_site(str(bench), site)
    try:
        ctx.database(require_schema=False)
        dbmod.set_state("schema_version", str(version))
    finally:
        ctx.close()


def _slots(bench, site: str) -> list[int]:
    """The hours of the slots the site's ledger has a row for."""
    ctx = open_site(str(bench), site)
    try:
        ctx.database(require_schema=False)
        return sorted(r.scheduled_for.hour for r in ScheduledJobLog.select())
    finally:
        ctx.close()


@pytest.mark.parametrize(("version", "fix"), [(dbmod.SCHEMA_VERSION + 1, "upgrade hookscheduler"),
                                              (dbmod.SCHEMA_VERSION - 1, "run `hookscheduler migrate`")])
def test_loop_stops_serving_a_site_whose_schema_changed_reports_it_once_and_resumes(
        bench_factory, db_kind, caplog, version, fix):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind, sites={s: {} for s in SITES})
    for site in SITES:
        migrated(bench, T0, site)[0].close()
    clock = {"now": datetime(2026, 1, 5, 11, 0, 1)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])

    def cycle() -> None:  # the runs done each hour: the next slot fires rather than skip for an overlap
        sched.cycle()
        ctx = sched.sites["b.example"].ctx
        drain(ctx.bench.bench_id, redis_for(ctx.site))

    cycle()
    assert [_slots(bench, s) for s in SITES] == [[11], [11]]
    _set_version(bench, "a.example", version)
    caplog.set_level(logging.INFO, logger="hookscheduler.schedule.loop")
    for hour in (12, 13, 14):  # a pass at each slot, the back-off not waited for
        clock["now"] = datetime(2026, 1, 5, hour, 0, 1)
        sched.sites["a.example"].retry_at = None
        cycle()
    assert _slots(bench, "a.example") == [11], "a schema that is not its own: nothing claimed, nothing fired"
    assert _slots(bench, "b.example") == [11, 12, 13, 14], "the other site is served as before"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # once, not at every pass
    assert "site a.example:" in errors[0] and f"version {version}" in errors[0] and fix in errors[0], errors
    assert sched.sites["a.example"].failures == 3
    _set_version(bench, "a.example", dbmod.SCHEMA_VERSION)
    clock["now"] = datetime(2026, 1, 5, 15, 0, 1)
    sched.sites["a.example"].retry_at = None
    cycle()
    assert sched.sites["a.example"].failures == 0
    assert 15 in _slots(bench, "a.example"), "served again once the schema is its own"
    assert _slots(bench, "b.example") == [11, 12, 13, 14, 15]
    assert "site a.example: recovered after 3 failed attempt(s)" in caplog.text
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_a_step_refuses_a_newer_schema_before_its_sweep_writes(bench_factory, db_kind):
    """The sweep's first half (re-anchor, repairs) runs before the pass's probe: it checks the schema first, and
    leaves a row without a next slot as it is rather than repair it under a schema it does not know."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx, conn = migrated(bench, T0)
    step = SiteStep(ctx)
    step.run(conn, datetime(2026, 1, 5, 11, 0, 1))
    _set_version(bench, "default", dbmod.SCHEMA_VERSION + 1)
    ctx.database(require_schema=False)
    ScheduledJobType.update(next_execution=None).execute()  # the sweep's repair has work
    step.unslotted = True
    with pytest.raises(SchemaError, match="upgrade hookscheduler"):
        step.run(conn, datetime(2026, 1, 5, 11, 30), sweep=True)
    ctx.database(require_schema=False)
    assert [r.next_execution for r in ScheduledJobType.select()] == [None], "not repaired under a newer schema"
    _set_version(bench, "default", dbmod.SCHEMA_VERSION)
    step.run(conn, datetime(2026, 1, 5, 11, 30, 1), sweep=True)
    ctx.database()
    assert [r.next_execution for r in ScheduledJobType.select()] == [datetime(2026, 1, 5, 12, 0)]
    step.run(conn, datetime(2026, 1, 5, 12, 0, 1))
    assert _slots(bench, "default") == [11, 12]
    ctx.close()
