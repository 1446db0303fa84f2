"""``doctor``: every reason scheduled jobs might not be running, checked at once, each problem with a hint.

A check never stops the others: an unreachable Redis or a missing database is itself a finding, and the
checks that need it say they were not run. The result is ``{"ok", "checks", "problems"}`` (a JSON shape
scripts rely on); ``ok`` is False, and the command exits 1, when any problem is found.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
import redis

from ..broker.connection import check_redis, redis_for
from ..config import Site, config_notes, unknown_key_notes
from ..context import SiteContext
from ..exceptions import BenchError, HookSchedulerError, ReadOnlyDatabase, SchemaError, ServiceUnavailable
from ..schedule.excursion import last_excursion
from ..schedule.rows import FIX_HINT, row_problem
from ..security.permissions import loose_permissions
from ..security.redact import redact
from ..states import SchedulerStatus
from ..store import database as dbmod
from ..store import job_reads, ledger_reads, store_for
from ..store.models import utcnow
from ..store.shared import shared_databases, shared_problem, with_bench_sites
from ..timing.clock import SIM
from .queues import pending_counts
from .rq_view import workers_per_queue
from .scheduler import Driver, driver, fresh, heartbeats, last_tick, last_tick_command, overdue_after, scheduler_state

FAILED_WINDOW = timedelta(hours=24)


@dataclass
class Check:
    site: str
    name: str
    #: True passed, False a problem, None not checked (what it needs failed: that failure is the problem)
    ok: bool | None
    detail: str
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site, "check": self.name, "ok": self.ok, "detail": redact(self.detail),
                "hint": self.hint}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check passed; a check that could not run is not a pass."""
        return all(c.ok is True for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.ok is None]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.as_dict() for c in self.checks],
                "problems": [{"site": p.site, "check": p.name, "problem": redact(p.detail), "hint": p.hint}
                             for p in self.problems]}


