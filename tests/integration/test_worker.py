"""``hookscheduler worker`` / ``worker-pool`` as real subprocesses: queues, strategies, timeouts, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine
from rq import Queue
from rq.job import Job
from rq.worker import Worker

from hookscheduler import enqueue
from hookscheduler.background.events import listen, subscribe
from hookscheduler.broker.keys import queue_name
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.reconcile import reconcile_active
from hookscheduler.store import store_for
from hookscheduler.store.models import ScheduledJobLog
from hookscheduler.worker import runner
from hookscheduler.worker.process import HookWorker
from tests.helpers import env_for
from tests.integration.bgjobs_support import cli, make_bench, out_rows, pid_alive, site, spawn, wait_for

AFTER_SLOT = datetime(2026, 1, 5, 11, 0, 1)


pytestmark = pytest.mark.usefixtures("fresh_api")  # the API forgets the bench a previous test chose


def _order(bench):
    return [r["a"] for r in out_rows(bench, "add")]


def _fill(spec):
    """Enqueue add(a=label) on each queue, in the order given."""
    for queue, label in spec:
        enqueue("bgapp.tasks.add", queue=queue, a=label, b=0)


def test_burst_worker_runs_scheduled_and_background_jobs_then_quits(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, {"hourly": ["bgapp.tasks.seen"]})
    ctx, conn = site(bench)
    run_pass(ctx, conn, now=AFTER_SLOT)
    job = enqueue("bgapp.tasks.add", a=1, b=2)
    done = cli(bench, "worker", "--burst")
    assert done.returncode == 0, done.stderr
    assert "quitting" in done.stderr and "Traceback" not in done.stderr
    assert job.return_value(refresh=True) == 3
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "complete" and row.worker in done.stderr


def test_default_strategy_follows_queue_priority(bench_factory):
    bench = make_bench(bench_factory)
    _fill([("long", "L1"), ("default", "D1"), ("short", "S1"), ("long", "L2"), ("short", "S2")])
    assert cli(bench, "worker", "--burst", "--quiet").returncode == 0
    assert _order(bench) == ["S1", "S2", "D1", "L1", "L2"]


def test_round_robin_strategy_takes_turns(bench_factory):
    bench = make_bench(bench_factory)
    _fill([("short", "S1"), ("short", "S2"), ("default", "D1"), ("default", "D2"), ("long", "L1")])
    assert cli(bench, "worker", "--burst", "--strategy", "round_robin").returncode == 0
    assert _order(bench) == ["S1", "D1", "L1", "S2", "D2"]


def test_random_strategy_runs_everything(bench_factory):
    bench = make_bench(bench_factory)
    labels = [(q, f"{q}{i}") for i in range(4) for q in ("short", "default", "long")]
    _fill(labels)
    assert cli(bench, "worker", "--burst", "--strategy", "random").returncode == 0
    assert sorted(_order(bench)) == sorted(label for _, label in labels)


def test_queue_option_chooses_queues_and_their_order(bench_factory):
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    _fill([("short", "S1"), ("default", "D1"), ("long", "L1")])
    assert cli(bench, "worker", "--burst", "--queue", "long,short").returncode == 0
    assert _order(bench) == ["L1", "S1"]
    assert Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).count == 1


def test_unknown_queue_is_refused_with_the_valid_ones(bench_factory):
    bench = make_bench(bench_factory, common={"workers": {"bulk": {"timeout": 60}}})
    done = cli(bench, "worker", "--burst", "--queue", "short,nope")
    assert done.returncode == 2
    assert done.stderr.strip() == ("Error: unknown queue 'nope'; valid queues: short, default, long, bulk (custom "
                                   "queues are declared under 'workers' in common_site_config.json)")


def test_custom_queues_from_config_are_served_last(bench_factory):
    bench = make_bench(bench_factory, common={"workers": {"bulk": {"timeout": 60}, "mail": {"timeout": 30}}})
    _fill([("mail", "M1"), ("bulk", "B1"), ("long", "L1")])
    done = cli(bench, "worker", "--burst")
    assert done.returncode == 0
    assert ":short, " in done.stderr and ":long, " in done.stderr and ":bulk, " in done.stderr
    assert _order(bench) == ["L1", "B1", "M1"]


def test_quiet_hides_the_per_job_lines(bench_factory):
    bench = make_bench(bench_factory)
    _fill([("default", "D1")])
    done = cli(bench, "worker", "--burst", "--quiet")
    assert done.returncode == 0 and "Job OK" not in done.stderr and _order(bench) == ["D1"]


def test_the_worker_exports_the_bench_for_its_horses(bench_factory, tmp_path):
    bench = make_bench(bench_factory, events={"hourly": ["bgapp.tasks.seen"]})
    ctx, conn = site(bench)
    run_pass(ctx, conn, now=AFTER_SLOT)
    env = env_for(bench)
    del env["HOOKSCHEDULER_BENCH"]
    done = subprocess.run([sys.executable, "-m", "hookscheduler", "--bench", str(bench), "worker", "--burst"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ctx.database()
    assert ScheduledJobLog.get().status == "complete"


def test_a_run_past_its_timeout_is_killed_and_logged_failed(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, {"hourly": [{"method": "bgapp.tasks.sleeper", "timeout": 1}]})
    ctx, conn = site(bench)
    rq_id = run_pass(ctx, conn, now=AFTER_SLOT).sent_ids[0]
    background = enqueue("bgapp.tasks.sleeper", timeout=1)
    done = cli(bench, "worker", "--burst", HS_TEST_SLOW="30")
    assert done.returncode == 0
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason.startswith("timed out") and "JobTimeoutException" in row.traceback
    assert row.duration < 10
    failed = Queue(queue_name(ctx.bench.bench_id, "default"), connection=conn).failed_job_registry
    assert {rq_id, background.id} <= set(failed.get_job_ids())
    assert "JobTimeoutException" in Job.fetch(background.id, connection=conn).latest_result().exc_string


def test_a_worker_killed_mid_run_leaves_a_row_that_says_so(bench_factory, db_kind):
    """SIGKILL of the worker and its horse: the row is not ``started`` for ever. Liveness is the worker's own
    key in Redis (no clocks compared): while it lives the run is not abandoned, however late; once Redis expired
    it (RQ's worker TTL, minutes: deleted here instead of waited for) and timeout + 60 s passed, the sweep
    declares the run abandoned."""
    bench = make_bench(bench_factory, db_kind, {"hourly": [{"method": "bgapp.tasks.sleeper", "timeout": 60}]})
    ctx, conn = site(bench)
    run_pass(ctx, conn, now=AFTER_SLOT)
    worker = spawn(bench, "worker", "--burst", HS_TEST_SLOW="300")
    try:
        [seen] = wait_for(lambda: out_rows(bench, "sleeper"), 30, "the run to start", worker)
        wait_for(lambda: ScheduledJobLog.get().status == "started", 10, "the started row")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker ...
        os.kill(seen["pid"], signal.SIGKILL)  # ... and its horse (RQ puts it in its own process group)
        worker.wait()
    wait_for(lambda: not pid_alive(seen["pid"]), 10, "the horse to die")
    row = ScheduledJobLog.get()
    assert row.status == "started"
    assert reconcile_active(ctx, conn, now=row.started_at + timedelta(seconds=60)) == 0  # might still be alive
    # the dead worker's key outlives it until its TTL: past the timeout, still not abandoned
    assert reconcile_active(ctx, conn, now=row.started_at + timedelta(seconds=60 + 61)) == 0
    worker_name = conn.hget(f"rq:job:{row.rq_job_id}", "worker_name").decode()
    assert conn.delete(f"rq:worker:{worker_name}") == 1  # what Redis does when the TTL runs out
    assert reconcile_active(ctx, conn, now=row.started_at + timedelta(seconds=60 + 61)) == 1
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason.startswith("abandoned") and row.finished_at is not None


def test_a_killed_horse_is_recorded_by_its_worker_in_rq_the_ledger_and_announced(bench_factory, db_kind):
    """The worker sees its horse die: RQ says failed, the run's row says why, when and after how long (no need
    for the sweep to guess later), and the ``failed`` event names the same worker as ``started``."""
    bench = make_bench(bench_factory, db_kind, {"hourly": [{"method": "bgapp.tasks.sleeper", "timeout": 60}]})
    ctx, conn = site(bench)
    rq_id = run_pass(ctx, conn, now=AFTER_SLOT).sent_ids[0]
    pubsub = subscribe(conn, ctx.bench.bench_id, ctx.name)
    worker = spawn(bench, "worker", "--burst", HS_TEST_SLOW="300")
    try:
        [seen] = wait_for(lambda: out_rows(bench, "sleeper"), 30, "the run to start", worker)
        os.kill(seen["pid"], signal.SIGKILL)  # the horse only: the worker sees it die
        killed_at = datetime.now(timezone.utc).replace(tzinfo=None)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert Job.fetch(rq_id, connection=conn).get_status() == "failed"
    events = list(listen(pubsub, timeout=2))
    pubsub.close()
    assert [e["event"] for e in events] == ["started", "failed"]
    assert events[0]["worker"] == events[1]["worker"]
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason == "work horse died (killed by signal 9, SIGKILL)"
    assert row.duration is not None and abs((row.finished_at - killed_at).total_seconds()) < 5
    assert reconcile_active(ctx, conn, now=AFTER_SLOT + timedelta(minutes=1)) == 0  # nothing left to settle


def test_a_cold_shutdown_records_the_job_it_kills_failed_and_exits_non_zero(bench_factory, db_kind):
    """SIGTERM, then SIGTERM again while a run goes on: RQ kills the horse. The worker records the run failed in
    RQ (its failed registry, saying why), in the ledger and to watchers, before it exits with status 1; its
    registration says it died, so the sweep finds nothing to settle and the run's next slot is not held up."""
    bench = make_bench(bench_factory, db_kind, {"hourly": [{"method": "bgapp.tasks.sleeper", "timeout": 60}]})
    ctx, conn = site(bench)
    rq_id = run_pass(ctx, conn, now=AFTER_SLOT).sent_ids[0]
    pubsub = subscribe(conn, ctx.bench.bench_id, ctx.name)
    worker = spawn(bench, "worker", HS_TEST_SLOW="300")
    try:
        [seen] = wait_for(lambda: out_rows(bench, "sleeper"), 30, "the run to start", worker)
        os.kill(worker.pid, signal.SIGTERM)  # warm: the worker waits for the job
        warm = time.monotonic()

        def cold() -> bool:  # RQ ignores a second signal within a second of the first (a pool sends two)
            if worker.poll() is None and time.monotonic() - warm > 1.2:
                os.kill(worker.pid, signal.SIGTERM)
            return worker.poll() is not None

        wait_for(cold, 30, "the cold shutdown")
        out = worker.stdout.read() if worker.stdout else ""
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert worker.returncode == 1, out
    assert "killed by the worker's cold shutdown (second SIGTERM)" in out
    assert not pid_alive(seen["pid"])
    job = Job.fetch(rq_id, connection=conn)
    assert job.get_status() == "failed"
    assert rq_id in Queue(job.origin, connection=conn).failed_job_registry.get_job_ids()
    assert "cold shutdown" in job.latest_result().exc_string
    worker_key = f"rq:worker:{conn.hget(f'rq:job:{rq_id}', 'worker_name').decode()}"
    assert not conn.exists(worker_key) or conn.hexists(worker_key, "death")
    events = list(listen(pubsub, timeout=2))
    pubsub.close()
    assert [e["event"] for e in events] == ["started", "failed"]
    assert events[1]["error"] == "killed by the worker's cold shutdown (second SIGTERM)"
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason == "killed by the worker's cold shutdown (second SIGTERM)"
    assert row.duration is not None and row.finished_at is not None
    assert reconcile_active(ctx, conn, now=AFTER_SLOT + timedelta(minutes=1)) == 0  # nothing left to settle


