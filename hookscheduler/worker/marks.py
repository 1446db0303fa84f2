"""A run's start, recorded in Redis as well as in the ledger: one delivery of a run may start it, ever.

The work horse takes the *start mark* (``SET NX``) before anything else; a later delivery finds it, does not
run, and leaves a *refusal mark*, so that the scheduler does not read the refused delivery's RQ outcome as the
run's. The scheduler consults both before it re-sends, re-queues or settles a run. Why each is needed:
docs/exactly-once.md, invariants I5 and I7.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from ..broker.connection import reply_text
from ..broker.keys import redis_epoch_key, refused_mark_key, started_mark_key
from ..states import OUTCOMES  # what a start mark may carry besides "1" (started, outcome unknown)
from ..timing.clock import utcnow

log = logging.getLogger(__name__)

TTL = 7 * 24 * 3600  # longer than any run waits in a queue: a mark outlives every delivery of its run


def set_start_mark(conn: redis.Redis, bench_id: str, rq_job_id: str) -> bool:
    """True for the first delivery of a run (and when Redis cannot say: the job runs, Frappe #41245)."""
    try:
        return bool(conn.set(started_mark_key(bench_id, rq_job_id), "1", nx=True, ex=TTL))
    except redis.exceptions.RedisError as exc:
        log.error("could not record the start of %s in Redis: %s (the job is not affected)", rq_job_id, exc)
        return True


#: Seconds a start mark is kept once the ledger holds the run's outcome, for a job that fires more than once an
#: hour (thousands of marks a day otherwise). A later delivery of the run is then refused by the ledger itself
#: (its row is no longer ``queued``); the mark only still matters for a duplicate already waiting in a queue that
#: reaches a worker while the database is down, which an hour covers.
TTL_AFTER_RECORDED = 3600


def shorten_start_mark(conn: redis.Redis, bench_id: str, rq_job_id: str) -> None:
    """The ledger has the run's outcome: keep its start mark only :data:`TTL_AFTER_RECORDED` more seconds."""
    try:
        conn.expire(started_mark_key(bench_id, rq_job_id), TTL_AFTER_RECORDED)
    except redis.exceptions.RedisError as exc:
        log.warning("could not shorten the start mark of %s: %s (it expires in %d s)", rq_job_id, exc, TTL)


def started(conn: redis.Redis, bench_id: str, rq_job_ids: list[str]) -> set[str]:
    """The ids among ``rq_job_ids`` that a worker has started (one round trip)."""
    if not rq_job_ids:
        return set()
    with conn.pipeline(transaction=False) as pipe:
        for jid in rq_job_ids:
            pipe.exists(started_mark_key(bench_id, jid))
        flags = pipe.execute()
    return {jid for jid, flag in zip(rq_job_ids, flags, strict=True) if flag}


def mark_refused(conn: redis.Redis, bench_id: str, rq_job_id: str, at: datetime) -> None:
    """Record that a delivery of the run was refused at ``at``: its RQ outcome must not be read as the run's."""
    try:
        conn.set(refused_mark_key(bench_id, rq_job_id), at.isoformat(), ex=TTL)
    except redis.exceptions.RedisError as exc:
        log.error("could not record the refused delivery of %s in Redis: %s", rq_job_id, exc)


def mark_outcome(conn: redis.Redis, bench_id: str, rq_job_id: str, status: str) -> None:
    """Keep the run's outcome on its start mark: the ledger could not be written, and a refused later
    delivery would otherwise leave the scheduler no way to know it. Only an existing mark is updated."""
    if status not in OUTCOMES:
        raise ValueError(f"unknown outcome {status!r}: expected one of {', '.join(OUTCOMES)}")
    try:
        conn.set(started_mark_key(bench_id, rq_job_id), status, xx=True, keepttl=True)
    except redis.exceptions.RedisError as exc:
        log.error("could not record the outcome of %s in Redis either: %s", rq_job_id, exc)


@dataclass(frozen=True)
class Refusal:
    """A refused delivery of a run: when it was refused, and the run's outcome if its worker left one."""

    at: datetime
    outcome: str | None


def refusals(conn: redis.Redis, bench_id: str, rq_job_ids: list[str]) -> dict[str, Refusal]:
    """The ids among ``rq_job_ids`` that had a delivery refused (one round trip)."""
    if not rq_job_ids:
        return {}
    with conn.pipeline(transaction=False) as pipe:
        for jid in rq_job_ids:
            pipe.get(refused_mark_key(bench_id, jid))
            pipe.get(started_mark_key(bench_id, jid))
        replies = pipe.execute()
    out: dict[str, Refusal] = {}
    for jid, at, mark in zip(rq_job_ids, replies[0::2], replies[1::2], strict=True):
        found = refusal_from(at, mark)
        if found is not None:
            out[jid] = found
    return out


def refusal_from(at: Any, mark: Any) -> Refusal | None:
    """A run's refusal from the replies to ``GET`` of its refusal mark and of its start mark (None: none)."""
    if at is None:
        return None
    outcome = reply_text(mark) if mark is not None else None
    return Refusal(datetime.fromisoformat(reply_text(at)), outcome if outcome in OUTCOMES else None)



def redis_epoch(conn: redis.Redis, bench_id: str) -> datetime:
    """Since when this Redis server has kept its data, as far as the schedulers can tell: the moment one of
    them first saw its current ``run_id`` (it changes at every restart), on the clock of the ledger's
    timestamps. A restart without persistence loses the queues *and* the start marks, and one with
    persistence may lose the last second of them: a run sent before this moment that Redis no longer holds
    may have been started by a worker that could not write the ledger, so it cannot be sent again.

    The first call (and the first after a restart, or after the key was lost with the data) stamps now."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.info("server")
        pipe.get(redis_epoch_key(bench_id))
        info, raw = pipe.execute()
    return epoch_from(conn, bench_id, info, raw)


def epoch_from(conn: redis.Redis, bench_id: str, info: Any, raw: Any) -> datetime:
    """:func:`redis_epoch` from the replies to ``INFO server`` and ``GET`` of the epoch key (read by the caller,
    in a pipeline of its own: :func:`hookscheduler.schedule.reconcile.settle`); stamps now when they say so."""
    key = redis_epoch_key(bench_id)
    run_id = str(info.get("run_id", "")) if isinstance(info, dict) else ""
    if raw is not None:
        stored_id, _, since = reply_text(raw).partition(" ")
        if stored_id == run_id:
            try:
                return datetime.fromisoformat(since)
            except ValueError:
                pass
    now = utcnow()
    conn.set(key, f"{run_id} {now.isoformat()}")
    if raw is not None:
        log.warning("Redis restarted (a new run_id) since runs were sent: runs it no longer holds are recorded "
                    "with an unknown outcome instead of being sent again")
    return now
