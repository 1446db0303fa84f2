"""The warm PostgreSQL connection a worker makes for its next work horse (hookscheduler.pgspare), on a real
server, with real forked horses."""

from __future__ import annotations

import gc
import os
import signal
import time
from datetime import datetime

import psycopg2
import pytest

from hookscheduler import pgspare, runlog, runner
from hookscheduler.db import PostgresqlDatabase, open_database
from hookscheduler.models import ScheduledJobLog
from hookscheduler.redis_conn import redis_for
from hookscheduler.tick import run_pass
from hookscheduler.workers import start_worker
from tests.helpers import DEFAULT_TASKS, drain, read_out
from tests.integration.test_tick import setup_site

pytestmark = pytest.mark.postgres

ELEVEN = datetime(2026, 1, 5, 11, 0, 1)
TASKS = DEFAULT_TASKS + '''

def backend():
    from hookscheduler.models import database_proxy
    pid = database_proxy.obj.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "backend", "backend": pid, "horse": os.getpid()}) + "\\n")

def hold_lock():
    from hookscheduler.models import database_proxy
    db = database_proxy.obj
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    db.execute_sql("LOCK TABLE scheduled_job_type IN ACCESS EXCLUSIVE MODE")  # inside the job's transaction
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "hold_lock", "backend": pid, "horse": os.getpid()}) + "\\n")
    time.sleep(300)

def nap():
    time.sleep(4)
'''


@pytest.fixture(autouse=True)
def _clean_state():
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    pgspare.discard()
    runner._SITES.clear()
    yield
    pgspare.discard()
    runner._SITES.clear()
    gc.unfreeze()  # start_worker freezes what the worker holds (for its horses); this process goes on
    for sig, handler in handlers.items():  # an in-process RQ worker installs its own
        signal.signal(sig, handler)


def _admin(ctx):
    db = open_database(ctx.site.db_url)
    assert isinstance(db, PostgresqlDatabase)
    conn = psycopg2.connect(dbname=db.database, **db.connect_params)
    conn.autocommit = True
    return conn


def _backend_alive(admin, pid: int) -> bool:
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
        return cur.fetchone() is not None


def test_every_horse_after_the_first_runs_on_a_connection_its_worker_warmed(bench_factory):
    ctx = setup_site(bench_factory, {"hourly": [{"method": "app1.tasks.backend", "name": f"b{i}"}
                                                for i in range(5)]}, "postgres", tasks=TASKS)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 5
    ctx.close()
    assert start_worker(queue="default", quiet=True, burst=True, bench=str(ctx.bench.path))
    seen = [r for r in read_out(ctx.bench.path) if r["task"] == "backend"]
    assert len(seen) == 5 and len({r["horse"] for r in seen}) == 5  # one forked horse per run
    # the first horse connected itself; each later one adopted the spare made while its predecessor ran
    assert [r["backend"] in pgspare.made for r in seen] == [False, True, True, True, True]
    assert len({r["backend"] for r in seen}) == 5  # a spare serves one horse only
    ctx.database()
    assert [r.status for r in ScheduledJobLog.select()] == ["complete"] * 5
    admin = _admin(ctx)
    try:  # the worker let go of every spare it handed over: their sessions ended with their horses
        assert not any(_backend_alive(admin, r["backend"]) for r in seen)
    finally:
        admin.close()


