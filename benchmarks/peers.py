"""The other schedulers, driven one loop iteration at a time on the runner's Redis (and SQLite / PostgreSQL).

* **A** RQ 3's ``rq.cron.CronScheduler``: :mod:`benchmarks.rqcron`.
* **B** rq-scheduler (:class:`RQSchedulerPeer`). Its loop body (``Scheduler.run``) is: ``heartbeat()``;
  ``acquire_lock()``; ``enqueue_jobs()`` (a ``ZRANGEBYSCORE`` of the scheduled-jobs sorted set up to now, then
  per due job an enqueue and a re-schedule); ``heartbeat()``; ``remove_lock()``; then a sleep of ``interval``.
  Its Redis key names are class attributes: a subclass gives them this run's prefix, so the shared Redis db
  never sees two runs' jobs in one set.
* **C** APScheduler 3 (:class:`APSPeer`) with a persistent job store: ``SQLAlchemyJobStore`` on SQLite or
  PostgreSQL, or ``RedisJobStore``. Its loop body (``BlockingScheduler._main_loop``) is ``_process_jobs()``:
  per job store, the due jobs (one query), each submitted to the executor and updated, then the store's next
  fire time (one query). A scheduler whose ``wakeup`` does nothing lets the benchmark call that body itself.
* **D** Frappe's algorithm (:class:`FrappeEmulation`, written here from how Frappe's scheduler behaves; it is
  not Frappe's code): every tick, for every site, connect to the site's database, read whether the scheduler
  is enabled, read every job type that is not stopped, and for each compute
  ``croniter(cron, last_execution).get_next() <= now``; a due job is enqueued under the deterministic RQ id
  ``scheduled_job::<method>`` unless a job with that id is queued or started, and its ``last_execution`` is
  set. Registration (``sync_jobs`` at migrate) is one existence ``SELECT`` and one ``INSERT`` per job
  (:meth:`FrappeEmulation.register`, given the cron strings: no app code read).
  :meth:`FrappeEmulation.register_hooks` is the same sync as Frappe 14/15 really runs it at ``bench migrate``,
  minus the framework: ``frappe.get_hooks("scheduler_events")`` imports every installed app's ``hooks.py``
  and merges their events, then ``insert_events`` calls, per event, ``insert_single_event``, which first
  resolves the method with ``frappe.get_attr`` (an import of its module; an unresolvable one is skipped with
  a warning), then ``frappe.db.exists`` (a ``SELECT``) and ``doc.insert()`` (an ``INSERT``); ``clear_events``
  reads every row back.
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported where used: a registration process imports only what its peer needs
    import redis

UTC = timezone.utc
SLOT_TEXT = "2026-01-05T10:00:00"  # tickbench.SLOT: the job kwargs are workload 1's shape


def noop(**_: Any) -> None:
    """The function the peers register (no worker runs it here)."""


def job_kwargs(i: int) -> dict[str, Any]:
    """The kwargs of job ``i``: the same shape as a hookscheduler run's, so every peer's job hashes are the same
    size."""
    return {"site": "default", "job_name": f"app{i % 100}.tasks.job_{i:06d}",
            "method": f"app{i % 100}.tasks.job_{i:06d}", "slot": SLOT_TEXT, "trigger": "schedule"}


def crons_for(n: int, due: int = 0) -> list[str]:
    """The same cron expressions workload 1 gives hookscheduler's table and RQ's cron. (This module imports
    neither hookscheduler nor the benchmark helpers at load time, so that ``proc_register`` measures a peer's
    own start-up; the functions that need them import them when called.)"""
    from .tickbench import DUE_CRONS, cron_pool

    pool = cron_pool()
    return [DUE_CRONS[i % len(DUE_CRONS)] if i < due else pool[i % len(pool)] for i in range(n)]


def clear_redis_prefix(conn: redis.Redis, prefix: str) -> None:
    from .tickbench import clear_redis_prefix as clear

    clear(conn, prefix)


def enqueue_rq(redis_url: str, queue: str, **kwargs: Any) -> None:
    """What APScheduler runs at a fire time: put one job on an RQ queue (the peers enqueue; no worker runs)."""
    from rq import Queue

    Queue(queue, connection=_conn(redis_url)).enqueue(noop, kwargs=kwargs, job_timeout=300)


_CONNS: dict[str, redis.Redis] = {}


def _conn(url: str) -> redis.Redis:
    import redis

    if url not in _CONNS:
        _CONNS[url] = redis.Redis.from_url(url)
    return _CONNS[url]


# --- B: rq-scheduler --------------------------------------------------------------------------------------

def rq_scheduler_class(prefix: str) -> type[Any]:
    """rq-scheduler's ``Scheduler`` with its Redis keys under ``prefix``."""
    from rq_scheduler import Scheduler

    # its cron helper warns on every call that the ``crontab`` package's default will change
    warnings.filterwarnings("ignore", category=FutureWarning, module="rq_scheduler")
    return type("PrefixedScheduler", (Scheduler,), {
        "redis_scheduler_namespace_prefix": f"{prefix}:scheduler_instance:",
        "scheduler_key": f"{prefix}:scheduler", "scheduler_lock_key": f"{prefix}:scheduler_lock",
        "scheduled_jobs_key": f"{prefix}:scheduler:scheduled_jobs"})


