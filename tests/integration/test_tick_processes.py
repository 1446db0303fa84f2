"""Exactly once per slot across real processes: 4 concurrent tick processes, and processes SIGKILLed at
every step of a pass (the failpoints of hookscheduler.schedule._faults)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from rq import Queue

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import queue_name
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule._faults import POINTS
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog
from tests.helpers import drain, env_for, read_out

pytestmark = pytest.mark.slow
T0 = datetime(2026, 1, 5, 10, 0, 30)


def _site(bench_factory, db_kind, events):
    bench = bench_factory.make({"app1": events}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
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
    start_at = str(time.time() + 3)  # after every interpreter has started
    procs = [_driver(bench, T0, 20, 180, HS_START_AT=start_at) for _ in range(4)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    totals = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    if db_kind == "postgres":  # SKIP LOCKED spreads the due rows; SQLite's single writer promises no fairness
        assert sum(1 for t in totals if t["fired"]) >= 2, "the processes should share the work"
    ctx.database()
    rows = list(ScheduledJobLog.select())
    # I11: a process whose simulated clock ran minutes ahead may find another's claim unsent past the grace,
    # between that one's commit and its send, and decide it as the catch-up policy says (catchup=once: missed,
    # covered by the job's next run); the claimer's send then reaches RQ, where the worker's start refuses it
    assert {r.status for r in rows} <= {"queued", "missed"}
    assert all("but never sent" in r.reason and "catchup=once" in r.reason for r in rows if r.status == "missed")
    # Each process walks its own simulated timeline, so one may find a row that another held locked a little
    # too long already late, and coalesce two slots into one catch-up run. The invariant is on slots: every
    # (job, minute) is covered by exactly one run.
    covered: Counter[tuple[str, datetime]] = Counter()
    for r in rows:
        span = [r.first_slot + timedelta(minutes=m) for m in range(r.slots)]
        assert span[-1] == r.last_slot
        covered.update((r.job_name, s) for s in span)
    minutes = [datetime(2026, 1, 5, 10, 1) + timedelta(minutes=m) for m in range(60)]  # 10:01 .. 11:00
    assert max(covered.values()) == 1, "a slot fired twice"
    assert set(covered) == {(f"job{i:02d}", m) for i in range(25) for m in minutes}, "a slot was lost"
    assert sum(t["fired"] for t in totals) == len(rows)
    ids = Queue(queue_name(ctx.bench.bench_id, "default"), connection=redis_for(ctx.site)).get_job_ids()
    assert len(ids) == len(set(ids)) == len(rows)


@pytest.mark.parametrize("point", POINTS)
def test_tick_killed_at_any_step_neither_doubles_nor_loses_a_slot(bench_factory, db_kind, point):
    events = {"hourly": [{"method": "app1.tasks.ok", "name": f"h{i}"} for i in range(5)]}
    bench, ctx = _site(bench_factory, db_kind, events)
    at = datetime(2026, 1, 5, 11, 0, 1)
    proc = _driver(bench, at, 1, 1, HS_RIG_FAILPOINTS=point)
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
