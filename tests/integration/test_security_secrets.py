"""Passwords are never printed: a broad run of commands (tables and JSON, errors, the worker's and the scheduler
loop's log lines, a failed job's traceback) against a PostgreSQL URL with a password and a private Redis with an
ACL password (in the URL and in ``rq_password``); every byte of captured output is grepped for both secrets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from hookscheduler.security.redact import redact
from hookscheduler.store.models import utcnow
from tests.helpers import DEFAULT_TASKS, env_for
from tests.integration.opcli_support import Result, migrated, run, sub
from tests.integration.private_redis import ACL_PASSWORD, ACL_USER, PrivateRedis, free_port, private_redis

PG_SECRET = "Pg-S3cret_q9"
SECRETS = (PG_SECRET, ACL_PASSWORD)

TASKS = DEFAULT_TASKS + f'''

def leak():
    """Fails with an error that quotes connection URLs with their passwords."""
    raise RuntimeError("cannot reach postgresql://app:{PG_SECRET}@db.internal/x nor "
                       "redis://{ACL_USER}:{ACL_PASSWORD}@cache.internal:6379/0 (password={PG_SECRET})")
'''
HOOKS = {"hourly": ["sec.tasks.ok", "sec.tasks.leak"]}


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path_factory.mktemp("redis-secrets")) as server:
        yield server


def _pg_url_with_password(bench_factory) -> str:
    url = bench_factory.pg_url()
    assert url.startswith("postgresql://postgres@")
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PG_SECRET}@", 1)  # trust auth accepts it


def _clean(results: list[tuple[list[str], Result]]) -> None:
    for argv, r in results:
        for secret in SECRETS:
            assert secret not in r.out and secret not in r.err, (argv, r.out[-2000:], r.err[-2000:])


@pytest.mark.postgres
def test_no_command_prints_a_password(bench_factory, acl_redis, monkeypatch):
    monkeypatch.delenv("HOOKSCHEDULER_RQ_USERNAME", raising=False)
    monkeypatch.delenv("HOOKSCHEDULER_RQ_PASSWORD", raising=False)
    redis_url = f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{acl_redis.port}/0"
    db_url = _pg_url_with_password(bench_factory)
    bench = bench_factory.make({"sec": HOOKS}, tasks=TASKS, common={
        "redis_queue": redis_url, "db_url": db_url, "rq_username": ACL_USER, "rq_password": ACL_PASSWORD})
    ctx, _ = migrated(bench, utcnow() - timedelta(hours=2))
    ctx.close()
    results: list[tuple[list[str], Result]] = []

    def do(*argv: str, process: bool = False) -> Result:
        r = sub(bench, *argv) if process else run(bench, *argv)
        results.append((list(argv), r))
        return r

    assert do("tick", process=True).code == 0
    assert do("worker", "--burst", process=True).code == 0  # runs ok and leak (which fails, quoting secrets)
    assert do("jobs", "run", "sec.tasks.leak").code == 0
    hist = do("jobs", "history", "--format", "json")
    assert any(r["status"] == "failed" and "***" in (r["error"] or r["traceback"] or "") for r in hist.json()), \
        hist.out[:3000]
    queued_id = next(r["rq_job_id"] for r in hist.json() if r["status"] == "queued")
    failed_id = next(r["rq_job_id"] for r in hist.json() if r["status"] == "failed")
    for fmt in ("text", "json"):
        f = ("--format", fmt)
        for argv in (["migrate", *f], ["migrate", "--dry-run", *f], ["jobs", "list", "--all", *f],
                     ["jobs", "history", *f], ["jobs", "history", "sec.tasks.leak", "--status", "failed", *f],
                     ["jobs", "missed", *f], ["jobs", "explain", "sec.tasks.leak", *f],
                     ["jobs", "next", "sec.tasks.ok", *f],
                     ["scheduler", "status", "-v", *f], ["show-pending-jobs", *f], ["rq-jobs", "list", *f],
                     ["rq-jobs", "show", failed_id, *f], ["rq-jobs", "show", queued_id, *f],
                     ["job-status", failed_id, *f], ["job-status", queued_id, *f], ["workers", "list", *f],
                     ["doctor", *f], ["tick", *f], ["trigger-scheduler-event", "hourly", "--force", *f]):
            do(*argv)
    shown = do("rq-jobs", "show", failed_id)
    assert "RuntimeError" in shown.out and "***" in shown.out
    for argv in (["ready-for-migration"], ["purge-jobs"], ["set-config", "-g", "redis_queue", redis_url],
                 ["set-config", "-g", "rq_password", ACL_PASSWORD], ["set-config", "-g", "db_url", db_url],
                 ["set-config", "-g", "rq_password", "123"], ["set-config", "-g", "redis_queue", f"http://u:{PG_SECRET}@h/0"],
                 ["scheduler", "disable", "--note", "n"], ["scheduler", "enable"], ["--help"], ["jobs", "--help"]):
        do(*argv)
    assert do("worker", "--burst", process=True).code == 0
    _clean(results)
    assert len(results) > 50


@pytest.mark.postgres
@pytest.mark.parametrize("case", ["pg-down", "pg-bad-port", "pg-slash-in-password", "pg-bad-host-bracket",
                                  "redis-down", "redis-bad-port", "redis-wrong-password",
                                  "redis-slash-in-password"])
def test_errors_never_print_a_password(bench_factory, acl_redis, case):
    pg = _pg_url_with_password(bench_factory)
    closed = free_port()
    common = {
        "pg-down": {"db_url": f"postgresql://postgres:{PG_SECRET}@127.0.0.1:{closed}/x"},
        "pg-slash-in-password": {"db_url": f"postgresql://postgres:{ACL_PASSWORD}/{PG_SECRET}@127.0.0.1/x"},
        "pg-bad-port": {"db_url": f"postgresql://postgres:{PG_SECRET}@127.0.0.1:99999/x"},
        "pg-bad-host-bracket": {"db_url": f"postgresql://postgres:{PG_SECRET}@[::1/x"},
        "redis-down": {"db_url": pg, "redis_queue": f"redis://u:{ACL_PASSWORD}@127.0.0.1:{closed}/0"},
        "redis-bad-port": {"db_url": pg, "redis_queue": f"redis://u:{ACL_PASSWORD}@127.0.0.1:abc/0"},
        "redis-slash-in-password": {"db_url": pg,
                                    "redis_queue": f"redis://u:{ACL_PASSWORD}/{PG_SECRET}@127.0.0.1:{closed}/0"},
        "redis-wrong-password": {"db_url": pg, "redis_queue": f"redis://{ACL_USER}:{PG_SECRET}@127.0.0.1:"
                                                              f"{acl_redis.port}/0"},
    }[case]
    bench = bench_factory.make({"sec": HOOKS}, tasks=TASKS, common=common)
    results = []
    for argv in (["migrate"], ["jobs", "list"], ["jobs", "run", "sec.tasks.ok"], ["tick"], ["doctor"],
                 ["doctor", "--format", "json"], ["scheduler", "status", "--format", "json"]):
        r = run(bench, *argv)
        results.append((argv, r))
        assert r.code != 0 or (argv[0] in ("migrate", "jobs") and case.startswith("redis")), (argv, r)
        assert "Traceback" not in r.err
    with pytest.MonkeyPatch.context() as mp:  # with HOOKSCHEDULER_DEBUG an internal error prints its traceback
        mp.setenv("HOOKSCHEDULER_DEBUG", "1")
        for argv in (["jobs", "list"], ["jobs", "run", "sec.tasks.ok"], ["doctor"]):
            results.append((argv, run(bench, *argv)))
    _clean(results)


def test_the_scheduler_loops_log_lines_never_print_a_password(bench_factory):
    """``schedule`` with Redis down logs the outage (once), without the password of the URL."""
    closed = free_port()
    bench = bench_factory.make({"sec": HOOKS}, tasks=TASKS,
                               common={"redis_queue": f"redis://u:{ACL_PASSWORD}@127.0.0.1:{closed}/0"})
    ctx, _ = migrated(bench, utcnow() - timedelta(hours=2))
    ctx.close()
    proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "schedule", "-v"], env=env_for(bench),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = _read_until(proc, "retrying with back-off", timeout=60)
    assert "ERROR hookscheduler.schedule.loop: site default:" in err and "retrying with back-off" in err, err
    assert ACL_PASSWORD not in err


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """Collect the process's stderr until ``needle`` shows (an event, not a clock: at most ``timeout``)."""
    import selectors

    sel = selectors.DefaultSelector()
    assert proc.stderr is not None
    sel.register(proc.stderr, selectors.EVENT_READ)
    text = ""
    deadline = time.monotonic() + timeout
    try:
        while needle not in text and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.5):
                line = proc.stderr.readline()
                text += line
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, rest = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, rest = proc.communicate()
    return text + rest + out


