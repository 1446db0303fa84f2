"""Shared by the background-job tests (enqueue, runner, workers, events, retention, start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from hookscheduler.broker.connection import redis_for
from hookscheduler.context import SiteContext, open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from tests.helpers import DEFAULT_TASKS, env_for

APP = "bgapp"
T0 = datetime(2026, 1, 5, 10, 7)

BG_TASKS = DEFAULT_TASKS + '''

import peewee
from hookscheduler.store.models import database_proxy


def note(_task, **fields):
    from hookscheduler import job_context
    ctx = job_context()
    row = {"task": _task, "pid": os.getpid(), **fields}
    if ctx is not None:
        row.update(site=ctx.site, job=ctx.job_name, trigger=ctx.trigger, kind=ctx.kind, queue=ctx.queue,
                   rq_job_id=ctx.rq_job_id, frequency=ctx.frequency)
    with open(_out(), "a") as fh:
        fh.write(json.dumps(row) + "\\n")


def seen():
    note("seen")


def add(a, b):
    note("add", a=a, b=b)
    return a + b


def ctx_info():
    from hookscheduler import job_context
    ctx = job_context()
    return {"site": ctx.site, "job": ctx.job_name, "trigger": ctx.trigger, "kind": ctx.kind}


def process(items, tag=None):
    note("process", items=list(items), tag=tag)
    return len(items)


def fail_with(message="boom"):
    note("fail_with")
    raise ValueError(message)


def on_ok(job, connection, result):
    note("on_success", job_id=job.id, result=result)


def on_fail(job, connection, typ, value, tb):
    note("on_failure", job_id=job.id, error=str(value))


def fan_out(n):
    from hookscheduler import enqueue
    for i in range(n):
        enqueue("bgapp.tasks.add", a=i, b=100)


def enqueue_after_commit_then(fail=False):
    from hookscheduler import enqueue
    enqueue("bgapp.tasks.add", enqueue_after_commit=True, a=99, b=0)
    if fail:
        raise RuntimeError("the job failed: its deferred enqueue is dropped with its transaction")


def exit_now(code=1):
    """A job whose work horse ends without reporting: ``os._exit`` skips every handler."""
    os._exit(code)


def kill_self():
    """A job whose work horse is killed (as by the kernel's out-of-memory killer)."""
    os.kill(os.getpid(), 9)


def sleeper():
    note("sleeper")
    time.sleep(float(os.environ.get("HS_TEST_SLOW", "3")))


def swallow_timeout():
    """A job that catches its timeout (a broad ``except Exception``) and returns."""
    note("swallow_timeout")
    try:
        time.sleep(float(os.environ.get("HS_TEST_SLOW", "3")))
    except Exception as exc:
        note("caught", error=type(exc).__name__)
    return "ok"


def barrier():
    """Wait until HS_TEST_BARRIER_N jobs are inside this function at once (proves they run in parallel)."""
    import redis as _redis
    conn = _redis.Redis.from_url(os.environ["HS_TEST_REDIS"])
    key = os.environ["HS_TEST_BARRIER_KEY"]
    conn.incr(key)
    conn.expire(key, 120)
    n = int(os.environ["HS_TEST_BARRIER_N"])
    deadline = time.monotonic() + 30
    while int(conn.get(key) or 0) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("barrier: the other jobs never ran alongside this one")
        time.sleep(0.02)
    from rq import get_current_job
    note("barrier", worker=get_current_job().worker_name)


class Invoice(peewee.Model):
    name = peewee.CharField(primary_key=True)
    status = peewee.CharField(default="new")

    class Meta:
        database = database_proxy
        table_name = "bg_test_invoice"

    def submit(self, note_text):
        self.status = "submitted: " + note_text
        self.save()
        note("submit", name=self.name)
        return self.status

    def submit_then_fail(self):
        self.status = "half-done"
        self.save()
        raise RuntimeError("submit failed after writing")


def write_row(name):
    Invoice.create(name=name, status="written")


def write_row_then_fail(name):
    Invoice.create(name=name, status="written")
    raise RuntimeError("failed after writing " + name)


def write_for_slot():
    from hookscheduler import job_context
    Invoice.create(name="slot " + job_context().slot.isoformat(), status="written")


def write_for_slot_then_fail():
    write_for_slot()
    raise RuntimeError("failed after writing")


def kill_own_db_connection():
    note("kill_own_db_connection")
    database_proxy.obj.execute_sql("SELECT pg_terminate_backend(pg_backend_pid())")
'''


def purge_app() -> None:
    """Forget a previous test's ``bgapp`` (every test bench has its own copy of the package)."""
    for name in [m for m in sys.modules if m == APP or m.startswith(APP + ".")]:
        del sys.modules[name]


def make_bench(bench_factory: Any, db_kind: str = "sqlite", events: dict[str, Any] | None = None,
               common: dict[str, Any] | None = None, sites: dict[str, dict[str, Any]] | None = None,
               migrate: bool = True, builtin: bool = False) -> Path:
    """A bench with the ``bgapp`` app (``events`` as its scheduler_events), migrated at T0 on every site."""
    purge_app()
    bench = bench_factory.make({APP: events or {}}, db=db_kind, common=common, sites=sites, tasks=BG_TASKS)
    if migrate:
        for name in (sites or {"default": {}}):
            ctx = open_site(str(bench), name if sites else None)
            db = ctx.database(create=True, require_schema=False)
            specs = load_job_specs(ctx.bench, ctx.site.queues, builtin=builtin)
            migrate_site(db, ctx.name, specs, ctx.calendar, now=T0)
            ctx.close()
    return bench


def site(bench: Path, name: str | None = None) -> tuple[SiteContext, redis.Redis]:
    ctx = open_site(str(bench), name)
    ctx.database()
    return ctx, redis_for(ctx.site)


def create_invoice_table(ctx: SiteContext) -> Any:
    from bgapp.tasks import Invoice  # type: ignore[import-not-found]

    ctx.database().create_tables([Invoice])
    return Invoice


def out_rows(bench: Path, task: str | None = None) -> list[dict[str, Any]]:
    path = bench / "out.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if task is None or r["task"] == task]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> Any:
    """Poll until ``predicate()`` is truthy (a subprocess reaching a state), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{what}: the process exited with {proc.returncode} first:\n{out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cli(bench: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m hookscheduler ARGS`` on ``bench`` in a subprocess (this checkout on the path)."""
    return subprocess.run([sys.executable, "-m", "hookscheduler", *args], env=env_for(bench, **env),
                          capture_output=True, text=True, timeout=timeout)


def spawn(bench: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """A long-running ``python -m hookscheduler ARGS`` in its own session (so tests can signal its group)."""
    return subprocess.Popen([sys.executable, "-m", "hookscheduler", *args], env=env_for(bench, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def redis_env(bench_factory: Any) -> dict[str, str]:
    return {"HS_TEST_REDIS": bench_factory.redis_url}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
