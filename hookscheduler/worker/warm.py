"""Each site's database kept warm for the work horses a worker forks: :class:`WarmDatabaseWorker`.

RQ forks a work horse per job, and a horse that connects to PostgreSQL for itself starts a new server backend
per job, whose first statements load the catalog entries of the ledger's tables and indexes: most of
hookscheduler's cost per run over a plain RQ worker (benchmark workload 6; figures in CHANGELOG.md). So the
worker keeps one warm connection (the *spare*) and lends it at each fork (:func:`lend`): the horse adopts it
(:func:`take`) and reports, through a byte of memory shared with its parent, whether it left it clean
(:func:`report_back`); the worker then takes it back and resets it with ``DISCARD ALL`` (:func:`take_back`), or
lets go of it without a byte on its socket (:func:`_detach`) and makes a new one while the next horse runs
(:func:`replenish`). Each function says why its part is safe. On SQLite the worker holds the database file
open instead (:func:`keep_open`), as many files as its descriptor budget allows. The cost: one idle server
connection per worker between jobs.
"""

from __future__ import annotations

import logging
import mmap
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import peewee as pw
    from rq.job import Job
    from rq.queue import Queue

log = logging.getLogger(__name__)

RETRY_AFTER = 30.0  # seconds before trying again to make a spare for a database that refused one
CONNECT_TIMEOUT = 2  # seconds; libpq's minimum
TCP_USER_TIMEOUT = 30_000  # ms: a dead peer cannot block the worker (or a horse) on a send for longer

# what a horse reports about the spare it was lent (one byte shared with its parent); PRISTINE: clean, and
# nothing but the run's own one-trip writes went out on it (see note_use)
UNKNOWN, CLEAN, UNTOUCHED, PRISTINE = 0, 1, 2, 3


@dataclass
class _Spare:
    key: str  # the database's URL, as the horse's site will open it
    owner: int  # the pid of the process that made it (the horse's parent)
    conn: Any  # a psycopg2 connection, autocommit, warmed
    backend_pid: int
    lent: bool = False  # a horse holds it (the worker must not touch it)


_spare: _Spare | None = None
_adopted: Any = None  # in a horse: the connection it took
_used = False  # in a horse: a statement other than the run's one-trip writes went out on what it took
_report: mmap.mmap | None = None  # one byte, shared by the worker and its horses
_refused_until: dict[str, float] = {}


def take(key: str) -> Any | None:
    """In a work horse: the warm connection its parent lent it for ``key``, once; otherwise None.

    Only its own horse adopts a spare: one whose *parent* made it (``getppid``), at most once. A worker of a pool
    (whose parent is the pool), a job's own subprocess or the worker itself never adopts one."""
    global _spare, _adopted, _used
    spare = _spare
    if spare is None or spare.key != key or spare.owner != os.getppid():
        return None
    _spare, _adopted, _used = None, spare.conn, False
    return spare.conn


def note_use() -> None:
    """In a work horse: a statement is about to go out on its database connection through peewee (a query, a
    transaction's ``BEGIN``, a job's own use of the raw connection through ``db.connection()``). The run's
    one-trip start and outcome writes do not count: they leave nothing in the session (``SET LOCAL`` ends
    with their implicit transaction). A horse that sent nothing else reports its connection pristine, and the
    worker lends it again without ``DISCARD ALL`` (:func:`take_back`)."""
    global _used
    _used = True


def report_back() -> None:
    """In a work horse, after its job: tell the worker whether it may take the spare back.

    One user at a time: the worker sends nothing on a lent spare, and the horse reports "clean" only after its
    job, its callbacks and RQ's bookkeeping are done, right before ``os._exit`` (which sends nothing), and only
    if libpq says the connection is open, idle (no transaction, no message in flight) and not TLS (a TLS
    session's state lives in the process that used it last). A horse killed before that reports nothing: the
    byte is reset before each fork (:func:`lend`), and the worker detaches the connection."""
    if _report is None:
        return
    if _adopted is None:
        verdict = UNTOUCHED if _spare is not None and _spare.owner == os.getppid() else UNKNOWN
    else:
        verdict = (CLEAN if _used else PRISTINE) if _clean(_adopted) else UNKNOWN
    _report[0] = verdict


def _clean(conn: Any) -> bool:
    try:
        import psycopg2.extensions as ext

        return bool(conn.closed == 0 and conn.get_transaction_status() == ext.TRANSACTION_STATUS_IDLE
                    and not conn.info.ssl_in_use)
    except Exception:
        return False


def lend() -> None:
    """In the worker, right before a fork: the next horse may report on what it is lent."""
    global _report
    if _report is None:
        _report = mmap.mmap(-1, 1)  # anonymous and shared: the horse's write is seen here
    _report[0] = UNKNOWN
    if _spare is not None:
        _spare.lent = True


def lent_out() -> None:
    """In the worker, right after a fork. A TLS spare cannot come back (the horse's TLS state is not ours):
    let go of it now, so that one is made for the next horse while this one runs."""
    global _spare
    spare = _spare
    if spare is not None and spare.lent and _tls(spare.conn):
        _spare = None
        _detach(spare.conn)