def test_a_failed_runs_traceback_is_stored_without_passwords(bench_factory, db_kind):
    """The ledger is read by operators and by tools other than ours: redacting only what the CLI prints is not
    enough; the traceback and reason are redacted before they are written."""
    from hookscheduler.broker.connection import redis_for
    from hookscheduler.schedule.claim import run_pass
    from hookscheduler.store.models import ScheduledJobLog
    from tests.helpers import drain
    from tests.integration.test_tick import setup_site

    ctx = setup_site(bench_factory, {"hourly": ["app1.tasks.leak"]}, db_kind, tasks=TASKS)
    conn = redis_for(ctx.site)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 1
    drain(ctx.bench.bench_id, conn)
    ctx.database()
    [row] = list(ScheduledJobLog.select().where(ScheduledJobLog.status == "failed"))
    assert "RuntimeError" in row.traceback and "***" in row.traceback
    for secret in SECRETS:
        assert secret not in row.traceback


@pytest.mark.parametrize("text", [
    "postgresql://u:p%40ss@h/db", "redis://:pw@h:1/0", "rediss://a:b@h/0?ssl_password=k&ssl_ca_certs=/c",
    "host=h password='a b' dbname=x", "sslpassword=q", json.dumps({"rq_password": "s\"x"}),
    str({"db_password": "s'x"}), "redis://u:p@ss@h/0", "redis://u:ab/cd@h:1/0",
])
def test_redact_covers_every_form(text):
    out = redact(text)
    for secret in ("p%40ss", ":pw@", "=k", "a b", "=q", "s\\\"x", "s'x", "p@ss", "ab/cd"):
        assert secret not in out or secret not in text, (text, out)


def test_the_log_record_factory_redacts_every_logger(capfd):
    import logging

    from hookscheduler.security.logs import install_log_redaction

    install_log_redaction()
    log = logging.getLogger("rq.worker.hs_test")
    handler = logging.StreamHandler(sys.stderr)
    log.addHandler(handler)
    try:
        log.error("connecting to %s", f"redis://u:{ACL_PASSWORD}@h/0")
        try:
            raise RuntimeError(f"postgresql://u:{PG_SECRET}@h/db is down")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    err = capfd.readouterr().err
    assert "redis://u:***@h/0" in err and "postgresql://u:***@h/db is down" in err
    assert ACL_PASSWORD not in err and PG_SECRET not in err
