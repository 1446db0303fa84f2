"""Runs a worker took off their queue and never started: put them back.

Between a worker's ``BLPOP`` and its marking the job ``started``, the job is in no list and no registry while
RQ still says ``queued``; a worker killed in that window leaves it there for ever, and under ``overlap="skip"``
it wedges its job. The sweep (:func:`hookscheduler.schedule.reconcile.reconcile_active`) passes the ledger's
``queued`` runs sent more than :data:`ORPHAN_GRACE` seconds ago; one found in no list is marked suspect, and
pushed back by an atomic script once it has been suspect for the grace on Redis's clock
(docs/exactly-once.md, I6).
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

