"""`show-pending-jobs`, `purge-jobs`, `ready-for-migration`, `workers list`, `rq-jobs ...` on real Redis."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rq import Queue, Worker
from rq.job import Job

from hookscheduler.broker.keys import queue_name, site_prefix
from hookscheduler.schedule.claim import run_pass
from hookscheduler.schedule.send import rq_queue
from hookscheduler.store.models import ScheduledJobLog, utcnow
from tests.helpers import drain, env_for
from tests.integration.opcli_support import assert_one_line_error, migrated, run, sub

APPS = {"app1": {
    "hourly": ["app1.tasks.ok", {"method": "app1.tasks.boom", "name": "hourly-boom"}],
    "daily": ["app1.tasks.other"],
    "daily_long": [{"method": "app1.tasks.ok", "name": "nightly-ok"}],
}}


def _ledger_statuses():
    return {r.job_name: r.status for r in ScheduledJobLog.select()}


def test_pending_counts_are_per_site_and_per_queue(bench_factory, redis_client):
    bench = bench_factory.make(APPS)
    ctx, conn = migrated(bench, utcnow() - timedelta(minutes=1))
    bench_id = ctx.bench.bench_id
    run(bench, "trigger-scheduler-event", "hourly-boom")
    drain(bench_id, conn)  # -> one failed job
    run(bench, "trigger-scheduler-event", "daily")  # -> queued on default and long
    prefix = site_prefix(bench_id, ctx.name)
    q = Queue(queue_name(bench_id, "default"), connection=redis_client)
    q.enqueue_in(timedelta(hours=1), "app1.tasks.ok", job_id=prefix + "later")
    q.enqueue("app1.tasks.ok", job_id=f"{bench_id}_othersite_x")  # another site's job is not counted
    r = run(bench, "show-pending-jobs", "--format", "json")
    assert r.code == 0, r.err
    assert r.json() == {
        "queues": {"short": {"queued": 0, "started": 0, "failed": 0, "scheduled": 0},
                   "default": {"queued": 1, "started": 0, "failed": 1, "scheduled": 1},
                   "long": {"queued": 1, "started": 0, "failed": 0, "scheduled": 0}},
        "total": {"queued": 2, "started": 0, "failed": 1, "scheduled": 1},
    }
    lines = run(bench, "show-pending-jobs").out.splitlines()
    assert lines[0] == "-----Pending Jobs----- (site default)"
    assert lines[1].split() == ["QUEUE", "QUEUED", "STARTED", "FAILED", "SCHEDULED"]
    assert lines[-1].split() == ["total", "2", "0", "1", "1"]


def test_purge_jobs_skips_the_runs_in_the_ledger(bench_factory, db_kind, redis_client):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    bench_id = ctx.bench.bench_id
    foreign = Queue(queue_name(bench_id, "default"), connection=redis_client).enqueue(
        "app1.tasks.ok", job_id=f"{bench_id}_othersite_y")
    run_pass(ctx, conn, now=datetime(2026, 1, 6, 0, 0, 1))  # hourly x2, daily, daily_long: 4 runs
    ctx.database()
    ids = [r.rq_job_id for r in ScheduledJobLog.select()]
    assert len(ids) == 4
    r = run(bench, "purge-jobs", "--event", "daily")
    assert r.code == 0 and r.out.startswith("Purged 2 jobs (default: 1, long: 1)"), r.out + r.err
    ctx.database()
    assert _ledger_statuses() == {"app1.tasks.ok": "queued", "hourly-boom": "queued", "app1.tasks.other": "skipped",
                                  "nightly-ok": "skipped"}
    assert "purge-jobs --event daily" in ScheduledJobLog.get(ScheduledJobLog.job_name == "nightly-ok").reason
    assert run(bench, "purge-jobs", "--queue", "long").out.startswith("Purged 0 jobs")
    r = run(bench, "purge-jobs")
    assert r.out.startswith("Purged 2 jobs (default: 2)")
    ctx.database()
    assert set(_ledger_statuses().values()) == {"skipped"}
    # the job hashes are gone, the other site's job is untouched, and the tick does not re-send purged runs
    assert not any(Job.exists(i, connection=redis_client) for i in ids)
    assert rq_queue(conn, bench_id, "default").get_job_ids() == [foreign.id]
    assert run_pass(ctx, conn, now=datetime(2026, 1, 6, 0, 0, 30)).resent == 0
    assert run(bench, "ready-for-migration").code == 0  # another site's job does not hold this site back


def test_purge_is_fast_for_a_large_queue(bench_factory, redis_client):
    bench = bench_factory.make(APPS)
    ctx, conn = migrated(bench, utcnow())
    bench_id = ctx.bench.bench_id
    prefix = site_prefix(bench_id, ctx.name)
    key = rq_queue(conn, bench_id, "default").key
    n = 20_000
    with redis_client.pipeline(transaction=False) as pipe:
        for i in range(n):
            jid = f"{prefix}bulk-{i}"
            pipe.hset(Job.key_for(jid), mapping={"status": "queued", "origin": queue_name(bench_id, "default")})
            pipe.rpush(key, jid)
        pipe.execute()
    started = time.monotonic()
    r = run(bench, "purge-jobs", "--queue", "default")
    assert r.out.startswith(f"Purged {n} jobs"), r.out + r.err
    assert time.monotonic() - started < 10
    assert redis_client.llen(key) == 0 and not redis_client.exists(Job.key_for(f"{prefix}bulk-7"))


def test_ready_for_migration(bench_factory):
    bench = bench_factory.make(APPS)
    ctx, conn = migrated(bench, utcnow() - timedelta(minutes=1))
    r = run(bench, "ready-for-migration")
    assert (r.code, r.out) == (0, "READY for migration: site default does not have any background jobs\n")
    run(bench, "jobs", "run", "app1.tasks.ok")
    r = sub(bench, "ready-for-migration")
    assert r.code == 1 and r.out.startswith("NOT READY for migration: site default has pending background jobs")
    assert "1 queued" in r.out
    drain(ctx.bench.bench_id, conn)
    assert run(bench, "ready-for-migration").code == 0


def test_ready_for_migration_checks_every_site_without_site_or_with_all(bench_factory):
    bench = bench_factory.make(APPS, sites={"a.example": {}, "b.example": {}})
    for site in ("a.example", "b.example"):
        migrated(bench, utcnow() - timedelta(minutes=1), site)
    for args in ((), ("--site", "all")):
        r = run(bench, *args, "ready-for-migration")
        assert r.code == 0 and r.out.count("READY for migration: site") == 2, r
    run(bench, "jobs", "run", "app1.tasks.ok", site="b.example")
    for args in ((), ("--site", "all")):
        r = run(bench, *args, "ready-for-migration")
        assert r.code == 1, r
        assert "READY for migration: site a.example" in r.out
        assert "NOT READY for migration: site b.example has pending background jobs (1 queued" in r.out
    assert run(bench, "ready-for-migration", site="a.example").code == 0  # one site: only its jobs count
    assert run(bench, "ready-for-migration", site="nosuch").code == 2  # a usage error, not "not ready"


def test_the_documented_wait_loop_stops_on_a_usage_error(bench_factory):
    """The README's loop waits while the command exits 1 and stops on anything else (0: ready; 2: a typo)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    loop = re.search(r"^(while .*ready-for-migration.*)$", readme, re.M)
    assert loop, "the README's wait loop"
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow() - timedelta(minutes=1))
    script = loop.group(1).split("   #")[0].replace("--site mysite", "--site nosuch").replace("sleep 10", "exit 99")
    script = script.replace("hookscheduler", f"{sys.executable} -m hookscheduler")
    done = subprocess.run(["bash", "-c", script + "; echo status=$?"], env=env_for(bench), capture_output=True,
                          text=True, timeout=120)
    assert "status=1" in done.stdout, done.stdout + done.stderr  # ended at once, failing (99: it looped)
    assert "not found" in done.stderr


