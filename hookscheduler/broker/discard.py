"""Deleting an RQ job whose worker died: RQ's ``Job.delete`` alone fails on what such a job leaves behind.

A work horse killed mid-job (``kill -9``, the out-of-memory killer) leaves its execution listed in the job's
``rq:executions:<id>`` set; RQ's cleanup later fails the job (``AbandonedJobError``), but the execution's own
hash expires with its heartbeat about a minute before the set that lists it. In that window ``Job.delete``
fetches every listed execution and raises ``ValueError: Execution ... not found in Redis``: the id could not
be re-used nor the job deleted. Listed executions without a hash are dropped first (from the set and the
started registry); the worker's own index of them expires with the dead worker's keys.
"""

from __future__ import annotations

from typing import Any

import redis
from rq.executions import Execution
from rq.job import Job


def prune_stale_executions(job: Job) -> int:
    """Drop the job's listed executions whose hash has expired; how many were dropped."""
    conn: redis.Redis = job.connection
    registry = job.execution_registry
    listed = [e.decode() if isinstance(e, bytes) else str(e) for e in conn.zrange(registry.key, 0, -1)]
    if not listed:
        return 0
    with conn.pipeline(transaction=False) as pipe:
        for execution_id in listed:
            pipe.exists(Execution(execution_id, job.id, conn).key)
        alive = pipe.execute()
    stale = [e for e, exists in zip(listed, alive, strict=True) if not exists]
    if stale:
        with conn.pipeline(transaction=False) as pipe:
            pipe.zrem(registry.key, *stale)
            if job.origin:
                pipe.zrem(job.started_job_registry.key, *(f"{job.id}:{e}" for e in stale))
            pipe.execute()
    return len(stale)


def delete_job(job: Job, pipeline: Any = None) -> None:
    """``job.delete()`` that copes with a dead worker's leftovers (see the module's docstring). With a
    ``pipeline`` in MULTI mode, the reads happen now and the deletion when the pipeline executes."""
    prune_stale_executions(job)
    job.delete(pipeline=pipeline)
