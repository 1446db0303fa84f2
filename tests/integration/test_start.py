"""``hookscheduler start``: the development supervisor (scheduler + workers + a private Redis if needed)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from datetime import datetime

import pytest
import redis
from rq import Queue
from rq.job import Job

from hookscheduler import enqueue, get_job_status
from hookscheduler.broker.keys import queue_name
from hookscheduler.config import load_bench, load_sites
from hookscheduler.ops.supervisor import Proc, Supervisor, free_port, hold_start_lock, plan
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog
from tests.helpers import env_for
from tests.integration.bgjobs_support import cli, make_bench, out_rows, pid_alive, site, spawn, wait_for

pytestmark = pytest.mark.usefixtures("fresh_api")  # the API forgets the bench a previous test chose


class Output:
    """Collects a supervisor subprocess's output in a thread, so the test can wait for lines."""

    def __init__(self, proc):
        self.proc, self.lines = proc, []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def has(self, text):
        return any(text in line for line in self.lines)

    def text(self):
        return "\n".join(self.lines)


def _child_pids(lines):
    """The pids the supervisor announced (``started NAME (pid N): ...``)."""
    return [int(line.split("(pid ")[1].split(")")[0]) for line in lines if "| started " in line and "(pid " in line]


def test_plan_runs_the_scheduler_a_worker_and_background_workers_per_custom_queue(bench_factory):
    bench = make_bench(bench_factory, migrate=False,
                       common={"workers": {"bulk": {"timeout": 900, "background_workers": 2}, "mail": {}}})
    b = load_bench(bench)
    procs = plan(b, load_sites(b), python="py")
    assert [(p.name, p.argv[5:]) for p in procs] == [
        ("scheduler", ["schedule", "--verbose"]),
        ("worker_short", ["worker", "--queue", "short"]),
        ("worker_default", ["worker", "--queue", "default"]),
        ("worker_long", ["worker", "--queue", "long"]),
        ("worker_bulk.1", ["worker", "--queue", "bulk"]),
        ("worker_bulk.2", ["worker", "--queue", "bulk"]),
        ("worker_mail", ["worker", "--queue", "mail"]),
    ]
    assert procs[0].argv[:5] == ["py", "-m", "hookscheduler", "--bench", str(b.path)]
    assert next(p.name for p in plan(b, load_sites(b), scheduler=False)) == "worker_short"


def test_start_runs_a_worker_per_queue_and_stops_them_all_on_sigterm(bench_factory):
    bench = make_bench(bench_factory, common={"workers": {"bulk": {"timeout": 60, "background_workers": 2}}})
    proc = spawn(bench, "start", "--no-scheduler")
    out = Output(proc)
    try:
        wait_for(lambda: sum("*** Listening on" in line for line in out.lines) == 5, 60, "five workers", proc)
        job = enqueue("bgapp.tasks.add", a=1, b=1)
        bulk = enqueue("bgapp.tasks.add", queue="bulk", a=2, b=2)
        wait_for(lambda: get_job_status(job.id) == "finished" and get_job_status(bulk.id) == "finished", 30,
                 "the jobs to run", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out.thread.join(5)
    text = out.text()
    assert "Traceback" not in text
    names = {line.split()[1] for line in out.lines if " | " in line}
    assert {"system", "worker_short", "worker_default", "worker_long", "worker_bulk.1", "worker_bulk.2"} <= names
    assert any(line.split()[1] == "worker_bulk.1" and "*** Listening on" in line and ":bulk" in line
               for line in out.lines)
    pids = _child_pids(out.lines)
    assert len(pids) == 5 and not any(pid_alive(p) for p in pids)


def test_start_with_the_scheduler_runs_the_example_end_to_end(bench_factory):
    bench = make_bench(bench_factory, events={"all": ["bgapp.tasks.seen"]}, migrate=False,
                       common={"scheduler_tick_interval": 1})
    assert cli(bench, "migrate").returncode == 0
    proc = spawn(bench, "start")
    out = Output(proc)
    try:
        wait_for(lambda: len(out_rows(bench, "seen")) >= 2, 60, "two runs of the `all` job", proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out.thread.join(5)
    assert any(line.split()[1] == "scheduler" for line in out.lines if " | " in line), out.text()
    site(bench)
    done = list(ScheduledJobLog.select().where(ScheduledJobLog.status == "complete"))
    assert len(done) >= 2 and all(r.worker for r in done)


def test_a_child_that_exits_stops_the_others_and_the_status_says_so(bench_factory):
    bench = make_bench(bench_factory)
    sink = io.StringIO()
    sup = Supervisor([
        Proc("scheduler", [sys.executable, "-c", "print('scheduler says hello', flush=True); raise SystemExit(3)"]),
        Proc("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"]),
    ], env=env_for(bench), out=sink, stop_grace=5)
    assert sup.run() == 3
    text = sink.getvalue()
    assert "scheduler exited with status 3; stopping the others" in text
    assert all(p.poll() is not None for _, p in sup._running)


def test_a_child_killed_by_a_signal_makes_start_exit_128_plus_the_signal_and_say_which(bench_factory):
    bench = make_bench(bench_factory)
    sink = io.StringIO()
    sup = Supervisor([
        Proc("scheduler", [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]),
        Proc("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"]),
    ], env=env_for(bench), out=sink, stop_grace=5)
    assert sup.run() == 128 + signal.SIGKILL
    text = sink.getvalue()
    assert "scheduler killed by signal 9, SIGKILL; stopping the others" in text
    assert "sleeper stopped: killed by signal 15, SIGTERM" in text