def test_a_horse_that_exits_or_is_killed_calls_on_failure_and_says_why_in_the_ledger(bench_factory, db_kind):
    bench = make_bench(bench_factory, db_kind, {"hourly": ["bgapp.tasks.exit_now"]})
    ctx, conn = site(bench)
    run_pass(ctx, conn, now=AFTER_SLOT)
    killed = enqueue("bgapp.tasks.kill_self", on_failure="bgapp.tasks.on_fail")
    exited = enqueue("bgapp.tasks.exit_now", code=5, on_failure="bgapp.tasks.on_fail")
    done = cli(bench, "worker", "--burst", timeout=120)
    assert done.returncode == 0, done.stderr
    calls = {r["job_id"]: r["error"] for r in out_rows(bench, "on_failure")}
    assert calls == {killed.id: "work horse died (killed by signal 9, SIGKILL)",
                     exited.id: "work horse died (exit code 5)"}
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason == "work horse died (exit code 1)" and row.duration is not None


def test_a_job_that_catches_its_timeout_and_returns_is_failed_as_timed_out(bench_factory, db_kind):
    """RQ's timeout is an exception raised into the job: one that swallows it and returns is still past its
    timeout, and is recorded failed: in the ledger, in RQ and to its on_failure callback."""
    bench = make_bench(bench_factory, db_kind,
                       {"hourly": [{"method": "bgapp.tasks.swallow_timeout", "timeout": 1}]})
    ctx, conn = site(bench)
    rq_id = run_pass(ctx, conn, now=AFTER_SLOT).sent_ids[0]
    background = enqueue("bgapp.tasks.swallow_timeout", timeout=1, on_failure="bgapp.tasks.on_fail")
    done = cli(bench, "worker", "--burst", HS_TEST_SLOW="30")
    assert done.returncode == 0, done.stderr
    assert [r["error"] for r in out_rows(bench, "caught")] == ["JobTimeoutException"] * 2
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason.startswith("timed out: ")
    assert row.reason.endswith("(the job caught the timeout and returned)") and row.duration < 10
    assert Job.fetch(rq_id, connection=conn).get_status() == "failed"
    assert Job.fetch(background.id, connection=conn).get_status() == "failed"
    [call] = out_rows(bench, "on_failure")
    assert call["job_id"] == background.id and "caught the timeout" in call["error"]