def _fmt(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "never"


def diagnose(contexts: list[SiteContext], now: datetime | None = None) -> Report:
    """Run every check on every site."""
    now = now or utcnow()
    report = Report()
    shared = {s.name: group for group in shared_databases(with_bench_sites([c.site for c in contexts]))
              for s in group}
    for ctx in contexts:
        _site(ctx, report, now, shared.get(ctx.name))
    return report


def _site(ctx: SiteContext, report: Report, now: datetime, shared: list[Site] | None = None) -> None:
    site = ctx.name

    def add(name: str, ok: bool | None, detail: str, hint: str | None = None) -> None:
        report.checks.append(Check(site, name, ok, detail, None if ok else hint))

    conn = _redis(ctx, add)
    db_ok = _database(ctx, add)
    if shared is not None:  # the other site's jobs and ledger are this one's: every other check is of both
        what, fix = shared_problem(shared)
        add("own database", False, what, fix + f" (`schedule` serves only site {shared[0].name} meanwhile)")
    notes = config_notes(ctx.site)
    if notes:  # accepted, but Frappe would act on them: never silent
        add("frappe keys", True, "; ".join(notes))
    others = unknown_key_notes(ctx.site)
    if others:  # an app's own keys, most likely: a note, not a problem (a misspelt key of ours is refused)
        add("other keys", True, "; ".join(others))
    _guard(add, "permissions", lambda: _permissions(ctx, add))
    late = overdue_after(ctx.site.tick_interval)
    # a check whose service is down is listed as not run (SKIP, counted in the summary), never left out: a
    # missing line reads as "nothing to check there"
    no_db = ("not checked: the database is unavailable", "fix the database first (see the database check)")
    no_redis = ("not checked: Redis unreachable", "fix Redis first (see the redis check)")
    if db_ok:
        _guard(add, "scheduler", lambda: _scheduler(ctx, add))
    else:
        add("scheduler", None, *no_db)
    if conn is not None:
        _guard(add, "scheduler process", lambda: _process(ctx, conn, add, now, late))
    else:
        add("scheduler process", None, *no_redis)
        add("last tick", None, *no_redis)
    for name, check in (("overdue jobs", lambda: _overdue(add, now, late)), ("job rows", lambda: _bad_rows(add)),
                        ("clock excursion", lambda: _excursion(add, now)), ("failed runs", lambda: _failed(add, now))):
        if db_ok:
            _guard(add, name, check)
        else:
            add(name, None, *no_db)
    if conn is not None:
        _guard(add, "clock", lambda: _clock(conn, add))
        _guard(add, "queues", lambda: _queues(ctx, conn, add, db_ok))
    else:
        add("queues", None, *no_redis)


def _guard(add: Callable[..., None], name: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except (HookSchedulerError, pw.PeeweeException, sqlite3.Error, redis.exceptions.RedisError) as exc:
        add(name, False, f"could not be checked: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            "run `hookscheduler doctor` again; if it persists, check the database and Redis")


def _redis(ctx: SiteContext, add: Callable[..., None]) -> redis.Redis | None:
    url = ctx.site.redis_url
    try:
        conn = redis_for(ctx.site)
        version = check_redis(conn, url)
    except HookSchedulerError as exc:
        add("redis", False, str(exc), "start Redis, or fix redis_queue / $HOOKSCHEDULER_REDIS_URL and rq_password")
        return None
    add("redis", True, f"Redis {version} reachable at {redact(url)}")
    return conn


def _permissions(ctx: SiteContext, add: Callable[..., None]) -> None:
    loose = loose_permissions(ctx.site)
    if loose:
        add("permissions", False, "; ".join(loose),
            "make them owner-only: chmod 600 on the files, chmod 700 on the database folder (or the umask you "
            "intend, if other users must share them)")
    else:
        add("permissions", True, "database and config files holding secrets are owner-only")


def _database(ctx: SiteContext, add: Callable[..., None]) -> bool:
    url = redact(ctx.site.db_url)
    try:
        db = ctx.database(require_schema=False)
        version = dbmod.schema_version(db)
    except (HookSchedulerError, pw.PeeweeException) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        corrupt = any(sign in detail for sign in _CORRUPT)
        if isinstance(exc, ServiceUnavailable) and exc.cause:  # its message repeats the URL and a generic fix
            detail = f"cannot connect: {exc.cause}"
        add("database", False, f"{url}: {'corrupt: ' if corrupt else ''}{detail}",
            _RESTORE if corrupt else _db_hint(exc, detail))
        return False
    problems = _integrity(db)
    if problems:
        add("database", False, f"{url}: corrupt: {problems}", _RESTORE)
        return False
    if version != dbmod.SCHEMA_VERSION:
        newer = version > dbmod.SCHEMA_VERSION
        add("database", False, f"{url}: schema version {version}, expected {dbmod.SCHEMA_VERSION}",
            "upgrade hookscheduler on this host: a newer one migrated this database (do not run this one's "
            "`migrate`, it refuses)" if newer else "run `hookscheduler migrate` to bring the schema up to date")
        return False
    jobs = job_reads.active_count()
    add("database", True, f"{url}: schema version {version}, {jobs} job(s)")
    try:  # reads work; a database that refuses writes still stops every run from being recorded
        dbmod.check_writable(db)
    except ReadOnlyDatabase as exc:
        add("writable", False, exc.cause or str(exc), dbmod.read_only_fix(db))
    else:
        add("writable", True, "accepts writes (checked without writing)")
    return True


#: What a PostgreSQL server that cannot be reached says (libpq's wording), and what a missing database says.
_UNREACHABLE = ("connection refused", "could not translate host name", "timeout expired", "no route to host",
                "network is unreachable", "could not connect to server", "is the server running")
_AUTH = ("password authentication failed", "no password supplied", "role ")


def _db_hint(exc: Exception, detail: str) -> str:
    """The fix that fits why the database could not be opened: ``migrate`` creates a missing SQLite file and
    the schema, but it cannot start a server, create a PostgreSQL database or fix a password."""
    low = detail.lower()
    if isinstance(exc, SchemaError):
        return "run `hookscheduler migrate` to create it"
    if isinstance(exc, BenchError):
        return "pass --bench PATH or set $HOOKSCHEDULER_BENCH to your bench folder"
    if "does not exist" in low and "database" in low:
        return ("create the database on the server (createdb, or CREATE DATABASE), or fix db_url's database name; "
                "then run `hookscheduler migrate`")
    if any(sign in low for sign in _UNREACHABLE):
        return ("the database server refuses or does not answer connections: check that it is running and that "
                "db_url's host and port are right")
    if any(sign in low for sign in _AUTH):
        return "check the user and password in db_url (or ~/.pgpass), and that the role exists"
    if "sqlite" in low:
        return "check db_url's path and the permissions of the file and its folder"
    return "check db_url and that the database server is up"


#: How SQLite words a damaged file.
_CORRUPT = ("malformed", "not a database", "disk image", "corrupt")
_RESTORE = ("stop the scheduler and workers, then restore the database from a backup (or salvage it with "
            "`sqlite3 FILE .recover`) and run `hookscheduler migrate`")


def _integrity(db: pw.Database) -> str | None:
    """The database's first problems reading its pages, or None (:meth:`~hookscheduler.store.Store.integrity`)."""
    return store_for(db).integrity()


def _scheduler(ctx: SiteContext, add: Callable[..., None]) -> None:
    """The switches (paused, disabled): read from the database."""
    status, reason = scheduler_state(ctx)
    if status == SchedulerStatus.ENABLED:
        add("scheduler", True, "scheduler enabled")
    else:
        hint = ("`hookscheduler scheduler resume`" if status == SchedulerStatus.PAUSED else
                "`hookscheduler scheduler enable` (or clear maintenance_mode / disable_scheduler in site_config.json)")
        add("scheduler", False, f"scheduler {status}: {reason}", f"if that is not intended: {hint}")


def _process(ctx: SiteContext, conn: redis.Redis, add: Callable[..., None], now: datetime, late: timedelta) -> None:
    """The ``schedule`` processes and the last tick: read from Redis only, so checked with the database down."""
    procs = [h for h in heartbeats(conn, ctx.bench.bench_id) if h.serves(ctx.name)]
    where = ", ".join(f"{h.host}:{h.pid}" for h in procs)
    tick = last_tick(conn, ctx.bench.bench_id, ctx.name)
    by = driver(bool(procs), tick, last_tick_command(conn, ctx.bench.bench_id, ctx.name), now, late)
    start = ("start `hookscheduler schedule` (or `hookscheduler start` in development), or run `hookscheduler tick` "
             "every minute from cron")
    if by == Driver.TICK:  # a bench driven by `hookscheduler tick` from cron has no long-running process
        add("scheduler process", True, "no `schedule` process, but scheduling passes run (`hookscheduler tick` "
            "from cron or a timer)")
    elif by == Driver.STOPPED:
        add("scheduler process", False, "no `schedule` process alive: the one that made the last pass "
            f"({_fmt(tick)}) has stopped", start)
    else:
        add("scheduler process", bool(procs),
            f"{len(procs)} `schedule` process(es) alive{': ' + where if where else ''}", start)
    ok = fresh(tick, now, late)
    mins = int(late.total_seconds() // 60)
    add("last tick", ok, f"last tick {_fmt(tick)}" + ("" if ok or tick is None else f" (over {mins} min ago)"),
        "no scheduling pass completed recently: check that `hookscheduler schedule` runs and its log")


def _overdue(add: Callable[..., None], now: datetime, late: timedelta) -> None:
    count, row = job_reads.overdue(now - late)
    if row is None:
        add("overdue jobs", True, f"no job is due for more than {int(late.total_seconds() // 60)} min")
        return
    add("overdue jobs", False,
        f"{count} job(s) overdue; oldest {row.name} due since {_fmt(row.next_execution)}",
        f"no scheduler pass is serving this site: see `hookscheduler jobs explain {row.name}`")


#: Seconds of difference between this host's clock and Redis's that doctor tolerates (NTP keeps hosts within
#: milliseconds; a round trip is well under this).
MAX_SKEW = 2.0


def _clock(conn: redis.Redis, add: Callable[..., None]) -> None:
    """This host's clock against Redis's ``TIME``, the one clock every process of the bench can see. Liveness
    never compares hosts' clocks, but slots are computed on each scheduler's own: a scheduler ahead fires early."""
    if SIM is not None:  # a simulated clock (chaos runs) is ahead of every real one by design
        add("clock", True, "simulated clock: not compared with Redis")
        return
    before = utcnow()
    seconds, micros = conn.time()
    after = utcnow()
    redis_now = datetime(1970, 1, 1) + timedelta(seconds=int(seconds), microseconds=int(micros))
    skew = ((before + (after - before) / 2) - redis_now).total_seconds()
    if abs(skew) <= MAX_SKEW:
        add("clock", True, f"within {MAX_SKEW:g} s of Redis's ({skew:+.3f} s)")
        return
    side = "ahead of" if skew > 0 else "behind"
    add("clock", False, f"this host's clock is {abs(skew):.0f} s {side} Redis's: slots fire {abs(skew):.0f} s "
        f"{'early' if skew > 0 else 'late'} here, and times written here disagree with other hosts'",
        "keep every host's clock in sync (chrony or systemd-timesyncd), the Redis host's too")


#: How long doctor reports a clock excursion after it was found and repaired.
EXCURSION_SHOWN = timedelta(days=1)


def _excursion(add: Callable[..., None], now: datetime) -> None:
    found = last_excursion()
    if not found or now - datetime.fromisoformat(str(found["detected_at"])) > EXCURSION_SHOWN:
        add("clock excursion", True, "no step ran under a clock ahead of the others in the last day")
        return
    add("clock excursion", False,
        f"at {found['detected_at']} a step was found to have run at {found['ahead']} (a clock ahead, then set "
        f"back): {found['jobs']} job(s) moved back to their first slot not yet decided, {found.get('early', 0)} "
        "run(s) decided under the clock ahead kept (each runs once, early)",
        "find the host whose clock jumped (its logs, NTP's) and keep clocks in sync; the "
        "schedule itself is already recovered")


def _bad_rows(add: Callable[..., None]) -> None:
    """Rows the scheduler skips because they cannot be acted on (changed with SQL): the same check as the pass."""
    crons: dict[str, str | None] = {}
    bad = []
    for row in job_reads.active():
        problem = row_problem(row.frequency, row.cron_format, row.timeout, row.catchup, row.catchup_limit,
                              row.overlap, row.stopped, row.next_execution, crons)
        if problem:
            bad.append(f"{row.name}: {problem}")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; ... and {len(bad) - 5} more" if len(bad) > 5 else "")
        add("job rows", False, f"{len(bad)} job(s) skipped by the scheduler: {shown}", FIX_HINT)
    else:
        add("job rows", True, "every job's row is valid")


def _failed(add: Callable[..., None], now: datetime) -> None:
    n, top = ledger_reads.failures_since(now - FAILED_WINDOW, 5)
    names = ", ".join(f"{job} x{count}" for job, count in top)
    add("failed runs", n == 0, f"{n} failed run(s) in the last 24 h" + (f", most: {names}" if names else ""),
        "see `hookscheduler jobs history --status failed --since 24h`")


def _queues(ctx: SiteContext, conn: redis.Redis, add: Callable[..., None], db_ok: bool) -> None:
    bench_id = ctx.bench.bench_id
    queues = list(ctx.site.queues)
    counts = pending_counts(conn, bench_id, ctx.name, queues)
    workers = workers_per_queue(conn, bench_id, queues)
    used: set[str] = set()
    if db_ok:
        used = job_reads.queues_in_use()
    for q in queues:
        c = counts["queues"][q]
        detail = (f"queue {q}: {workers[q]} worker(s), {c['queued']} queued, {c['started']} started, "
                  f"{c['failed']} failed, {c['scheduled']} scheduled")
        needed = c["queued"] > 0 or q in used
        if not db_ok and workers[q] == 0 and not needed:  # whether a job sends to it is in the database
            add(f"queue {q}", None, f"{detail}; whether jobs use it is not checked: the database is unavailable",
                "fix the database first (see the database check)")
            continue
        add(f"queue {q}", workers[q] > 0 or not needed, detail,
            f"start a worker: `hookscheduler worker --queue {q}`")
    total = counts["total"]
    add("failed jobs", True, f"{total['failed']} failed job(s) kept by RQ for this site")


__all__ = ["Check", "Report", "diagnose", "overdue_after"]
