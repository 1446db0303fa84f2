"""A warm PostgreSQL connection that a worker prepares, while one work horse runs, for the next one.

RQ forks a work horse per job, and a horse cannot use a connection its parent uses (two processes writing one
socket corrupt the session). So each horse used to connect to PostgreSQL itself: a new server backend per
job, whose first statements then load the catalog entries of the ledger's tables and indexes. Measured on a
quiet 2-core machine, that was 6-7 ms of a scheduled run's 8 ms inside the horse, most of hookscheduler's
overhead over a plain RQ worker (benchmark workload 6).

Instead, right after it forks a horse, the worker opens one connection for the *next* horse and warms it
(:func:`hookscheduler.runlog.warm_up` plans the start and finish statements, which loads those catalog
entries), while the horse it just forked does its work on the other core. The next horse inherits the
connection across ``fork()`` and adopts it as its database connection (:func:`take`, called by
:class:`hookscheduler.db.PostgresqlDatabase`), and the parent lets go of its own copy right after the fork
(:func:`handed_over`). Why this is safe:

* *One user per session.* The parent never sends anything on a spare after the warm-up, and it lets go of
  its copy of the socket by pointing the descriptor at ``/dev/null`` before closing it (:func:`_detach`),
  so even libpq's goodbye message goes nowhere: the horse's session is untouched. A horse adopts a spare
  only if its *parent* made it (``getppid``), at most once: a worker of a pool (whose parent process is the
  pool), a job's own subprocess or the parent itself can never adopt one. A spare the horse does not adopt
  (a job of another site) dies with the horse, whose ``os._exit`` sends nothing either.
* *Nothing held on the server.* A horse killed mid-transaction closes its descriptor as it dies; the
  parent's copy is already gone, so the server sees the socket close and rolls the transaction back at once.
* *Never worse than connecting.* A spare that went stale (the server restarted, an idle timeout) fails on
  its first statement, and the horse's ledger write is retried once on a fresh connection, as for any
  dropped connection (:func:`hookscheduler.runner._ledger`). A spare that cannot be made quickly (the server
  is down, a table is locked: ``connect_timeout`` 2 s, ``lock_timeout`` 100 ms) is given up, and not tried
  again for :data:`RETRY_AFTER` seconds: the horses connect for themselves meanwhile.

The cost: one idle server connection per worker between jobs, as with a pool of one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("hookscheduler.pgspare")

RETRY_AFTER = 30.0  # seconds before trying again to make a spare for a database that refused one
CONNECT_TIMEOUT = 2  # seconds; libpq's minimum


@dataclass
class _Spare:
    key: str  # the database's URL, as the horse's site will open it
    owner: int  # the pid of the process that made it (the horse's parent)
    conn: Any  # a psycopg2 connection, autocommit, warmed
    backend_pid: int


_spare: _Spare | None = None
_refused_until: dict[str, float] = {}
#: Backend pids of the spares this process made (tests read it to check the horses used them).
made: list[int] = []


def take(key: str) -> Any | None:
    """In a work horse: the warm connection its parent made for ``key``, once; otherwise None."""
    global _spare
    spare = _spare
    if spare is None or spare.key != key or spare.owner != os.getppid():
        return None
    _spare = None
    return spare.conn


def handed_over() -> None:
    """In the worker, right after a fork: the new horse owns the spare now; let go of this process's copy."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        _detach(spare.conn)


def replenish(key: str, connect: Callable[[], Any], warm: Callable[[Any], None]) -> bool:
    """In the worker: make and warm a spare for ``key`` (unless one is there). False when it could not."""
    global _spare
    if _spare is not None and _spare.key == key:
        return True
    if _refused_until.get(key, 0.0) > time.monotonic():
        return False
    if _spare is not None:  # made for another database since the last fork: only this process has it
        _close_quietly(_spare.conn)
        _spare = None
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
    backend = int(conn.get_backend_pid())
    _spare = _Spare(key, os.getpid(), conn, backend)
    made.append(backend)
    del made[:-100]
    return True


def discard() -> None:
    """Close the spare (the worker is stopping, or a test is done)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        _close_quietly(spare.conn)
    _refused_until.clear()


def _detach(conn: Any) -> None:
    """Drop this process's copy of a connection another process now owns, without a byte on its socket: the
    descriptor is pointed at /dev/null first, so libpq's terminate message (and TLS's close) go there."""
    try:
        fd = conn.fileno()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except Exception as exc:  # no descriptor (already closed): nothing to protect
        log.debug("detaching a handed-over connection: %s", exc)
    _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception as exc:
        log.debug("closing a spare connection: %s", exc)
