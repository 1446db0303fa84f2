"""The scheduler loop: outages of Redis, a worker killed mid-run, and the real `schedule` process."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue

from hookscheduler.broker.connection import redis_for
from hookscheduler.broker.keys import heartbeat_pattern, last_tick_key, queue_name
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.schedule.ahead import MIN_WINDOW
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.loop import Scheduler
from hookscheduler.schedule.reconcile import reconcile_active
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from tests.helpers import drain, env_for

pytestmark = pytest.mark.slow
T0 = datetime(2026, 1, 5, 10, 7)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own, to stop and start without disturbing anyone else."""

    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        assert self.proc
        self.proc.kill()
        self.proc.wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def private_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server must be on PATH for this test")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc and server.proc.poll() is None:
        server.stop()


def _migrated(bench_factory, db_kind, events, now=T0, **make):
    bench = bench_factory.make({"app1": events}, db=db_kind, **make)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=now)
    ctx.close()
    return bench


def test_redis_outage_is_survived_reported_once_and_slots_fire_once(bench_factory, db_kind, private_redis, caplog):
    bench = _migrated(bench_factory, db_kind, {"hourly": ["app1.tasks.ok"]}, common={"redis_queue": private_redis.url})
    clock = {"now": datetime(2026, 1, 5, 11, 0, 1)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    sched.cycle()
    ctx = sched.sites["default"].ctx
    conn = redis_for(ctx.site)
    drain(ctx.bench.bench_id, conn)
    private_redis.stop()
    caplog.set_level(logging.ERROR, logger="hookscheduler.schedule.loop")
    for second in range(1, 6):  # the 12:00 slot comes while Redis is down: every attempt fails
        clock["now"] = datetime(2026, 1, 5, 12, 0, second)
        sched.sites["default"].retry_at = None  # do not wait for the back-off in a test
        sched.cycle()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, "an outage is reported once, not on every attempt"
    assert sched.sites["default"].failures == 5
    private_redis.start()
    clock["now"] = datetime(2026, 1, 5, 12, 0, 30)
    sched.sites["default"].retry_at = None
    sched.cycle()
    assert sched.sites["default"].failures == 0
    ctx.database()
    assert [(r.scheduled_for.hour, r.status) for r in ScheduledJobLog.select().order_by(ScheduledJobLog.id)] == [
        (11, "complete"), (12, "queued")]
    ids = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).get_job_ids()
    assert len(ids) == 1
    assert conn.get(last_tick_key(ctx.bench.bench_id, "default")) is not None


