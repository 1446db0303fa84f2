"""Shared set-up for the tick workloads (1, 2, 3, 7): a throw-away bench with one site, its database filled
with N scheduled jobs directly (migrate is workload 5's subject, not these), and clean-up of everything made.

Isolation: every site gets its own ``bench_id`` (``hsb<pid>_<tag>``), so its RQ queues and job ids live under
that prefix in the runner's reserved Redis db and are deleted afterwards; on PostgreSQL it gets a database of
its own (``hs_bench_<pid>_<tag>``), dropped afterwards; on SQLite a file under the runner's scratch folder.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import peewee as pw
import psycopg2
import redis

from hookscheduler.broker.connection import reply_text
from hookscheduler.broker.keys import queue_name
from hookscheduler.context import SiteContext, open_site
from hookscheduler.store.database import ensure_schema
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType
from hookscheduler.timing.calendar import next_slot

from ._hsbench import redis_cleanup
from .common import BenchConfig

#: The due slot every workload serves: a Monday, 10:00 UTC (every hourly, 5-minute, ... cron fires then).
SLOT = datetime(2026, 1, 5, 10, 0)
NOW = SLOT + timedelta(seconds=2)

#: Crons that fire at SLOT (due rows are spread over them) and a pool of crons for the rest of the table.
DUE_CRONS = ("0 * * * *", "*/5 * * * *", "*/15 * * * *", "0 10 * * *", "0 */2 * * *", "0 10 * * 1",
             "*/10 * * * *", "0 9-17 * * 1-5", "0,30 * * * *", "0 10 5 1 *")


def cron_pool() -> list[str]:
    """About 200 distinct, realistic expressions (hourly at a minute, daily at a time, weekly, every k min)."""
    pool = [f"{m} * * * *" for m in range(1, 60, 3)]
    pool += [f"{m} {h} * * *" for h in range(0, 24, 2) for m in (7, 23, 41, 55)]
    pool += [f"{m} {h} * * {d}" for d in range(7) for h in (3, 11, 19) for m in (12, 34)]
    pool += [f"*/{k} * * * *" for k in (2, 3, 4, 6, 7, 11, 13)]
    pool += [f"{m} {h} {dom} * *" for dom in (1, 10, 20, 28) for h in (1, 13) for m in (5, 45)]
    pool += list(DUE_CRONS)
    return pool


def admin_dsn(pg_dsn: str, dbname: str) -> str:
    parts = urlsplit(pg_dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@dataclass
class BenchSite:
    """One bench with one site, ready for tick passes."""

    ctx: SiteContext
    conn: redis.Redis
    bench_id: str
    kind: str
    path: Path
    pg_db: str | None
    pg_dsn: str
    due_ids: list[int] = field(default_factory=list)

    @property
    def db(self) -> pw.Database:
        return self.ctx.database()

    def queue_len(self, queue: str = "default") -> int:
        return int(self.conn.llen(f"rq:queue:{queue_name(self.bench_id, queue)}"))

    def queue_ids(self, queue: str = "default") -> list[str]:
        return [reply_text(v) for v in self.conn.lrange(f"rq:queue:{queue_name(self.bench_id, queue)}", 0, -1)]

    def clear_redis(self) -> None:
        clear_redis_prefix(self.conn, self.bench_id)

    def reset(self, due_at: datetime = SLOT) -> None:
        """Put the due rows back on their slot and forget the runs (log rows, RQ jobs): the next pass repeats
        the same work."""
        db = self.db
        with db.atomic():
            ScheduledJobLog.delete().execute()
            for i in range(0, len(self.due_ids), 500):
                (ScheduledJobType.update(next_execution=due_at)
                 .where(ScheduledJobType.id.in_(self.due_ids[i:i + 500])).execute())
        if isinstance(db, pw.PostgresqlDatabase):  # what autovacuum does between two slots in production
            db.execute_sql("VACUUM scheduled_job_log, scheduled_job_type")  # type: ignore[no-untyped-call]
        self.clear_redis()

    def close(self) -> None:
        self.ctx.close()
        self.clear_redis()
        if self.pg_db:
            drop_pg_database(self.pg_dsn, self.pg_db)


def clear_redis_prefix(conn: redis.Redis, prefix: str) -> None:
    """Every key (and RQ queue registration) whose name contains ``prefix``."""
    redis_cleanup(conn, prefix)


def _pg_admin(pg_dsn: str) -> Any:
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    return conn


def create_pg_database(pg_dsn: str, name: str) -> None:
    admin = _pg_admin(pg_dsn)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def drop_pg_database(pg_dsn: str, name: str) -> None:
    admin = _pg_admin(pg_dsn)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def make_site(cfg: BenchConfig, tag: str, kind: str, **settings: Any) -> BenchSite:
    """A bench folder ``cfg.workdir/<tag>`` with one site on ``kind`` ("sqlite" | "postgres"), schema made."""
    bench_id = f"hsb{os.getpid()}_{tag}"
    path = cfg.workdir / tag
    (path / "sites").mkdir(parents=True, exist_ok=True)
    (path / "apps").mkdir(exist_ok=True)
    pg_db = None
    conf: dict[str, Any] = {"redis_queue": cfg.redis_url, "bench_id": bench_id, "time_zone": "UTC", **settings}
    if kind == "postgres":
        pg_db = f"hs_bench_{os.getpid()}_{tag}".lower()
        create_pg_database(cfg.pg_dsn, pg_db)
        conf["db_url"] = admin_dsn(cfg.pg_dsn, pg_db)
    else:
        sqlite = path / "scheduler.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite}{suffix}").unlink(missing_ok=True)
        conf["db_url"] = f"sqlite:///{sqlite}"
    (path / "sites" / "common_site_config.json").write_text(json.dumps(conf))
    ctx = open_site(str(path))
    db = ctx.database(create=True, require_schema=False)
    ensure_schema(db)
    conn = redis.Redis.from_url(cfg.redis_url)
    site = BenchSite(ctx, conn, bench_id, kind, path, pg_db, cfg.pg_dsn)
    site.clear_redis()
    return site


def populate(site: BenchSite, n: int, due: int, *, now: datetime = NOW, due_at: datetime = SLOT,
             crons: list[str] | None = None, frequency: str = "Cron", **columns: Any) -> None:
    """Insert ``n`` jobs, ``due`` of them due at ``due_at`` (spread over crons that fire then), the others on
    their next real slot after ``now`` (spread over ``crons``)."""
    pool = crons or cron_pool()
    clock = site.ctx.calendar
    nxt: dict[str, datetime] = {}
    rows: list[dict[str, Any]] = []
    stamp = now - timedelta(days=1)
    for i in range(n):
        is_due = i < due
        cron = DUE_CRONS[i % len(DUE_CRONS)] if is_due else pool[i % len(pool)]
        if frequency != "Cron":
            cron = ""
        if is_due:
            when = due_at
        else:
            if cron not in nxt:
                nxt[cron] = next_slot(frequency, cron, now, clock)
            when = nxt[cron]
        rows.append({"name": f"app{i % 100}.tasks.job_{i:06d}", "app": f"app{i % 100}",
                     "method": f"app{i % 100}.tasks.job_{i:06d}", "frequency": frequency, "cron_format": cron,
                     "queue": "default", "timeout": 300, "next_execution": when,
                     "created_at": stamp, "modified_at": stamp, **columns})
    db = site.db
    with db.atomic():
        for i in range(0, len(rows), 1000):
            ScheduledJobType.insert_many(rows[i:i + 1000]).execute()
    site.due_ids = [r.id for r in ScheduledJobType.select(ScheduledJobType.id)
                    .where(ScheduledJobType.next_execution <= now)]
    analyze(db)


def analyze(db: pw.Database) -> None:
    """Fresh planner statistics (autovacuum would do this in production shortly after a bulk load)."""
    db.execute_sql("ANALYZE")  # type: ignore[no-untyped-call]
    if isinstance(db, pw.SqliteDatabase):
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[no-untyped-call]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(milliseconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000.0, out


def fmt_n(n: int) -> str:
    return f"{n:,}"


def ratio(a: list[float], b: list[float]) -> float:
    """median(a) / median(b)."""
    mb = statistics.median(b)
    return statistics.median(a) / mb if mb else float("inf")


@contextmanager
def sites(*made: BenchSite) -> Iterator[None]:
    try:
        yield
    finally:
        for s in made:
            s.close()