#: What RQ refuses in a job id.
_RQ_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

class RQSchedulerPeer:
    """rq-scheduler with ``n`` cron jobs registered (none due: cron jobs are put at their next real slot)."""

    def __init__(self, conn: redis.Redis, prefix: str, n: int):
        self.conn, self.prefix = conn, prefix
        self.sched = rq_scheduler_class(prefix)(queue_name=f"{prefix}:default", connection=conn, interval=60)
        register_rq_scheduler(self.sched, prefix, crons_for(n))
        # the "*/2 * * * *" jobs would come due during a long run: a day ahead, as for RQ's cron
        later = (datetime.now(UTC) + timedelta(days=1)).timestamp()
        ids: list[Any] = list(conn.zrange(self.sched.scheduled_jobs_key, 0, -1))
        if ids:
            conn.zadd(self.sched.scheduled_jobs_key, {i: later for i in ids})
        self.sched.register_birth()

    def loop_body(self) -> int:
        """One iteration of ``Scheduler.run``'s loop, without the sleep; returns how many jobs it enqueued."""
        self.sched.heartbeat()
        enqueued = 0
        if self.sched.acquire_lock():
            enqueued = len(list(self.sched.enqueue_jobs()))
            self.sched.heartbeat()
            self.sched.remove_lock()
        return enqueued

    def close(self) -> None:
        clear_redis_prefix(self.conn, self.prefix)


def register_rq_scheduler(sched: Any, prefix: str, crons: list[str]) -> None:
    """``Scheduler.cron`` for each of ``crons`` (each: the job hash written, then added to the sorted set)."""
    for i, cron in enumerate(crons):
        sched.cron(cron, func=noop, kwargs=job_kwargs(i), queue_name=f"{prefix}:default", id=f"{prefix}_job_{i:06d}",
                   timeout=300, result_ttl=600)


# --- C: APScheduler 3 -------------------------------------------------------------------------------------

def aps_jobstore(kind: str, url: str, prefix: str) -> Any:
    """A persistent APScheduler job store: ``kind`` is "sqlite" / "postgres" (SQLAlchemy, ``url`` is its
    database URL) or "redis" (``url`` is the Redis URL; keys under ``prefix``)."""
    if kind == "redis":
        from apscheduler.jobstores.redis import RedisJobStore

        parts = urlsplit(url)
        return RedisJobStore(jobs_key=f"{prefix}:aps_jobs", run_times_key=f"{prefix}:aps_run_times",
                             host=parts.hostname or "127.0.0.1", port=parts.port or 6379,
                             db=int((parts.path or "/0").lstrip("/") or 0))
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(url=url, tablename=f"{prefix}_aps_jobs")


def sqlalchemy_url(kind: str, where: str) -> str:
    """A SQLAlchemy URL for a SQLite file path or a ``postgresql://`` DSN."""
    if kind == "sqlite":
        return f"sqlite:///{where}"
    return where.replace("postgresql://", "postgresql+psycopg2://", 1)


def manual_scheduler(jobstore: Any) -> Any:
    """An APScheduler whose loop body the caller runs (``_process_jobs``); ``wakeup`` does nothing."""
    from apscheduler.schedulers.base import BaseScheduler

    class Manual(BaseScheduler):  # type: ignore[misc]
        def wakeup(self) -> None:
            pass

        def shutdown(self, wait: bool = True) -> None:
            super().shutdown(wait)

    sched = Manual(timezone=UTC, jobstores={"default": jobstore}, job_defaults={"misfire_grace_time": 3600})
    return sched