def test_redis_down_while_nothing_is_due_backs_off_and_is_reported_once(bench_factory, db_kind, private_redis,
                                                                        caplog):
    """With no slot due, a step does not touch Redis; only the cycle's batch of last ticks meets the outage.
    The step alone must not count as a recovery: the loop retried every 0.5 s and logged the outage and a
    "recovered" on every attempt."""
    bench = _migrated(bench_factory, db_kind, {"hourly": ["app1.tasks.ok"]}, common={"redis_queue": private_redis.url})
    clock = {"now": datetime(2026, 1, 5, 11, 0, 1)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    sched.cycle()
    state = sched.sites["default"]
    drain(state.ctx.bench.bench_id, redis_for(state.ctx.site))
    private_redis.stop()
    caplog.set_level(logging.INFO, logger="hookscheduler.schedule.loop")
    clock["now"] = datetime(2026, 1, 5, 11, 10)
    delays = []
    for _ in range(5):  # each attempt at its retry time, well before the 12:00 slot
        sched.cycle()
        assert state.retry_at is not None, "the failed write backs the site off"
        delays.append((state.retry_at - clock["now"]).total_seconds())
        clock["now"] = state.retry_at
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert state.failures == 5
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert "recovered" not in caplog.text
    private_redis.start()
    sched.cycle()
    assert state.failures == 0 and state.retry_at is None
    assert caplog.text.count("recovered after 5 failed attempt(s)") == 1
    assert redis_for(state.ctx.site).get(last_tick_key(state.ctx.bench.bench_id, "default")) is not None


def test_sleeps_until_the_next_slot_capped_by_the_tick_interval(bench_factory):
    bench = _migrated(bench_factory, "sqlite", {"cron": {"* * * * * */10": ["app1.tasks.ok"]}},
                      common={"scheduler_tick_interval": 30})
    clock = {"now": datetime(2026, 1, 5, 10, 7, 3)}
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    # next slot at :10; the loop wakes when its claim-ahead window opens (schedule/ahead.py), MIN_WINDOW before
    assert sched.cycle() == pytest.approx(7.0 - MIN_WINDOW)
    clock["now"] = datetime(2026, 1, 5, 10, 7, 10, 2000)  # that wake skipped: the slot is stepped at its time
    assert sched.cycle() == pytest.approx(9.998 - MIN_WINDOW)
    assert sched.sites["default"].next_due == datetime(2026, 1, 5, 10, 7, 20)


def test_worker_killed_mid_run_does_not_wedge_its_job(bench_factory, db_kind):
    bench = _migrated(bench_factory, db_kind, {"hourly": [{"method": "app1.tasks.slow", "timeout": 60}]})
    ctx = open_site(str(bench))
    conn = redis_for(ctx.site)
    run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    env = env_for(bench, HS_TEST_SLOW="120")
    worker = subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--url", ctx.site.redis_url, "--burst",
                               queue_name(ctx.bench.bench_id, "default")], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while ScheduledJobLog.get().status != "started":  # wait for the run to start (not for a slot)
        assert time.monotonic() < deadline, "the worker never started the run"
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    started = ScheduledJobLog.get().started_at
    # within timeout + 60 s the run still blocks its job (it might be alive) ...
    r = run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1))
    assert r.skipped == 1 and "still running" in ScheduledJobLog.get(ScheduledJobLog.status == "skipped").reason
    # ... and after it too, while Redis still holds the dead worker's key (its heartbeat TTL): liveness is the
    # worker's own, not a comparison of this clock with the worker's
    later = max(started + timedelta(seconds=60 + 61), datetime(2026, 1, 5, 13, 0, 1))
    assert reconcile_active(ctx, conn, now=later) == 0
    # once Redis expires the key (the dead worker renews it no more), the run is abandoned and the job fires
    # again: no "found in queue" wedge
    name = conn.hget(f"rq:job:{ScheduledJobLog.get().rq_job_id}", "worker_name")
    assert name and conn.delete(b"rq:worker:" + name) == 1
    assert reconcile_active(ctx, conn, now=later) == 1
    dead = ScheduledJobLog.select().where(ScheduledJobLog.scheduled_for == datetime(2026, 1, 5, 11)).get()
    assert dead.status == "failed" and "abandoned" in dead.reason
    job = ScheduledJobType.get()
    ScheduledJobType.update(next_execution=later - timedelta(seconds=1)).where(ScheduledJobType.id == job.id).execute()
    assert run_pass(ctx, conn, now=later).fired == 1


def test_schedule_process_stops_cleanly_on_sigterm(bench_factory):
    bench = _migrated(bench_factory, "sqlite", {"all": ["app1.tasks.ok"]})
    env = env_for(bench)
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "schedule"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    conn = redis.Redis.from_url(bench_factory.redis_url)
    bench_id = bench_factory.bench_ids[-1]
    deadline = time.monotonic() + 20
    while not list(conn.scan_iter(match=heartbeat_pattern(bench_id))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no heartbeat from the schedule process"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not list(conn.scan_iter(match=heartbeat_pattern(bench_id))), "the heartbeat is removed on exit"


def test_schedule_process_survives_a_redis_restart_and_fires_once_after(bench_factory, private_redis):
    """The real `schedule` process, a job due every second, Redis killed and restarted under it."""
    # migrated on the real clock, which the real process runs on: migrated at T0 the first pass would have to
    # account for every second since T0 (months of missed slots) before it fires anything
    bench = _migrated(bench_factory, "sqlite", {"cron": {"* * * * * *": [{"method": "app1.tasks.ok",
                                                                          "overlap": "allow"}]}},
                      now=datetime.utcnow(), common={"redis_queue": private_redis.url, "scheduler_tick_interval": 5})
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "schedule"], env=env_for(bench),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx = open_site(str(bench))
    try:
        def enqueued() -> int:
            ctx.database()
            return ScheduledJobLog.select().where(ScheduledJobLog.enqueued_at.is_null(False)).count()

        deadline = time.monotonic() + 20
        while enqueued() < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the scheduler did not fire"
            time.sleep(0.2)
        private_redis.stop()
        time.sleep(2.5)  # an outage of a few slots (real time: this test is about the real process)
        before = ScheduledJobLog.select().count()
        private_redis.start()
        deadline = time.monotonic() + 30
        while enqueued() < before + 2:
            assert proc.poll() is None, "the scheduler died with Redis"
            assert time.monotonic() < deadline, "the scheduler did not resume after Redis came back"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    error_lines = [line for line in err.splitlines() if " ERROR " in line or " WARNING " in line]
    assert len(error_lines) == 2, err  # the outage is reported once, and the recovery once
    rows = list(ScheduledJobLog.select())
    slots = [r.scheduled_for for r in rows]
    assert len(slots) == len(set(slots)), "a slot fired twice"


