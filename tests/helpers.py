"""Test helpers: building benches with apps and hooks, and draining RQ queues with real workers."""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis

from hookscheduler.broker.connection import delete_bench_keys


def pg_admin_conn(dsn: str) -> Any:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


@contextmanager
def own_pg_database(dsn: str, prefix: str) -> Iterator[str]:
    """A PostgreSQL database made for the block on ``dsn``'s server, dropped (connections and all) after it;
    yields its URL."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = pg_admin_conn(dsn)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def closing_sites(*scheds: Any) -> Iterator[None]:
    """Close every site context the given in-process schedulers opened, however the test ends (a test drives
    ``Scheduler.cycle`` itself, so nothing else would close their databases)."""
    try:
        yield
    finally:
        for sched in scheds:
            for state in sched.sites.values():
                state.ctx.close()


#: Delete every key of one test's bench (the fixtures' name for it).
redis_cleanup = delete_bench_keys


DEFAULT_TASKS = '''
import json, os, time
from pathlib import Path

def _out():
    return Path(os.environ["HS_TEST_OUT"])

def record(name="task"):
    from hookscheduler import job_context
    ctx = job_context()
    with open(_out(), "a") as fh:
        fh.write(json.dumps({"task": name, "slot": ctx.slot.isoformat() if ctx and ctx.slot else None,
                             "trigger": ctx.trigger if ctx else None, "job": ctx.job_name if ctx else None}) + "\\n")

def ok():
    record("ok")

def other():
    record("other")

def boom():
    record("boom")
    raise RuntimeError("boom: the task failed on purpose")

def slow():
    record("slow")
    time.sleep(float(os.environ.get("HS_TEST_SLOW", "3")))

NOT_CALLABLE = 42
'''


class BenchFactory:
    """Create benches: ``make(apps={"app": {"scheduler_events": {...}}}, db="sqlite"|"postgres", ...)``."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, pg_base: str | None):
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.redis_url = redis_url
        self.pg_base = pg_base
        self.bench_ids: list[str] = []
        self.schemas: list[str] = []
        self.count = 0

    def make(self, apps: dict[str, Any] | None = None, db: str = "sqlite", common: dict[str, Any] | None = None,
             sites: dict[str, dict[str, Any]] | None = None, apps_txt: list[str] | None = None,
             tasks: str = DEFAULT_TASKS, env: bool = True) -> Path:
        """A bench folder. ``apps`` maps app name -> scheduler_events (dict) or raw hooks.py source (str)."""
        self.count += 1
        bench = self.tmp_path / f"bench{self.count}"
        (bench / "apps").mkdir(parents=True)
        (bench / "sites").mkdir()
        for name, hooks in (apps or {}).items():
            pkg = bench / "apps" / name
            pkg.mkdir()
            (pkg / "__init__.py").write_text("")
            (pkg / "tasks.py").write_text(textwrap.dedent(tasks))
            source = hooks if isinstance(hooks, str) else f"scheduler_events = {json.dumps(hooks)}\n"
            (pkg / "hooks.py").write_text(source)
        bench_id = f"hst{uuid.uuid4().hex[:10]}"
        self.bench_ids.append(bench_id)
        common_conf = {"redis_queue": self.redis_url, "bench_id": bench_id, "time_zone": "UTC", **(common or {})}
        (bench / "sites" / "common_site_config.json").write_text(json.dumps(common_conf))
        for site, conf in (sites or {}).items():
            (bench / "sites" / site).mkdir()
            site_conf = dict(conf)
            if db == "postgres" and "db_url" not in site_conf:
                site_conf["db_url"] = self.pg_url()
            (bench / "sites" / site / "site_config.json").write_text(json.dumps(site_conf))
        if apps_txt is not None:
            (bench / "sites" / "apps.txt").write_text("\n".join(apps_txt) + "\n")
        if env:
            self.monkeypatch.setenv("HOOKSCHEDULER_BENCH", str(bench))
            self.monkeypatch.delenv("HOOKSCHEDULER_SITE", raising=False)
            self.monkeypatch.delenv("HOOKSCHEDULER_REDIS_URL", raising=False)
            self.monkeypatch.setenv("HS_TEST_OUT", str(bench / "out.jsonl"))
            if db == "postgres" and not sites:
                self.monkeypatch.setenv("HOOKSCHEDULER_DB_URL", self.pg_url())
            else:
                self.monkeypatch.delenv("HOOKSCHEDULER_DB_URL", raising=False)
        return bench

    def pg_url(self) -> str:
        """A fresh schema in the session database, as a db_url (search_path set through libpq options)."""
        assert self.pg_base, "this test did not ask for PostgreSQL (use the db_kind fixture or @pytest.mark.postgres)"
        schema = f"s_{uuid.uuid4().hex[:12]}"
        conn = pg_admin_conn(self.pg_base)
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
        conn.close()
        self.schemas.append(schema)
        return f"{self.pg_base}?options=-csearch_path%3D{schema}"

    def close(self) -> None:
        if self.schemas and self.pg_base:
            conn = pg_admin_conn(self.pg_base)
            with conn.cursor() as cur:
                for schema in self.schemas:
                    cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.close()


def read_out(bench: Path) -> list[dict[str, Any]]:
    path = bench / "out.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def drain(bench_id: str, conn: redis.Redis, queues: tuple[str, ...] = ("short", "default", "long")) -> None:
    """Run every queued job to completion with a real RQ worker, in this process (SimpleWorker, burst).

    With the product's bounded command listener: RQ's own one makes about one burst in six wait 60 s at exit
    with redis-py 8 (see ``hookscheduler.worker.process``), which slowed the suite and broke clock-based asserts."""
    from rq import Queue, SimpleWorker

    from hookscheduler.broker.keys import queue_name
    from hookscheduler.worker.process import _PromptUnsubscribe

    class DrainWorker(_PromptUnsubscribe, SimpleWorker):
        pass

    qs = [Queue(queue_name(bench_id, q), connection=conn) for q in queues]
    DrainWorker(qs, connection=conn).work(burst=True, logging_level="WARNING")


def env_for(bench: Path, **extra: str) -> dict[str, str]:
    """An environment for a subprocess CLI call on ``bench`` (inherits os.environ, as monkeypatched)."""
    env = dict(os.environ)
    env["HOOKSCHEDULER_BENCH"] = str(bench)
    # subprocesses import this checkout's package (python -m hookscheduler), whatever is pip-installed
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env