def register_aps(sched: Any, crons: list[str], redis_url: str, queue: str) -> None:
    """``add_job`` for each of ``crons``, a function that enqueues to RQ (a persistent store keeps them pickled)."""
    from apscheduler.triggers.cron import CronTrigger

    for i, cron in enumerate(crons):
        sched.add_job("benchmarks.peers:enqueue_rq", CronTrigger.from_crontab(cron, timezone=UTC),
                      args=(redis_url, queue), kwargs=job_kwargs(i), id=f"job_{i:06d}", replace_existing=True)


class APSPeer:
    """APScheduler 3 with ``n`` cron jobs in a persistent store, started, none due."""

    def __init__(self, kind: str, url: str, redis_url: str, prefix: str, n: int):
        self.kind, self.prefix, self.redis_url = kind, prefix, redis_url
        self.sched = manual_scheduler(aps_jobstore(kind, url, prefix))
        self.sched.start()
        register_aps(self.sched, crons_for(n), redis_url, f"{prefix}:default")
        # the "*/2 * * * *" jobs would come due during a long run: push every job's next run a day ahead
        store = self.sched._lookup_jobstore("default")
        later = datetime.now(UTC) + timedelta(days=1)
        for job in store.get_all_jobs():
            job.next_run_time = later
            store.update_job(job)

    def loop_body(self) -> float | None:
        """``BlockingScheduler``'s loop body: process due jobs, return the wait until the next one."""
        return self.sched._process_jobs()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.sched.remove_all_jobs()
        self.sched.shutdown(wait=False)
        clear_redis_prefix(_conn(self.redis_url), self.prefix)


# --- D: Frappe's algorithm --------------------------------------------------------------------------------