def test_announced_change_wakes_the_loop_at_once(bench_factory):
    import threading

    from hookscheduler.schedule.wake import announce_change

    bench = _migrated(bench_factory, "sqlite", {"daily": ["app1.tasks.ok"]}, common={"scheduler_tick_interval": 600})
    sched = Scheduler(bench=str(bench))
    thread = threading.Thread(target=sched.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while sched.cycles < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # let the listener subscribe
        announce_change(sched.sites["default"].ctx.site)
        deadline = time.monotonic() + 5
        while sched.cycles < 2:  # without the wake-up the loop would sleep for 600 s
            assert time.monotonic() < deadline, "the announced change did not wake the loop"
            time.sleep(0.05)
    finally:
        sched.stop()
        thread.join(timeout=10)


def test_a_paused_site_with_held_slots_does_not_spin_and_wakes_at_the_pause_end(bench_factory):
    """Held slots stay due while the scheduler is paused: the loop must not take them for wake-up times (a busy
    loop), and a pause with an end wakes it at that end."""
    from hookscheduler.ops import scheduler as sched_ops

    bench = _migrated(bench_factory, "sqlite", {"cron": {"* * * * * */10": ["app1.tasks.ok"]}},
                      common={"scheduler_tick_interval": 30})
    ctx = open_site(str(bench))
    sched_ops.set_paused(ctx, True, datetime(2026, 1, 5, 10, 7, 45), now=datetime(2026, 1, 5, 10, 7))
    clock = {"now": datetime(2026, 1, 5, 10, 7, 33)}  # three slots held by now
    sched = Scheduler(bench=str(bench), now_fn=lambda: clock["now"])
    assert sched.cycle() == pytest.approx(12.0)  # until the pause's end, not MIN_SLEEP
    sched_ops.set_paused(ctx, True, now=datetime(2026, 1, 5, 10, 7))  # open-ended now
    clock["now"] = datetime(2026, 1, 5, 10, 7, 35)
    sched.refresh_sites()
    assert sched.cycle() == pytest.approx(30.0)  # the tick-interval cap notices a resume
    clock["now"] = datetime(2026, 1, 5, 10, 7, 50)
    sched_ops.set_paused(ctx, False, now=clock["now"])
    sched.refresh_sites()
    sched.cycle()
    [row] = ScheduledJobLog.select()
    assert (row.trigger, row.slots) == ("catch-up", 5)  # 10:07:10 .. 10:07:50: held, then caught up once


def test_a_stop_signal_that_overruns_its_grace_exits_the_process(bench_factory, monkeypatch):
    """A stop signal arms a watchdog: a stop stuck past STOP_GRACE plus the claim-ahead window (services not
    answering, each Redis call retried with back-off) exits outright, as safe as a kill; a stop that ends in time
    disarms it."""
    import threading

    from hookscheduler.schedule import loop as loop_module

    bench = _migrated(bench_factory, "sqlite", {"daily": ["app1.tasks.ok"]})
    monkeypatch.setattr(loop_module, "STOP_GRACE", 0.05)
    exited = threading.Event()
    stuck = Scheduler(bench=str(bench))
    stuck.exit_fn = lambda status: exited.set()
    stuck.refresh_sites()
    stuck._on_signal()  # and its run never ends (stuck in a service call)
    assert exited.wait(10), "a stop past its grace did not exit"
    assert stuck.stop_event.is_set()

    in_time = Scheduler(bench=str(bench))
    ended = threading.Event()
    in_time.exit_fn = lambda status: ended.set()
    in_time.refresh_sites()
    in_time._on_signal()
    in_time.run()  # stopped already: the run ends at once, and disarms the watchdog
    assert in_time.watchdog is not None
    in_time.watchdog.join(10)  # cancelled: it ends without firing (else it fires after its grace)
    assert not ended.is_set()