def _tls(conn: Any) -> bool:
    try:
        return bool(conn.info.ssl_in_use)
    except Exception:
        return True  # cannot tell: do not take it back


def take_back() -> None:
    """In the worker, once the horse has exited: keep the lent spare if the horse left it clean, else drop it.

    A horse that sent nothing but its run's one-trip writes (:func:`note_use`) left the session as it found it:
    kept as it is. Otherwise ``DISCARD ALL`` is the check as well as the reset (settings, prepared statements,
    temporary tables, advisory locks, ``LISTEN``: nothing of one job reaches the next): a session that is not
    as the report said fails it, and is dropped. A horse killed mid-transaction holds the server session only
    until this runs (the worker's ``waitpid`` sees the death at once): the detached socket closes and the
    server rolls back."""
    global _spare
    spare = _spare
    if spare is None or not spare.lent:
        return
    verdict = _report[0] if _report is not None else UNKNOWN
    spare.lent = False
    if verdict in (UNTOUCHED, PRISTINE):  # nothing of a job's is in the session: no reset to pay for
        return
    if verdict == CLEAN:
        try:
            spare.conn.cursor().execute("DISCARD ALL")
            return
        except Exception as exc:
            log.debug("the connection a work horse handed back failed its reset (%s); dropping it", exc)
    _spare = None
    _detach(spare.conn)


def replenish(key: str, connect: Callable[[], Any], warm: Callable[[Any], None]) -> bool:
    """In the worker: make and warm a spare for ``key`` (unless one is there). False when it could not.

    Never worse than connecting: a spare that cannot be made quickly (the server is down, a table is locked:
    ``connect_timeout`` 2 s, ``lock_timeout`` 100 ms) is given up and not tried again for :data:`RETRY_AFTER`
    seconds, while horses connect for themselves; a spare that went stale (a server restart, an idle timeout)
    fails on its first statement, and the horse's ledger write is retried once on a fresh connection, as for any
    dropped connection (:func:`hookscheduler.worker.runner._ledger`)."""
    global _spare
    if _spare is not None and _spare.key == key:
        return True
    if _refused_until.get(key, 0.0) > time.monotonic():
        return False
    if _spare is not None:  # for another database: drop it (a horse may hold it: never a byte on its socket)
        spare, _spare = _spare, None
        _detach(spare.conn)
    conn = None
    try:
        conn = connect()
        warm(conn)
    except Exception as exc:
        log.debug("no warm connection for the next work horse (%s: %s); horses connect themselves for %.0f s",
                  type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "", RETRY_AFTER)
        _refused_until[key] = time.monotonic() + RETRY_AFTER
        if conn is not None:
            _close_quietly(conn)
        return False
    _spare = _Spare(key, os.getpid(), conn, int(conn.get_backend_pid()))
    return True


