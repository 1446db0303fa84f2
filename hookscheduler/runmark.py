"""A run's start, recorded in Redis as well as in the ledger: one delivery of a run may start it, ever.

The ledger's ``queued -> started`` compare-and-set refuses a second delivery of a run, but only while the
database can be written: the worker still runs a job whose start write failed (Frappe #41245: the ledger is
never a reason not to run). Then a second delivery (a run re-sent because Redis seemed to have lost it, or
put back on its queue because a worker seemed to have died with it) would run the slot again. The chaos run
showed exactly that.

So before anything else, the work horse sets ``hookscheduler:<bench_id>:started:<rq_job_id>`` with ``SET NX``
(kept :data:`TTL` seconds, longer than any run waits in a queue): only the first delivery gets it. A later
delivery finds it and does not run. The scheduler consults the same key before it re-sends a ``queued`` row
whose RQ job is gone, or re-queues one a worker took off its queue: a run that started is never sent again;
its row is settled with the reason instead. If Redis cannot be reached the horse runs the job anyway (it
was delivered by Redis a moment ago; refusing would lose the slot), as with a failed ledger write.
"""

from __future__ import annotations

import logging

import redis

from .naming import started_mark_key

log = logging.getLogger("hookscheduler.runmark")

TTL = 7 * 24 * 3600


def claim_start(conn: redis.Redis, bench_id: str, rq_job_id: str) -> bool:
    """True for the first delivery of a run (and when Redis cannot say: the job runs, Frappe #41245)."""
    try:
        return bool(conn.set(started_mark_key(bench_id, rq_job_id), "1", nx=True, ex=TTL))
    except redis.exceptions.RedisError as exc:
        log.error("could not record the start of %s in Redis: %s (the job is not affected)", rq_job_id, exc)
        return True


def started(conn: redis.Redis, bench_id: str, rq_job_ids: list[str]) -> set[str]:
    """The ids among ``rq_job_ids`` that a worker has started (one round trip)."""
    if not rq_job_ids:
        return set()
    with conn.pipeline(transaction=False) as pipe:
        for jid in rq_job_ids:
            pipe.exists(started_mark_key(bench_id, jid))
        flags = pipe.execute()
    return {jid for jid, flag in zip(rq_job_ids, flags, strict=True) if flag}