class FrappeEmulation:
    """One Frappe site's ``Scheduled Job Type`` table and the per-tick loop over it (see the module docstring).

    ``kind`` is "sqlite" (``where`` a file path) or "postgres" (``where`` a DSN of a database of its own)."""

    TABLE = "tab_scheduled_job_type"

    def __init__(self, kind: str, where: str, redis_url: str, prefix: str):
        self.kind, self.where, self.prefix, self.redis_url = kind, where, prefix, redis_url
        self.ph = "?" if kind == "sqlite" else "%s"

    def connect(self) -> Any:
        if self.kind == "sqlite":
            return sqlite3.connect(self.where, detect_types=sqlite3.PARSE_DECLTYPES)
        import psycopg2

        return psycopg2.connect(self.where)

    def create(self) -> None:
        db = self.connect()
        cur = db.cursor()
        cur.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} (name VARCHAR(140) PRIMARY KEY, method TEXT, "
                    "frequency TEXT, cron_format TEXT, last_execution TIMESTAMP, stopped INTEGER DEFAULT 0, "
                    "creation TIMESTAMP)")
        # an index for sync_jobs' existence check (without it each check scans the table: quadratic in N)
        cur.execute(f"CREATE INDEX IF NOT EXISTS {self.TABLE}_method ON {self.TABLE} (method)")
        cur.execute("CREATE TABLE IF NOT EXISTS tab_settings (key VARCHAR(140) PRIMARY KEY, value TEXT)")
        cur.execute(f"INSERT INTO tab_settings VALUES ({self.ph}, {self.ph})", ("enable_scheduler", "1"))
        db.commit()
        db.close()

    def register(self, crons: list[str], last_execution: datetime | None = None) -> int:
        """Frappe's ``sync_jobs``: per job an existence check and an insert; one commit at the end."""
        db = self.connect()
        cur = db.cursor()
        now = datetime.now(UTC).replace(tzinfo=None)
        added = 0
        for i, cron in enumerate(crons):
            method = f"app{i % 100}.tasks.job_{i:06d}"
            cur.execute(f"SELECT name FROM {self.TABLE} WHERE method = {self.ph} AND frequency = {self.ph} "
                        f"AND cron_format = {self.ph}", (method, "Cron", cron))
            if cur.fetchone() is None:
                cur.execute(f"INSERT INTO {self.TABLE} (name, method, frequency, cron_format, last_execution, "
                            f"creation) VALUES ({', '.join([self.ph] * 6)})",
                            (".".join(method.split(".")[-2:]), method, "Cron", cron, last_execution, now))
                added += 1
        db.commit()
        db.close()
        return added

    def register_hooks(self, apps_dir: str, apps: list[str]) -> int:
        """Frappe 14/15's ``sync_jobs`` over the apps' own hooks (see the module docstring); the count inserted.

        Entries in hookscheduler's dict form (``{"method": ...}``) are read as their method: Frappe has no such
        form, and the point is the same number of rows, methods and imports."""
        import importlib
        import sys

        sys.path.insert(0, apps_dir)
        merged: dict[str, Any] = {}  # frappe.get_hooks: every app's hooks.py imported, the events merged
        for app in apps:
            events = getattr(importlib.import_module(f"{app}.hooks"), "scheduler_events", {})
            for section, value in events.items():
                if isinstance(value, dict):
                    crons = merged.setdefault(section, {})
                    for cron, methods in value.items():
                        crons.setdefault(cron, []).extend(methods)
                else:
                    merged.setdefault(section, []).extend(value)
        db = self.connect()
        cur = db.cursor()
        now = datetime.now(UTC).replace(tzinfo=None)
        added = 0

        def insert_single_event(frequency: str, event: Any, cron_format: str = "") -> None:
            nonlocal added
            method = event["method"] if isinstance(event, dict) else event
            module, _, attr = method.rpartition(".")
            try:  # frappe.get_attr
                getattr(importlib.import_module(module), attr)
            except Exception as exc:  # Frappe: a yellow warning, and the event is skipped
                print(f"{method} is not a valid method: {exc}")
                return
            cur.execute(f"SELECT name FROM {self.TABLE} WHERE method = {self.ph}", (method,))
            if cur.fetchone() is None:
                cur.execute(f"INSERT INTO {self.TABLE} (name, method, frequency, cron_format, last_execution, "
                            f"creation) VALUES ({', '.join([self.ph] * 6)})",
                            (method, method, frequency, cron_format, None, now))
                added += 1

        for event_type, events in merged.items():  # insert_events
            if isinstance(events, dict):
                for cron_format, methods in events.items():
                    for event in methods:
                        insert_single_event("Cron", event, cron_format)
            else:
                for event in events:
                    insert_single_event(event_type.replace("_", " ").title(), event)
        cur.execute(f"SELECT name, method, frequency, cron_format FROM {self.TABLE}")  # clear_events' read
        cur.fetchall()
        db.commit()
        db.close()
        return added

    def tick(self, now: datetime | None = None) -> int:
        """One tick for this site: returns how many jobs it enqueued."""
        from croniter import croniter
        from rq import Queue

        conn = _conn(self.redis_url)
        now = now or datetime.now(UTC).replace(tzinfo=None)
        db = self.connect()  # Frappe connects to each site's database on every tick, and closes it after
        try:
            cur = db.cursor()
            cur.execute("SELECT value FROM tab_settings WHERE key = 'enable_scheduler'")
            row = cur.fetchone()
            if row is None or row[0] != "1":
                return 0
            cur.execute(f"SELECT name, method, cron_format, last_execution, creation FROM {self.TABLE} "
                        "WHERE stopped = 0")
            enqueued = 0
            for name, method, cron, last, creation in cur.fetchall():
                if croniter(cron, _as_dt(last or creation)).get_next(datetime) > now:
                    continue
                # Frappe's id is "<site>::scheduled_job::<method>"; RQ 2 accepts only letters, digits, "_" and "-"
                # in an id (it raised whenever one of these crons came due during a run): same id, spelled so
                job_id = _RQ_UNSAFE.sub("_", f"{self.prefix}::scheduled_job::{method}")
                status = conn.hget(f"rq:job:{job_id}", "status")
                if status in (b"queued", b"started"):
                    continue
                queue = Queue(f"{self.prefix}:default", connection=conn)
                queue.enqueue(noop, kwargs={"job_type": method}, job_id=job_id, job_timeout=300)
                cur.execute(f"UPDATE {self.TABLE} SET last_execution = {self.ph} WHERE name = {self.ph}", (now, name))
                enqueued += 1
            db.commit()
            return enqueued
        finally:
            db.close()

    def close(self) -> None:
        clear_redis_prefix(_conn(self.redis_url), self.prefix)
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.where}{suffix}").unlink(missing_ok=True)


def _as_dt(value: Any) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[no-any-return]


def timed_loop(body: Callable[[], Any], count: int) -> float:
    """Mean milliseconds of ``count`` calls of ``body``."""
    import time

    t0 = time.perf_counter()
    for _ in range(count):
        body()
    return (time.perf_counter() - t0) * 1000.0 / count