def test_an_injected_scheduler_and_a_real_worker_under_one_supervisor(bench_factory):
    """The scheduler process is a parameter: here a stand-in that enqueues one job, as the tick would."""
    bench = make_bench(bench_factory)
    stand_in = ("import hookscheduler, time; job = hookscheduler.enqueue('bgapp.tasks.add', a=5, b=5); "
                "print('enqueued', job.id, flush=True); time.sleep(60)")
    b = load_bench(bench)
    procs = [Proc("scheduler", [sys.executable, "-c", stand_in]), *plan(b, load_sites(b), scheduler=False)]
    sink = io.StringIO()
    sup = Supervisor(procs, env=env_for(bench), out=sink, stop_grace=10)
    watcher = threading.Thread(target=lambda: (wait_for(lambda: out_rows(bench, "add"), 60, "the job"), sup.stop()),
                               daemon=True)
    watcher.start()
    assert sup.run() == 0
    watcher.join(5)
    lines = sink.getvalue().splitlines()
    assert any(line.split()[1] == "scheduler" and "| enqueued " in line for line in lines)
    assert out_rows(bench, "add")[0]["a"] == 5


def test_a_job_killed_by_starts_cold_shutdown_is_recorded_failed_and_the_worker_says_so(bench_factory):
    """Stopping ``start`` while a run goes on: past the grace, the second SIGTERM kills the job; the worker
    records it failed (RQ and the ledger) and exits 1, which ``start`` shows."""
    bench = make_bench(bench_factory, "sqlite", {"hourly": [{"method": "bgapp.tasks.sleeper", "timeout": 60}]})
    ctx, conn = site(bench)
    rq_id = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).sent_ids[0]
    b = load_bench(bench)
    procs = [p for p in plan(b, load_sites(b), scheduler=False) if p.name == "worker_default"]
    sink = io.StringIO()
    sup = Supervisor(procs, env=env_for(bench, HS_TEST_SLOW="300"), out=sink, stop_grace=1.5)
    watcher = threading.Thread(target=lambda: (wait_for(lambda: out_rows(bench, "sleeper"), 60, "the run"),
                                               sup.stop()), daemon=True)
    watcher.start()
    assert sup.run() == 0  # stopped on request
    watcher.join(5)
    text = sink.getvalue()
    assert "still running after the grace period: cold shutdown" in text
    assert "worker_default stopped: exited with status 1" in text, text
    assert Job.fetch(rq_id, connection=conn).get_status() == "failed"
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and row.reason == "killed by the worker's cold shutdown (second SIGTERM)"