def discard() -> None:
    """Drop the spare (the worker is stopping, or a test is done): detached if a horse may still hold it."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        if spare.lent:
            _detach(spare.conn)
        else:
            _close_quietly(spare.conn)
    _refused_until.clear()


def _detach(conn: Any) -> None:
    """Drop this process's copy of a connection another process may be using, without a byte on its socket:
    the descriptor is pointed at /dev/null first, so libpq's terminate message (and TLS's close) go there."""
    try:
        fd = conn.fileno()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except Exception as exc:  # no descriptor (already closed): nothing to protect
        log.debug("detaching a lent connection: %s", exc)
    _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception as exc:
        log.debug("closing a spare connection: %s", exc)


# --- SQLite ----------------------------------------------------------------------------------------------

#: SQLite files this worker holds open (never used; see :func:`keep_open`), least recently served first, and the
#: pid of that worker: a horse inherits them and must never close them (:func:`forget`).
_kept: dict[str, sqlite3.Connection] = {}
_kept_by = 0


def kept_budget() -> int:
    """How many SQLite files the worker holds open at most: the ``schedule`` loop's budget
    (:func:`hookscheduler.schedule.loop.open_sites_cap`: a third of the descriptor limit, less a reserve), as
    each held file costs three descriptors (the database, its WAL, its shared memory) and a horse inherits them
    all on top of its own. Without it a worker serving many sites runs out of descriptors (EMFILE) and its
    jobs fail."""
    from ..schedule.loop import open_sites_cap  # imported here: the store's database module imports this one

    return open_sites_cap()


def keep_open(path: str, budget: int | None = None) -> None:
    """Hold one idle connection to a SQLite site's database while the worker keeps serving that site.

    At most ``budget`` files (:func:`kept_budget`) are held: past it, the least recently served are closed
    (only this worker's connection, which no job uses: each horse opens its own). ``path`` itself, the site of
    the job just forked, is the most recently served and is never the one closed. A closed one is opened again
    when its site's next job comes.

    In WAL mode, the last connection to close a database checkpoints it and drops its shared-memory index, and the
    next one to open it must rebuild that index from the whole WAL file. Horses end with ``os._exit``, so when no
    scheduler is running on the host each horse would find no other connection and pay that recovery, the larger
    part of a no-op run's time inside the horse (CHANGELOG.md). This connection never runs a statement after the
    first read and holds no lock but SQLite's shared-memory marker; a horse inherits its descriptor and never uses
    it (it opens its own connection, as SQLite requires after a fork), and never closes it (``os._exit``)."""
    if path in _kept:
        _kept[path] = _kept.pop(path)  # the most recently served now
        return
    if not os.path.exists(path):
        return
    _evict(max(1, kept_budget() if budget is None else budget) - 1)  # room for this one first
    old_umask = os.umask(0o077)  # a -wal or -shm file it creates is owner-only, like the database
    conn = None
    try:
        conn = sqlite3.connect(path, timeout=0.1, check_same_thread=False)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # maps the WAL index
    except sqlite3.Error as exc:  # locked, not a database, no permission: the horses will say so
        log.debug("could not hold %s open: %s", path, exc)
        if conn is not None:
            conn.close()
        return
    finally:
        os.umask(old_umask)
    global _kept_by
    _kept[path], _kept_by = conn, os.getpid()


def _evict(room: int) -> None:
    """Close the least recently served held files until at most ``room`` are held. Only in the worker that
    opened them: in a horse they are its parent's (closing one would drop SQLite's locks there)."""
    if _kept_by != os.getpid():
        return
    while len(_kept) > max(0, room):
        path = next(iter(_kept))
        _kept.pop(path).close()
        log.debug("no longer holding %s open (more SQLite sites than the descriptor budget)", path)


def kept_open(path: str) -> bool:
    """Whether this worker holds ``path`` open."""
    return path in _kept


def release_kept() -> None:
    """Close every file :func:`keep_open` holds (the worker is stopping)."""
    while _kept:
        _kept.popitem()[1].close()


def forget(url: str) -> None:
    """A site's ``db_url`` changed (:func:`hookscheduler.worker.runner.worker_site`): let go of what this worker
    keeps warm for the old database (its spare, its held SQLite file, its unconnected database object), so that
    no horse is lent a connection to it and the old file is not held open for the worker's lifetime.

    Only what this process made: in a horse, which notices the change too when its worker had not yet, the spare
    and the held file are its parent's (closing them there would send a terminate message on the parent's
    socket, or drop SQLite locks under it), so nothing is done; the worker lets go of them after the fork, as it
    reads the new config for the next horse (:meth:`WarmDatabaseWorker._warm_for`). A spare lent to a horse is
    detached, never closed, as :func:`replenish` does."""
    global _spare
    spare = _spare
    if spare is not None and spare.key == url and spare.owner == os.getpid():
        _spare = None
        if spare.lent:
            _detach(spare.conn)
        else:
            _close_quietly(spare.conn)
    _refused_until.pop(url, None)
    db = _databases.pop(url, None)
    path = getattr(db, "database", None)
    if isinstance(path, str) and path in _kept and _kept_by == os.getpid():
        _kept.pop(path).close()


# --- the worker --------------------------------------------------------------------------------------------

#: The sites' databases as the worker knows them (never connected: what kind, where, and how to make a spare).
_databases: dict[str, pw.Database] = {}


class WarmDatabaseWorker:
    """An RQ worker mixin that keeps the database of the site it last ran a job for warm for the next horse:
    on PostgreSQL it lends its warm connection to each horse and takes it back when the horse left it clean,
    making one while a horse runs when there is none; on SQLite it holds the database file open (those of the
    sites it served last, within a descriptor budget). The job's site is the likeliest site of the next job."""

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        lend()
        super().fork_work_horse(job, queue)  # type: ignore[misc]  # returns in the parent only
        lent_out()
        self._warm_for(job)

    @staticmethod
    def _warm_for(job: Job) -> None:
        """In the worker, after a fork: a spare (PostgreSQL) or an open file (SQLite) for the job's site."""
        import peewee as pw  # imported here: the store's database module imports this one

        from ..store.database import PostgresqlDatabase, open_database
        from ..store.postgres import warm_up
        from . import runner

        try:
            site = job.kwargs.get("site")
            ctx = runner.worker_site(str(site)) if site else None
        except Exception:  # not one of ours, or its site does not load: the horse will say so
            return
        if ctx is None:
            return
        url = ctx.site.db_url
        db = _databases.get(url)
        if db is None:  # one (unconnected) object per URL: this runs in the worker after every fork
            db = _databases[url] = open_database(url, ctx.bench.path)
        if isinstance(db, PostgresqlDatabase):
            replenish(url, db.make_spare, warm_up)
        elif isinstance(db, pw.SqliteDatabase) and db.database != ":memory:":
            keep_open(db.database)

    def monitor_work_horse(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().monitor_work_horse(*args, **kwargs)  # type: ignore[misc]
        finally:
            take_back()

    def perform_job(self, *args: Any, **kwargs: Any) -> bool:
        """In the horse: the job, its callbacks and RQ's bookkeeping; then the report on the lent connection."""
        try:
            return bool(super().perform_job(*args, **kwargs))  # type: ignore[misc]
        finally:
            report_back()

    def teardown(self) -> None:
        if not getattr(self, "is_horse", False):
            discard()
            release_kept()
        super().teardown()  # type: ignore[misc]
