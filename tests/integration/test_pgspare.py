"""The warm PostgreSQL connection a worker makes for its next work horse (hookscheduler.worker.warm), on a real
server, with real forked horses."""

from __future__ import annotations

import gc
import os
import signal
import time
from datetime import datetime
from typing import Any

import psycopg2
import pytest

from hookscheduler.broker.connection import redis_for
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.database import PostgresqlDatabase, open_database
from hookscheduler.store.models import ScheduledJobLog
from hookscheduler.worker import ledger as runlog
from hookscheduler.worker import runner
from hookscheduler.worker import warm as pgspare
from hookscheduler.worker.process import start_worker
from tests.helpers import DEFAULT_TASKS, drain, read_out
from tests.integration.test_tick import setup_site

pytestmark = pytest.mark.postgres

ELEVEN = datetime(2026, 1, 5, 11, 0, 1)
TASKS = DEFAULT_TASKS + '''

def backend():
    from hookscheduler.store.models import database_proxy
    pid = database_proxy.obj.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "backend", "backend": pid, "horse": os.getpid()}) + "\\n")

def hold_lock():
    from hookscheduler.store.models import database_proxy
    db = database_proxy.obj
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    db.execute_sql("LOCK TABLE scheduled_job_type IN ACCESS EXCLUSIVE MODE")  # inside the job's transaction
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "hold_lock", "backend": pid, "horse": os.getpid()}) + "\\n")
    time.sleep(300)

def nap():
    time.sleep(4)

def dirty():
    from hookscheduler.store.models import database_proxy
    db = database_proxy.obj
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    db.execute_sql("SET application_name = 'leaky'")
    db.execute_sql("SET SESSION lock_timeout = '7s'")
    db.execute_sql("SELECT pg_advisory_lock(4242)")
    db.execute_sql("CREATE TEMP TABLE leftover (x int)")
    db.execute_sql("PREPARE leftover_stmt AS SELECT 1")
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "dirty", "backend": pid, "horse": os.getpid()}) + "\\n")

def look():
    from hookscheduler.store.models import database_proxy
    db = database_proxy.obj
    pid, app, timeout = db.execute_sql("SELECT pg_backend_pid(), current_setting('application_name'), "
                                       "current_setting('lock_timeout')").fetchone()
    advisory = db.execute_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND pid = pg_backend_pid()").fetchone()[0]
    temp = db.execute_sql("SELECT to_regclass('pg_temp.leftover')").fetchone()[0]
    prepared = db.execute_sql("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    state = {"app": app, "advisory": advisory, "temp": temp, "prepared": prepared, "timeout": timeout}
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "look", "backend": pid, "horse": os.getpid(), "state": state}) + "\\n")

def slow_query():
    from hookscheduler.store.models import database_proxy
    db = database_proxy.obj
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "slow_query", "backend": pid, "horse": os.getpid()}) + "\\n")
    db.execute_sql("SELECT pg_sleep(4)")  # killed in here: a query in flight on the lent connection

def close_it():
    from hookscheduler.store.models import database_proxy
    db = database_proxy.obj
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": "close_it", "backend": pid, "horse": os.getpid()}) + "\\n")
    db.connection().close()  # under peewee's feet: its commit then fails, and the run with it
'''


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The server backend pids of the spares this process's worker makes, in order (a spy on ``replenish``)."""
    pids: list[int] = []
    real = pgspare.replenish

    def spy(key: str, connect: Any, warm_up: Any) -> bool:
        before = pgspare._spare
        ok = real(key, connect, warm_up)
        if ok and pgspare._spare is not None and pgspare._spare is not before:
            pids.append(pgspare._spare.backend_pid)
        return ok

    monkeypatch.setattr(pgspare, "replenish", spy)
    return pids


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


def _run_worker(ctx, jobs: list[dict]) -> list[dict]:
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == len(jobs)
    ctx.close()
    assert start_worker(queue="default", quiet=True, burst=True, bench=str(ctx.bench.path))
    return [r for r in read_out(ctx.bench.path) if "backend" in r]