def test_a_stale_spare_costs_a_retry_not_the_run(bench_factory, monkeypatch):
    """The server dropped the spare's session (restart, idle timeout) before a horse took it."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.backend"]}, "postgres", tasks=TASKS)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 1
    db = open_database(ctx.site.db_url)
    assert isinstance(db, PostgresqlDatabase)
    assert pgspare.replenish(ctx.site.db_url, db.make_spare, runlog.warm_up)
    [spare_pid] = pgspare.made[-1:]
    admin = _admin(ctx)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (spare_pid,))
    finally:
        admin.close()
    monkeypatch.setattr(pgspare.os, "getppid", os.getpid)  # this process plays the horse of itself
    ctx.close()
    drain(ctx.bench.bench_id, conn)
    [seen] = [r for r in read_out(ctx.bench.path) if r["task"] == "backend"]
    assert seen["backend"] != spare_pid and pgspare._spare is None  # adopted, failed, replaced
    ctx.database()
    assert ScheduledJobLog.get().status == "complete"


def test_no_spare_while_the_ledger_is_locked_and_no_retry_storm(bench_factory):
    """The chaos run's fault: a lock held on the ledger longer than a tick. The worker must not block on it."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.backend"]}, "postgres", tasks=TASKS)
    db = open_database(ctx.site.db_url)
    assert isinstance(db, PostgresqlDatabase)
    admin = _admin(ctx)
    try:
        with admin.cursor() as cur:
            cur.execute("BEGIN; LOCK TABLE scheduled_job_log IN ACCESS EXCLUSIVE MODE")
            made = len(pgspare.made)
            assert not pgspare.replenish(ctx.site.db_url, db.make_spare, runlog.warm_up)  # lock_timeout
            assert not pgspare.replenish(ctx.site.db_url, db.make_spare, runlog.warm_up)  # backing off
            assert len(pgspare.made) == made and pgspare._spare is None
            cur.execute("ROLLBACK")
    finally:
        admin.close()


def test_an_unreachable_server_gives_no_spare():
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    db = open_database(url)
    assert isinstance(db, PostgresqlDatabase)
    assert not pgspare.replenish(url, db.make_spare, runlog.warm_up)
    assert pgspare._spare is None


class _FakeConn:
    closed = 0

    def fileno(self) -> int:
        raise OSError("not a socket")

    def close(self) -> None:
        self.closed = 1


def test_only_a_direct_child_of_its_maker_adopts_a_spare_and_only_once():
    fake = _FakeConn()
    pgspare._spare = pgspare._Spare("db-a", os.getpid(), fake, 1)
    assert pgspare.take("db-a") is None  # its maker (the worker itself) never uses it
    pgspare._spare = pgspare._Spare("db-a", os.getppid(), fake, 1)
    assert pgspare.take("db-b") is None  # another site's database
    assert pgspare.take("db-a") is fake
    assert pgspare.take("db-a") is None  # once


def test_a_horse_killed_holding_a_lock_on_a_spare_leaves_no_session_behind(bench_factory):
    """The parent let go of its copy at the fork, so the horse's death closes the session: its transaction and
    locks go with it (the ledger is not blocked until the worker exits)."""
    ctx = setup_site(bench_factory, {"hourly": [{"method": "app1.tasks.backend", "name": "a_first"},
                                                {"method": "app1.tasks.hold_lock", "name": "b_second",
                                                 "timeout": 600},
                                                {"method": "app1.tasks.nap", "name": "c_third"}]},
                     "postgres", tasks=TASKS)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 3
    ctx.close()
    pid = os.fork()
    if pid == 0:  # the worker, in a child of its own so that the test can kill its horse
        try:
            start_worker(queue="default", quiet=True, burst=True, bench=str(ctx.bench.path))
        finally:
            os._exit(0)
    admin = _admin(ctx)
    try:
        deadline = time.monotonic() + 60
        held = []
        while not held and time.monotonic() < deadline:
            held = [r for r in read_out(ctx.bench.path) if r["task"] == "hold_lock"]
            time.sleep(0.05)
        assert held, "the lock-holding run never started"
        backend, horse = held[0]["backend"], held[0]["horse"]
        assert _backend_alive(admin, backend)
        os.kill(horse, signal.SIGKILL)  # the worker goes on (to the third run): it does not hold the session
        deadline = time.monotonic() + 30
        while _backend_alive(admin, backend) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _backend_alive(admin, backend)
        with admin.cursor() as cur:  # the table is free again
            cur.execute("SET lock_timeout = '2s'; SELECT count(*) FROM scheduled_job_type")
            assert cur.fetchone()[0] == 3
    finally:
        admin.close()
        os.waitpid(pid, 0)