def test_workers_list(bench_factory, redis_client):
    bench = bench_factory.make(APPS)
    ctx, _ = migrated(bench, utcnow())
    bench_id = ctx.bench.bench_id
    mine = Worker([Queue(queue_name(bench_id, q), connection=redis_client) for q in ("default", "long")],
                  connection=redis_client, name=f"{bench_id}-w1")
    other = Worker([Queue("someone-else:default", connection=redis_client)], connection=redis_client,
                   name=f"{bench_id}-foreign")
    mine.register_birth()
    other.register_birth()
    try:
        redis_client.hset(mine.key, mapping={"total_working_time": 30, "successful_job_count": 7,
                                             "birth": (utcnow() - timedelta(seconds=120)).strftime(
                                                 "%Y-%m-%dT%H:%M:%S.%fZ")})
        r = run(bench, "workers", "list", "--format", "json")
        assert r.code == 0, r.err
        [w] = r.json()
        assert w["worker_name"] == f"{bench_id}-w1" and w["queue_type"] == "default, long"
        assert w["successful_job_count"] == 7 and 24 <= w["utilization_percent"] <= 26
        assert {"status", "pid", "current_job_id", "failed_job_count", "last_heartbeat", "birth_date"} <= set(w)
        text = run(bench, "workers", "list").out
        assert text.splitlines()[0].split()[:4] == ["NAME", "STATUS", "QUEUES", "PID"]
        assert "25.0%" in text and "1 worker(s)" in text
        assert "queue default: 1 worker(s)" in run(bench, "doctor").out
    finally:
        mine.register_death()
        other.register_death()


