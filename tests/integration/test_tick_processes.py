"""Exactly once per slot across real processes: 4 concurrent tick processes, and processes SIGKILLed at
every step of a pass (the failpoints of hookscheduler.faults)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta

import pytest
from rq import Queue

from hookscheduler.context import open_site
from hookscheduler.faults import TICK_POINTS
from hookscheduler.hooks_loader import load_job_specs
from hookscheduler.migrate import migrate_site
from hookscheduler.models import ScheduledJobLog
from hookscheduler.naming import queue_name
from hookscheduler.redis_conn import redis_for
from hookscheduler.tick import run_pass
from tests.helpers import drain, env_for, read_out

pytestmark = pytest.mark.slow
T0 = datetime(2026, 1, 5, 10, 0, 30)


def _site(bench_factory, db_kind, events):
    bench = bench_factory.make({"app1": events}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.clock, now=T0)
    return bench, ctx


def _driver(bench, start, step, count, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tick_driver", str(bench), start.isoformat(), str(step), str(count)],
        env=env_for(bench, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_four_concurrent_tick_processes_fire_every_slot_exactly_once(bench_factory, db_kind):
    jobs = [{"method": "app1.tasks.ok", "name": f"job{i:02d}", "overlap": "allow"} for i in range(25)]
    bench, ctx = _site(bench_factory, db_kind, {"cron": {"* * * * *": jobs}})
    # every process passes over the same 60 simulated minutes, 20 s apart: they race for every slot
    procs = [_driver(bench, T0, 20, 180) for _ in range(4)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    totals = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    expected_slots = 60  # 10:01 .. 11:00
    assert sum(t["fired"] for t in totals) == 25 * expected_slots
    assert sum(1 for t in totals if t["fired"]) >= 2, "the processes should share the work"
    ctx.database()
    rows = list(ScheduledJobLog.select())
    pairs = Counter((r.job_name, r.scheduled_for) for r in rows)
    assert len(rows) == 25 * expected_slots and max(pairs.values()) == 1
    assert {s for _, s in pairs} == {datetime(2026, 1, 5, 10, 1) + timedelta(minutes=m) for m in range(60)}
    ids = Queue(queue_name(ctx.bench.bench_id, "default"), connection=redis_for(ctx.site)).get_job_ids()
    assert len(ids) == len(set(ids)) == 25 * expected_slots


@pytest.mark.parametrize("point", TICK_POINTS)
def test_tick_killed_at_any_step_neither_doubles_nor_loses_a_slot(bench_factory, db_kind, point):
    events = {"hourly": [{"method": "app1.tasks.ok", "name": f"h{i}"} for i in range(5)]}
    bench, ctx = _site(bench_factory, db_kind, events)
    at = datetime(2026, 1, 5, 11, 0, 1)
    proc = _driver(bench, at, 1, 1, HOOKSCHEDULER_FAILPOINTS=point)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the failpoint {point} was not reached"
    # the next pass (any process) repairs: claims what was not committed, sends what was not sent
    conn = redis_for(ctx.site)
    ctx.close()
    run_pass(ctx, conn, now=at + timedelta(seconds=1))
    run_pass(ctx, conn, now=at + timedelta(seconds=2))
    rows = list(ScheduledJobLog.select())
    assert sorted(r.job_name for r in rows) == [f"h{i}" for i in range(5)]
    assert all(r.scheduled_for == datetime(2026, 1, 5, 11) and r.enqueued_at is not None for r in rows)
    ids = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).get_job_ids()
    assert len(ids) == len(set(ids)) == 5
    drain(ctx.bench.bench_id, conn)
    ran = Counter(line["job"] for line in read_out(bench))
    assert ran == {f"h{i}": 1 for i in range(5)}
    ctx.database()
    assert {r.status for r in ScheduledJobLog.select()} == {"complete"}
