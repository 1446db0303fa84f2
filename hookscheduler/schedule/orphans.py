"""Runs a worker took off their queue and never started: put them back.

A worker listening on several queues takes a job with ``BLPOP``: from that moment until it marks the job
``started`` (a few milliseconds later) the job is in no list and no registry, and its hash still says
``queued``. A worker killed in that window, or a Redis restart whose last snapshot was taken in it, leaves the
job *orphaned*: RQ says "queued" for ever and no worker will ever see it (RQ cleans up its single-queue
"intermediate" list, not this). The ledger row stays ``queued`` too, so under ``overlap="skip"`` every later
slot of the job is skipped as "previous run still queued": the job is wedged, found by the chaos run.

The sweep (:func:`hookscheduler.schedule.reconcile.reconcile_active`) passes the RQ ids of ledger rows that are
``queued`` in both the ledger and RQ and were sent more than :data:`ORPHAN_GRACE` seconds ago. Each queue is read once
(``LRANGE``, plus RQ's intermediate list); an id found in neither is marked suspect, and once it has been
seen so for :data:`ORPHAN_GRACE` real seconds (two sweeps apart, timed by Redis: a live worker spends
milliseconds in that window) it is pushed back by a Lua script that re-checks, atomically, that the job still
says ``queued`` and is still in no list. The job never started (RQ marks it ``started`` before running it, and
the horse records its start in Redis, :mod:`hookscheduler.worker.marks`), so running it now is its first run;
and if a worker was in fact still inside the window (a slow fork), the second delivery finds the start mark and
does not run.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import redis

from ..broker.connection import reply_text
from ..broker.keys import orphan_suspect_key
from ..timing.clock import real_seconds
from ..worker import marks

log = logging.getLogger(__name__)

ORPHAN_GRACE = 60.0  # seconds a sent run may spend between a worker's BLPOP and "started" before we look
SUSPECT_TTL = 3600

_REQUEUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[1]) then return 0 end
if redis.call('LPOS', KEYS[3], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""


def requeue_orphans(conn: redis.Redis, rq_ids: list[str], bench_id: str) -> list[str]:
    """Push back every id (RQ status ``queued``) that has sat in no queue list for :func:`real_grace` seconds
    (two sweeps apart, timed by Redis's own clock) and that no worker has started
    (:mod:`hookscheduler.worker.marks`); returns the ids pushed."""
    began = marks.started(conn, bench_id, rq_ids)
    rq_ids = [jid for jid in rq_ids if jid not in began]
    if not rq_ids:
        return []
    with conn.pipeline(transaction=False) as pipe:
        for jid in rq_ids:
            pipe.hmget(f"rq:job:{jid}", "status", "origin")
        fields = pipe.execute()
    by_queue: dict[str, list[str]] = defaultdict(list)
    for jid, (status, origin) in zip(rq_ids, fields, strict=True):
        if status is not None and reply_text(status) == "queued" and origin:
            by_queue[reply_text(origin)].append(jid)
    pushed: list[str] = []
    script = conn.register_script(_REQUEUE)
    for origin, ids in by_queue.items():
        key = f"rq:queue:{origin}"
        listed = {reply_text(v) for k in (key, f"{key}:intermediate") for v in conn.lrange(k, 0, -1)}  # type: ignore[union-attr]
        for jid in _suspected_long_enough(conn, bench_id, [j for j in ids if j not in listed]):
            if script(keys=[f"rq:job:{jid}", key, f"{key}:intermediate"], args=[jid]):
                pushed.append(jid)
            conn.delete(orphan_suspect_key(bench_id, jid))
    if pushed:
        log.warning("re-queued %d run(s) a worker had taken off the queue without starting them: %s",
                    len(pushed), ", ".join(pushed[:5]) + (" ..." if len(pushed) > 5 else ""))
    return pushed


def real_grace() -> float:
    """How long (real seconds) a run may sit between a worker's BLPOP and "started" before it is presumed
    orphaned: :data:`ORPHAN_GRACE`, or at least a second on an accelerated simulated clock."""
    return max(1.0, real_seconds(ORPHAN_GRACE))


def _suspected_long_enough(conn: redis.Redis, bench_id: str, ids: list[str]) -> list[str]:
    """Mark each id suspect (first sighting); return those first seen at least :func:`real_grace` ago."""
    if not ids:
        return []
    with conn.pipeline(transaction=False) as pipe:
        for jid in ids:
            pipe.set(orphan_suspect_key(bench_id, jid), "1", nx=True, ex=SUSPECT_TTL)
            pipe.ttl(orphan_suspect_key(bench_id, jid))
        replies = pipe.execute()
    grace = real_grace()
    return [jid for jid, ttl in zip(ids, replies[1::2], strict=True) if ttl >= 0 and SUSPECT_TTL - ttl >= grace]