def test_a_horse_killed_past_its_timeout_is_recorded_timed_out(bench_factory, db_kind):
    """RQ's monitor kills a horse that ran on past its timeout plus a minute (the job caught the timeout and
    went on): the worker records the run timed out. The kill is the monitor's own, so its outcome is handed to
    the worker as RQ hands it (no wait status) rather than waited for."""
    bench = make_bench(bench_factory, db_kind, {"hourly": [{"method": "bgapp.tasks.sleeper", "timeout": 2}]})
    ctx, conn = site(bench)
    rq_id = run_pass(ctx, conn, now=AFTER_SLOT).sent_ids[0]
    job = Job.fetch(rq_id, connection=conn)
    ctx.database()
    store_for(ctx.database()).record_started(rq_id, "w", AFTER_SLOT)
    worker = HookWorker([queue_name(ctx.bench.bench_id, "default")], connection=conn)
    died = AFTER_SLOT + timedelta(seconds=92)
    with time_machine.travel(died, tick=False):
        worker.handle_work_horse_killed(job, 0, None, None)
    assert worker._death is not None
    runner.record_death(*worker._death)
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason.startswith("timed out: work horse killed by the worker past")
    assert row.finished_at == died and row.duration == 92


def test_worker_pool_runs_n_jobs_on_n_workers_at_once(bench_factory):
    bench = make_bench(bench_factory)
    key = f"hs-barrier-{uuid.uuid4().hex}"
    for _ in range(3):
        enqueue("bgapp.tasks.barrier")
    done = cli(bench, "worker-pool", "--num-workers", "3", "--burst", timeout=120,
               HS_TEST_REDIS=bench_factory.redis_url, HS_TEST_BARRIER_KEY=key, HS_TEST_BARRIER_N="3")
    assert done.returncode == 0, done.stderr
    rows = out_rows(bench, "barrier")
    assert len(rows) == 3 and len({r["worker"] for r in rows}) == 3 and len({r["pid"] for r in rows}) == 3


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux's /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_worker_pool_workers_run_no_rq_scheduler(bench_factory, redis_client):
    """hookscheduler schedules itself: a pool worker forks no RQ scheduler (a process that outlived its worker,
    holding RQ's scheduler lock) and takes no scheduler lock, as ``worker`` does not."""
    bench = make_bench(bench_factory)
    ctx, conn = site(bench)
    queues = [queue_name(ctx.bench.bench_id, q) for q in ("short", "default", "long")]
    pool = spawn(bench, "worker-pool", "--num-workers", "1")
    try:
        [worker] = wait_for(lambda: [w for w in Worker.all(queue=Queue(queues[0], connection=conn))
                                     if w.get_state() == "idle"], 60, "an idle pool worker", pool)
        assert not [q for q in queues if conn.exists(f"rq:scheduler-lock:{q}")]
        assert _children(worker.pid) == []  # no scheduler process (and no horse: it is idle)
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        try:
            pool.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait()


