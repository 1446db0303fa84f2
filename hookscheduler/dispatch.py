"""Sending claimed runs to RQ: many at once, each at most once.

The tick claims slots in the database first (the outbox), then calls :func:`send_runs`. Every run has a
deterministic RQ job id, and it is written with RQ's own atomic "unique enqueue" script (check the job key,
save the hash, push the id), all runs of a pass in one pipeline. So a run sent twice (a crashed sender's
outbox row re-sent by another process, or two processes re-sending the same row) lands in RQ once: the second
send finds the job key and is refused by Redis itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from rq import Queue
from rq.scripts import _build_hset_args, get_unique_enqueue_script

from .clock import rq_timeout
from .naming import queue_name

RUNNER = "hookscheduler.runner.run_scheduled_job"
DEFAULT_RESULT_TTL = 600
DEFAULT_FAILURE_TTL = 7 * 24 * 3600


@dataclass(frozen=True)
class Run:
    """One claimed run, as the outbox row describes it."""

    rq_job_id: str
    site: str
    job_name: str
    method: str
    queue: str
    timeout: int
    scheduled_for: datetime
    trigger: str


_QUEUES: dict[tuple[int, str], Queue] = {}


def rq_queue(conn: redis.Redis, bench_id: str, queue: str) -> Queue:
    """The RQ queue object for a bench queue (cached: it caches the server version)."""
    full = queue_name(bench_id, queue)
    key = (id(conn), full)
    q = _QUEUES.get(key)
    if q is None or q.connection is not conn:
        q = Queue(full, connection=conn)
        _QUEUES[key] = q
    return q


def _job_kwargs(run: Run) -> dict[str, Any]:
    return {"site": run.site, "job_name": run.job_name, "method": run.method,
            "slot": run.scheduled_for.isoformat(), "trigger": run.trigger}


def send_runs(conn: redis.Redis, bench_id: str, runs: Iterable[Run], result_ttl: int = DEFAULT_RESULT_TTL,
              failure_ttl: int = DEFAULT_FAILURE_TTL) -> list[str]:
    """Enqueue ``runs`` in one pipeline; returns the ids now in RQ (newly written or already there)."""
    runs = list(runs)
    if not runs:
        return []
    script = get_unique_enqueue_script(conn)  # type: ignore[no-untyped-call]
    with conn.pipeline(transaction=False) as pipe:
        for run in runs:
            q = rq_queue(conn, bench_id, run.queue)
            job = q.create_job(
                RUNNER, kwargs=_job_kwargs(run), timeout=rq_timeout(run.timeout), job_id=run.rq_job_id,
                result_ttl=result_ttl, failure_ttl=failure_ttl,
                description=f"{run.job_name} [{run.trigger} {run.scheduled_for.isoformat(sep=' ')} UTC]",
                meta={"hookscheduler": {"site": run.site, "job": run.job_name, "trigger": run.trigger,
                                        "slot": run.scheduled_for.isoformat()}},
            )
            q._prepare_for_queue(job)
            pipe.sadd(q.redis_queues_keys, q.key)
            script(keys=[job.key, q.key], args=[job.id, "R", -1, *_build_hset_args(job)],  # type: ignore[no-untyped-call]
                   client=pipe)
        pipe.execute()
    return [r.rq_job_id for r in runs]


def job_statuses(conn: redis.Redis, job_ids: list[str]) -> dict[str, str | None]:
    """RQ status of each job id in one round trip (None: the job is not in Redis)."""
    if not job_ids:
        return {}
    with conn.pipeline(transaction=False) as pipe:
        for jid in job_ids:
            pipe.hget(f"rq:job:{jid}", "status")
        values = pipe.execute()
    return {jid: (v.decode() if isinstance(v, bytes) else v) for jid, v in zip(job_ids, values, strict=False)}