def test_horses_after_the_first_run_on_the_warm_connection_their_worker_lends_and_takes_back(bench_factory, made):
    ctx = setup_site(bench_factory, {"hourly": [{"method": "app1.tasks.backend", "name": f"b{i}"}
                                                for i in range(5)]}, "postgres", tasks=TASKS)
    seen = _run_worker(ctx, list(range(5)))
    assert len(seen) == 5 and len({r["horse"] for r in seen}) == 5  # one forked horse per run
    # the first horse connected itself; the spare made while it ran served every later horse, taken back
    # clean after each one: one server backend for four runs
    [spare] = made
    assert seen[0]["backend"] != spare and [r["backend"] for r in seen[1:]] == [spare] * 4
    ctx.database()
    assert [r.status for r in ScheduledJobLog.select()] == ["complete"] * 5
    admin = _admin(ctx)
    try:  # the worker closed its spare as it stopped; the first horse's session ended with it
        assert not any(_backend_alive(admin, r["backend"]) for r in seen)
    finally:
        admin.close()


def test_nothing_of_one_job_s_session_reaches_the_next(bench_factory):
    """Settings, advisory locks, temporary tables, prepared statements: DISCARD ALL before each loan."""
    jobs = [{"method": "app1.tasks.backend", "name": "a"}, {"method": "app1.tasks.dirty", "name": "b"},
            {"method": "app1.tasks.look", "name": "c"}]
    ctx = setup_site(bench_factory, {"hourly": jobs}, "postgres", tasks=TASKS)
    seen = _run_worker(ctx, jobs)
    dirty, look = seen[1], seen[2]
    assert dirty["task"] == "dirty" and look["task"] == "look"
    assert look["backend"] == dirty["backend"]  # the same session: otherwise this test proves nothing
    assert look["state"] == {"app": "", "advisory": 0, "temp": None, "prepared": 0, "timeout": "0"}


def test_a_connection_its_horse_closed_is_not_taken_back(bench_factory, made):
    jobs = [{"method": "app1.tasks.backend", "name": "a"}, {"method": "app1.tasks.close_it", "name": "b"},
            {"method": "app1.tasks.backend", "name": "c"}, {"method": "app1.tasks.backend", "name": "d"}]
    ctx = setup_site(bench_factory, {"hourly": jobs}, "postgres", tasks=TASKS)
    seen = _run_worker(ctx, jobs)
    first_spare, second_spare = made
    assert [r["task"] for r in seen] == ["backend", "close_it", "backend", "backend"]
    assert seen[1]["backend"] == first_spare  # adopted, then closed by the job (the ledger reconnected)
    assert seen[2]["backend"] not in (first_spare, second_spare)  # no spare to lend: it connected itself
    assert seen[3]["backend"] == second_spare  # made while the third ran
    ctx.database()
    rows = list(ScheduledJobLog.select().order_by(ScheduledJobLog.job_name))
    assert [r.status for r in rows] == ["complete", "failed", "complete", "complete"]
    assert "closed" in rows[1].traceback  # recorded on a fresh connection


def test_a_stale_spare_costs_a_retry_not_the_run(bench_factory, monkeypatch, made):
    """The server dropped the spare's session (restart, idle timeout) before a horse took it."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.backend"]}, "postgres", tasks=TASKS)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 1
    db = open_database(ctx.site.db_url)
    assert isinstance(db, PostgresqlDatabase)
    assert pgspare.replenish(ctx.site.db_url, db.make_spare, runlog.warm_up)
    [spare_pid] = made
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


def test_no_spare_while_the_ledger_is_locked_and_no_retry_storm(bench_factory, made):
    """The chaos run's fault: a lock held on the ledger longer than a tick. The worker must not block on it."""
    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.backend"]}, "postgres", tasks=TASKS)
    db = open_database(ctx.site.db_url)
    assert isinstance(db, PostgresqlDatabase)
    admin = _admin(ctx)
    try:
        with admin.cursor() as cur:
            cur.execute("BEGIN; LOCK TABLE scheduled_job_log IN ACCESS EXCLUSIVE MODE")
            assert not pgspare.replenish(ctx.site.db_url, db.make_spare, runlog.warm_up)  # lock_timeout
            assert not pgspare.replenish(ctx.site.db_url, db.make_spare, runlog.warm_up)  # backing off
            assert made == [] and pgspare._spare is None
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


class _FakeTls(_FakeConn):
    class info:  # psycopg2 names it so
        ssl_in_use = True


def test_a_tls_spare_is_let_go_at_the_fork_and_never_taken_back():
    fake = _FakeTls()
    pgspare._spare = pgspare._Spare("db-a", os.getpid(), fake, 1)
    pgspare.lend()
    pgspare.lent_out()
    assert pgspare._spare is None and fake.closed == 1


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