def test_worker_pool_refuses_an_unknown_queue(bench_factory):
    bench = make_bench(bench_factory)
    done = cli(bench, "worker-pool", "--queue", "nope", "--burst")
    assert done.returncode == 2 and "valid queues: short, default, long" in done.stderr


def test_rq_username_and_password(bench_factory, redis_client):
    bench = make_bench(bench_factory)
    user, password = f"hs_test_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    redis_client.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                             commands=["+@all"])
    try:
        _fill([("default", "D1")])
        wrong = cli(bench, "worker", "--burst", "--rq-username", user, "--rq-password", "wrong")
        assert wrong.returncode == 1 and "refused the credentials" in wrong.stderr and "wrong" not in wrong.stderr
        right = cli(bench, "worker", "--burst", "-u", user, "-p", password)
        assert right.returncode == 0, right.stderr
        assert _order(bench) == ["D1"]
    finally:
        redis_client.acl_deluser(user)


def test_worker_stops_its_command_listener_promptly(redis_client):
    """The exit must not wait out RQ's 60-second listener wait (redis-py 8 joins the thread without a bound).

    The hang needs the unsubscribe reply to reach the thread before its stop flag is cleared; this provokes
    exactly that order, which a plain RQ worker then waits about a minute out."""
    import threading
    import time

    from hookscheduler.worker.process import HookWorker

    worker = HookWorker([Queue(f"hs-listener-{uuid.uuid4().hex[:8]}", connection=redis_client)],
                        connection=redis_client, name=f"hs-listener-{uuid.uuid4().hex[:8]}")
    worker.subscribe()
    for _ in range(200):
        if worker.pubsub.subscribed:
            break
        time.sleep(0.01)
    worker.pubsub.unsubscribe()  # the thread reads the reply and goes back to waiting, flag still set
    for _ in range(200):
        if not worker.pubsub.subscribed:
            break
        time.sleep(0.01)
    stopper = threading.Thread(target=worker.unsubscribe, daemon=True)
    stopper.start()
    stopper.join(timeout=15)
    assert not stopper.is_alive(), "the worker's command listener did not stop"