def test_rq_jobs_view_and_actions(bench_factory, db_kind, redis_client):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, utcnow() - timedelta(minutes=1))
    bench_id = ctx.bench.bench_id
    prefix = site_prefix(bench_id, ctx.name)
    run(bench, "trigger-scheduler-event", "hourly-boom")
    drain(bench_id, conn)
    run(bench, "trigger-scheduler-event", "daily")
    r = run(bench, "rq-jobs", "list", "--format", "json")
    assert r.code == 0, r.err
    rows = r.json()
    assert sorted((x["job_name"], x["queue"], x["status"]) for x in rows) == [
        ("app1.tasks.other", "default", "queued"), ("hourly-boom", "default", "failed"),
        ("nightly-ok", "long", "queued")]
    assert all(x["job_id"].startswith(prefix) for x in rows)
    failed = next(x for x in rows if x["status"] == "failed")
    assert failed["time_taken"] is not None and failed["started_at"]
    assert [x["job_name"] for x in run(bench, "rq-jobs", "list", "--status", "failed", "--format", "json").json()] \
        == ["hourly-boom"]
    assert [x["job_name"] for x in run(bench, "rq-jobs", "list", "--queue", "long", "--format", "json").json()] \
        == ["nightly-ok"]
    text = run(bench, "rq-jobs", "list").out
    assert text.splitlines()[0].split()[:4] == ["JOB", "ID", "JOB", "NAME"] and f"prefix {prefix}" in text

    # show: by full id or without the site prefix; the failure's traceback is there
    short = failed["job_id"][len(prefix):]
    shown = run(bench, "rq-jobs", "show", short, "--format", "json").json()
    assert shown["job_id"] == failed["job_id"] and "RuntimeError: boom" in shown["exc_info"]
    assert shown["arguments"]["job_name"] == "hourly-boom"
    assert "exc_info:" in run(bench, "rq-jobs", "show", failed["job_id"]).out

    queued = {x["job_name"]: x["job_id"] for x in rows if x["status"] == "queued"}
    r = run(bench, "rq-jobs", "cancel", queued["app1.tasks.other"])
    assert r.code == 0 and r.out.startswith("canceled RQ job"), r.err
    assert_one_line_error(run(bench, "rq-jobs", "cancel", failed["job_id"]), 1, "only a queued job can be canceled")
    assert_one_line_error(run(bench, "rq-jobs", "stop", queued["nightly-ok"]), 1, "not running")
    assert run(bench, "rq-jobs", "delete", queued["nightly-ok"]).code == 0
    assert not Job.exists(queued["nightly-ok"], connection=redis_client)
    ctx.database()
    rows = {r.job_name: r for r in ScheduledJobLog.select() if r.trigger == "event" and r.job_name != "hourly-boom"}
    assert rows["app1.tasks.other"].status == "skipped" and "rq-jobs cancel" in rows["app1.tasks.other"].reason
    assert rows["nightly-ok"].status == "skipped" and "rq-jobs delete" in rows["nightly-ok"].reason
    # unknown and other sites' ids are not found
    assert_one_line_error(run(bench, "rq-jobs", "show", "nope"), 1, "RQ job 'nope' not found for site default")
    assert_one_line_error(run(bench, "rq-jobs", "show", f"{bench_id}_othersite_x"), 1, "not found")


def test_unknown_queue_is_bad_input(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    assert_one_line_error(run(bench, "purge-jobs", "--queue", "nope"), 2, "unknown queue 'nope'", "short, default")
    assert_one_line_error(sub(bench, "rq-jobs", "list", "--queue", "nope"), 2, "unknown queue 'nope'")
    assert_one_line_error(run(bench, "purge-jobs", "--event", "nightly"), 2, "unknown event 'nightly'")


@pytest.mark.slow
def test_rq_jobs_stop_a_running_job(bench_factory, redis_url):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.slow"]}})
    ctx, conn = migrated(bench, utcnow() - timedelta(minutes=1))
    bench_id = ctx.bench.bench_id
    run(bench, "jobs", "run", "app1.tasks.slow")
    ctx.database()
    rq_id = ScheduledJobLog.get().rq_job_id
    # a plain RQ worker, with the product's bounded command listener (RQ's own can hold its exit for 60 s)
    code = ("import sys; from redis import Redis; from rq import Queue, Worker; "
            "from hookscheduler.worker.process import _PromptUnsubscribe; c = Redis.from_url(sys.argv[1]); "
            "W = type('W', (_PromptUnsubscribe, Worker), {}); "
            "W([Queue(sys.argv[2], connection=c)], connection=c).work(burst=True)")
    worker = subprocess.Popen([sys.executable, "-c", code, redis_url, queue_name(bench_id, "default")],
                              env=env_for(bench, HS_TEST_SLOW="60"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while Job.fetch(rq_id, connection=conn).get_status().value != "started":  # wait for the state, not a slot
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        r = run(bench, "rq-jobs", "stop", rq_id)
        assert r.code == 0 and r.out.startswith("stop sent to RQ job"), r.err
        assert worker.wait(timeout=30) == 0  # the burst worker ends once its horse is stopped
    finally:
        if worker.poll() is None:
            worker.kill()
    ctx.database()
    row = ScheduledJobLog.get()
    assert row.status == "failed" and "rq-jobs stop" in row.reason
    assert Job.fetch(rq_id, connection=conn).get_status().value in ("stopped", "failed")