def test_a_connection_whose_horse_was_killed_mid_query_is_never_lent_again(bench_factory):
    """The one case the horse's report exists for: a query in flight. Taken back, its late answer would be
    read as the answer to the worker's reset, and the reset's answer as the next horse's first query."""
    jobs = [{"method": "app1.tasks.backend", "name": "a"}, {"method": "app1.tasks.slow_query", "name": "b"},
            {"method": "app1.tasks.backend", "name": "c"}]
    ctx = setup_site(bench_factory, {"hourly": jobs}, "postgres", tasks=TASKS)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 3
    ctx.close()
    pid = os.fork()
    if pid == 0:
        try:
            start_worker(queue="default", quiet=True, burst=True, bench=str(ctx.bench.path))
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 60
        slow: list[dict] = []
        while not slow and time.monotonic() < deadline:
            slow = [r for r in read_out(ctx.bench.path) if r["task"] == "slow_query"]
            time.sleep(0.05)
        assert slow, "the slow run never started"
        time.sleep(0.3)  # let its query reach the server (waits for a query in flight, not for a slot)
        os.kill(slow[0]["horse"], signal.SIGKILL)
    finally:
        os.waitpid(pid, 0)
    seen = [r for r in read_out(ctx.bench.path) if "backend" in r]
    assert [r["task"] for r in seen] == ["backend", "slow_query", "backend"]
    assert seen[2]["backend"] != seen[1]["backend"]


def test_a_sqlite_worker_keeps_its_database_open_so_horses_skip_wal_recovery(bench_factory, monkeypatch):
    """Not PostgreSQL: the same module's concern (what a horse's connect costs). The worker holds one idle
    connection (checked while it runs: each horse records that the keeper's file is open in its parent), and
    the files SQLite creates for it are owner-only."""
    import stat

    seen_open: list[bool] = []
    real = pgspare.keep_open

    def spy(path: str) -> None:
        real(path)
        seen_open.append(pgspare.kept_open(path))

    monkeypatch.setattr(pgspare, "keep_open", spy)
    ctx = setup_site(bench_factory, {"hourly": [{"method": "app1.tasks.record", "name": f"r{i}"} for i in range(3)]},
                     "sqlite", tasks=TASKS)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=ELEVEN).fired == 3
    path = open_database(ctx.site.db_url, ctx.bench.path).database
    ctx.close()
    assert start_worker(queue="default", quiet=True, burst=True, bench=str(ctx.bench.path))
    assert seen_open == [True, True, True] and not pgspare.kept_open(path)  # held while working, released at the end
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            assert stat.S_IMODE(os.stat(path + suffix).st_mode) == 0o600
    ctx.database()
    assert [r.status for r in ScheduledJobLog.select()] == ["complete"] * 3


def test_a_horse_that_sent_only_its_runs_writes_hands_back_a_session_needing_no_reset(bench_factory, monkeypatch):
    """A run whose job touched no table sends only its one-trip start and outcome (nothing left in the session):
    the worker lends the connection again without ``DISCARD ALL``; a job that sent anything else is reset."""
    verdicts: list[int] = []
    real = pgspare.take_back

    def spy() -> None:
        if pgspare._spare is not None and pgspare._spare.lent and pgspare._report is not None:
            verdicts.append(pgspare._report[0])
        real()

    monkeypatch.setattr(pgspare, "take_back", spy)
    jobs = [{"method": "app1.tasks.nap0", "name": f"n{i}"} for i in range(3)] + [
        {"method": "app1.tasks.dirty", "name": "x"}, {"method": "app1.tasks.look", "name": "y"}]
    ctx = setup_site(bench_factory, {"hourly": jobs}, "postgres", tasks=TASKS + "\ndef nap0():\n    pass\n")
    seen = _run_worker(ctx, jobs)
    # horse 1 connected itself; horses 2-3 (no-op) hand back pristine sessions, the dirty one a used one
    assert verdicts[:3] == [pgspare.PRISTINE, pgspare.PRISTINE, pgspare.CLEAN]
    dirty, look = seen[0], seen[1]
    assert look["backend"] == dirty["backend"]  # the same session, reset after the dirty job
    assert look["state"] == {"app": "", "advisory": 0, "temp": None, "prepared": 0, "timeout": "0"}
    ctx.database()
    assert [r.status for r in ScheduledJobLog.select()] == ["complete"] * 5