def test_worker_stops_its_command_listener_without_waiting_for_its_wake_up(redis_client):
    """The listener's flag is cleared before the unsubscribe is sent, so the reply that wakes the thread finds it
    stopping: a burst worker's exit does not wait out the listener's one-second wait (the order RQ uses lost that
    race in most exits of a worker that found its queues empty)."""
    import time

    from hookscheduler.worker.process import LISTEN_WAKE, HookWorker

    slow = []
    for _ in range(5):
        worker = HookWorker([Queue(f"hs-listener-{uuid.uuid4().hex[:8]}", connection=redis_client)],
                            connection=redis_client, name=f"hs-listener-{uuid.uuid4().hex[:8]}")
        worker.subscribe()  # and stop at once, as a burst worker on empty queues does
        started = time.monotonic()
        worker.unsubscribe()
        took = time.monotonic() - started
        assert not worker.pubsub_thread.is_alive()
        if took >= LISTEN_WAKE / 2:
            slow.append(round(took, 3))
    assert not slow, f"unsubscribe waited for the listener's wake-up: {slow} s"


def test_worker_stop_survives_a_listener_that_closed_its_connection_first(redis_client, monkeypatch):
    """Between clearing the listener's flag and sending the unsubscribe, the listener can wake on its own (its
    subscribe reply, a message), see the flag and close the connection: the unsubscribe then meets a closed
    socket (a broken pipe). The worker's stop goes on: the listener is gone and the pub/sub closed."""
    import redis as redis_lib

    from hookscheduler.worker.process import HookWorker

    worker = HookWorker([Queue(f"hs-listener-{uuid.uuid4().hex[:8]}", connection=redis_client)],
                        connection=redis_client, name=f"hs-listener-{uuid.uuid4().hex[:8]}")
    worker.subscribe()
    thread = worker.pubsub_thread
    pubsub = worker.pubsub

    def closed_under_us(*args, **kwargs):
        thread.stop()  # the listener sees the flag and closes its connection, as when it wakes on its own
        raise redis_lib.ConnectionError("Error 32 while writing to socket. Broken pipe.")

    monkeypatch.setattr(pubsub, "unsubscribe", closed_under_us)
    worker.unsubscribe()  # must not raise
    assert not thread.is_alive()
    assert pubsub.connection is None  # closed


def test_the_command_listener_backs_off_from_a_lost_redis_and_says_so_once(redis_client, monkeypatch, caplog):
    """RQ's listener handler logged an ERROR and slept 2 s at every attempt (15 lines in 20 s of outage); ours
    says it once per outage and waits 1, 2, 4 ... up to a minute. Anything but a lost connection ends it."""
    import redis as redis_lib

    from hookscheduler.worker import process

    worker = HookWorker([Queue(f"hs-backoff-{uuid.uuid4().hex[:8]}", connection=redis_client)],
                        connection=redis_client, name=f"hs-backoff-{uuid.uuid4().hex[:8]}")
    clock = [1000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(process.time, "sleep", sleep)
    monkeypatch.setattr(process.time, "monotonic", lambda: clock[0])
    lost = redis_lib.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6391. Connection refused.")
    with caplog.at_level("DEBUG", logger=worker.log.name):
        for _ in range(9):
            worker._pubsub_exception_handler(lost, None, None)
        clock[0] += 600  # Redis came back; a new outage ten minutes later is said again
        worker._pubsub_exception_handler(lost, None, None)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60, 1]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and "lost Redis" in errors[0].getMessage()
    with pytest.raises(ValueError):
        worker._pubsub_exception_handler(ValueError("not a connection problem"), None, None)