def test_start_brings_a_private_redis_when_none_answers(bench_factory):
    assert shutil.which("redis-server"), "start's private Redis needs redis-server on PATH (Debian: redis-server)"
    port = free_port()
    bench = make_bench(bench_factory, common={"redis_queue": f"redis://127.0.0.1:{port}/0"})
    proc = spawn(bench, "start", "--no-scheduler")
    out = Output(proc)
    private = None
    try:
        line = wait_for(lambda: next((x for x in out.lines if "started a private redis-server at" in x), None), 30,
                        "the private redis", proc)
        shown = line.split("started a private redis-server at ")[1].split()[0]
        data = bench / ".hookscheduler" / "redis"
        url = (data / "url").read_text().strip()  # where the message says to find it
        password = redis.connection.parse_url(url)["password"]
        assert len(password) >= 24 and password not in "\n".join(out.lines)  # never printed
        assert shown == url.replace(password, "***") and f"$(cat {data / 'url'})" in line
        assert shown != f"redis://:***@127.0.0.1:{port}/0"
        for f in (data / "url", data / "redis.conf"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        with pytest.raises(redis.exceptions.AuthenticationError):  # NOAUTH without the password
            redis.Redis.from_url(url.replace(f":{password}@", "")).ping()
        wait_for(lambda: out.has("*** Listening on"), 60, "the worker", proc)
        private = redis.Redis.from_url(url)
        q = Queue(queue_name(bench_factory.bench_ids[-1], "default"), connection=private)
        job = q.enqueue("bgapp.tasks.add", a=7, b=0)
        wait_for(lambda: job.get_status() == "finished", 30, "the job on the private redis", proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with pytest.raises(redis.exceptions.ConnectionError):
        private.ping()  # stopped with the supervisor


def test_start_without_redis_or_redis_server_says_how_to_get_redis(bench_factory, tmp_path):
    port = free_port()
    bench = make_bench(bench_factory, common={"redis_queue": f"redis://user:secret@127.0.0.1:{port}/0"})
    empty = tmp_path / "empty-path"
    empty.mkdir()
    done = cli(bench, "start", PATH=str(empty))
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message.startswith(f"Error: cannot reach Redis at redis://user:***@127.0.0.1:{port}/0")
    assert "redis-server is not on PATH" in message and "apt install redis-server" in message
    assert "secret" not in done.stdout + done.stderr and len(message.splitlines()) == 1


def test_a_second_start_on_the_bench_is_refused_naming_the_holder_and_a_killed_one_leaves_no_lock(bench_factory):
    """One start per bench: while a process holds the bench's lock, ``start`` refuses in one line naming its PID,
    before it looks for Redis (no second private server in the bench's folder, no children). The lock is the
    OS's: a holder killed outright releases it."""
    port = free_port()  # nothing answers there: a start that got past the lock would start a private Redis
    bench = make_bench(bench_factory, common={"redis_queue": f"redis://127.0.0.1:{port}/0"})
    folder = bench / ".hookscheduler"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from hookscheduler.ops.supervisor import hold_start_lock; "
                               "hold_start_lock(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)",
         str(folder)], env=env_for(bench), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = cli(bench, "start")
        assert done.returncode == 1, done.stdout + done.stderr
        message = done.stderr.strip()
        assert len(message.splitlines()) == 1 and f"already running for this bench (pid {holder.pid}," in message
        assert "started" not in done.stdout and not (folder / "redis").exists()
    finally:
        holder.kill()
        holder.wait()
    os.close(hold_start_lock(folder))  # SIGKILLed: its lock went with it
    assert (folder / ".gitignore").exists()


def test_job_status_command(bench_factory):
    bench = make_bench(bench_factory)
    job = enqueue("bgapp.tasks.fail_with", job_id="report", message="broken")
    queued = cli(bench, "job-status", "report")
    assert queued.returncode == 0 and queued.stdout.startswith(f"{job.id}: queued")
    assert cli(bench, "worker", "--burst").returncode == 0
    failed = json.loads(cli(bench, "job-status", job.id, "--format", "json").stdout)
    assert (failed["status"], failed["error"], failed["queue"]) == ("failed", "ValueError: broken", "default")
    missing = cli(bench, "job-status", "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("Error: job 'nope' not found on site default")


def test_job_status_of_a_scheduled_run_shows_its_log_row(bench_factory):
    from datetime import datetime

    from hookscheduler.schedule.claim import run_pass

    bench = make_bench(bench_factory, events={"hourly": ["bgapp.tasks.seen"]})
    ctx, conn = site(bench)
    rq_id = run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).sent_ids[0]
    assert cli(bench, "worker", "--burst").returncode == 0
    conn.delete(f"rq:job:{rq_id}")  # RQ forgot it (results expire); the ledger has not
    shown = cli(bench, "job-status", rq_id)
    assert shown.returncode == 0
    assert shown.stdout.splitlines() == [f"{rq_id}: complete",
                                         "  log: complete (schedule run of bgapp.tasks.seen for 2026-01-05T11:00:00Z)"]
