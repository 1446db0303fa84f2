"""Sending claimed runs to RQ: many at once, each at most once.

The pass claims slots in the database first (the outbox), then calls :func:`send_runs`. Every run has a
deterministic RQ job id, and it is written with RQ's own atomic "unique enqueue" script (check the job key,
save the hash, push the id), all runs of a pass in one pipeline. So a run sent twice (a crashed sender's
outbox row re-sent by another process, or two processes re-sending the same row) lands in RQ once: the second
send finds the job key and is refused by Redis itself.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.scripts import _build_hset_args, get_unique_enqueue_script
from rq.utils import now, utcformat

from ..broker.keys import queue_name
from ..config import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL
from ..store.base import Run as Run
from ..timing.clock import SIM, rq_timeout, utcnow

RUNNER = "hookscheduler.runner.run_scheduled_job"


#: Seconds RQ keeps a finished run of a job that fires more than once an hour, whatever ``rq_results_ttl``
#: says: such a job leaves thousands of results a day, and its ledger row already holds the outcome.
FREQUENT_RESULT_TTL = 600


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


def _job_fields(run: Run, result_ttl: int, failure_ttl: int) -> tuple[tuple[str], dict[str, Any]]:
    """Arguments of ``Queue.create_job`` for ``run``."""
    if run.frequent:
        result_ttl = min(result_ttl, FREQUENT_RESULT_TTL)
    return (RUNNER,), {
        "kwargs": _job_kwargs(run), "timeout": rq_timeout(run.timeout), "job_id": run.rq_job_id,
        "result_ttl": result_ttl, "failure_ttl": failure_ttl, "description": _description(run), "meta": _meta(run),
    }


def _description(run: Run) -> str:
    return f"{run.job_name} [{run.trigger} {run.scheduled_for.isoformat(sep=' ')} UTC]"


def _meta(run: Run) -> dict[str, Any]:
    meta: dict[str, Any] = {"site": run.site, "job": run.job_name, "trigger": run.trigger,
                            "slot": run.scheduled_for.isoformat()}
    if run.frequent:  # the worker keeps its start mark short once the ledger has the outcome
        meta["frequent"] = True
    return {"hookscheduler": meta}


def rq_hash(conn: redis.Redis, bench_id: str, run: Run, result_ttl: int, failure_ttl: int) -> list[Any]:
    """The job hash RQ itself writes for ``run`` (``HSET`` field/value pairs): the reference for
    :class:`HashBuilder`, which tests compare against it."""
    q = rq_queue(conn, bench_id, run.queue)
    args, kwargs = _job_fields(run, result_ttl, failure_ttl)
    job = q.create_job(*args, **kwargs)
    q._prepare_for_queue(job)
    return list(_build_hset_args(job))  # type: ignore[no-untyped-call]


class HashBuilder:
    """Builds RQ job hashes for many runs at the cost of two ``pickle.dumps`` each.

    RQ's ``create_job`` + ``to_dict`` are costly per job (they dominated a pass that fires many runs), mostly in
    generic bookkeeping that is the same for every run of a queue. So RQ builds one job per (queue, timeout) (the
    template) and each run's hash is the template with the fields that differ replaced: ``data`` (function and
    kwargs, serialised and compressed as RQ does), ``description``, ``meta`` and the timestamps.
    ``tests/unit/test_dispatch.py`` checks the result is identical to RQ's own, field by field, so an RQ upgrade
    that changes the format fails a test instead of writing jobs a worker cannot read.
    """

    def __init__(self, conn: redis.Redis, bench_id: str, result_ttl: int, failure_ttl: int):
        self.conn, self.bench_id = conn, bench_id
        self.result_ttl, self.failure_ttl = result_ttl, failure_ttl
        self.templates: dict[tuple[str, int, bool], tuple[dict[str, Any], Any]] = {}
        self.stamp = utcformat(now())

    def _template(self, run: Run) -> tuple[dict[str, Any], Any]:
        key = (run.queue, run.timeout, run.frequent)
        found = self.templates.get(key)
        if found is None:
            q = rq_queue(self.conn, self.bench_id, run.queue)
            args, kwargs = _job_fields(run, self.result_ttl, self.failure_ttl)
            job = q.create_job(*args, **kwargs)
            q._prepare_for_queue(job)
            pairs = _build_hset_args(job)  # type: ignore[no-untyped-call]
            fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
            found = (fields, job.serializer)
            self.templates[key] = found
        return found

    def build(self, run: Run) -> list[Any]:
        template, serializer = self._template(run)
        fields = dict(template)
        fields["data"] = zlib.compress(serializer.dumps((RUNNER, None, (), _job_kwargs(run))))
        fields["description"] = _description(run)
        fields["meta"] = serializer.dumps(_meta(run))
        fields["created_at"] = fields["enqueued_at"] = self.stamp
        return [v for kv in fields.items() for v in kv]


@dataclass(frozen=True)
class Sent:
    """What :func:`send_runs` did: the ids now in RQ (newly written or already there) and when Redis accepted
    them (naive UTC, the ledger's ``enqueued_at``)."""

    ids: list[str]
    at: datetime


def send_runs(conn: redis.Redis, bench_id: str, runs: Iterable[Run], result_ttl: int = DEFAULT_RESULT_TTL,
              failure_ttl: int = DEFAULT_FAILURE_TTL) -> Sent:
    """Enqueue ``runs`` in one pipeline; returns the ids now in RQ and the moment Redis accepted them.

    Each run goes through RQ's own atomic unique-enqueue script (skip if the job key exists, else write the
    hash and push the id), so a run sent twice lands once. The pipeline ends with Redis's ``TIME``, executed
    right after the last script: the moment the runs were accepted, on the clock the queue itself keeps (see
    :func:`accepted_at`), instead of a time taken before the pipeline was sent or after its reply came back.
    """
    runs = list(runs)
    if not runs:
        return Sent([], utcnow())
    script = get_unique_enqueue_script(conn)  # type: ignore[no-untyped-call]
    builder = HashBuilder(conn, bench_id, result_ttl, failure_ttl)
    queues: set[str] = set()
    with conn.pipeline(transaction=False) as pipe:
        for run in runs:
            q = rq_queue(conn, bench_id, run.queue)
            if run.queue not in queues:
                queues.add(run.queue)
                pipe.sadd(q.redis_queues_keys, q.key)
            script(keys=[Job.key_for(run.rq_job_id), q.key],  # type: ignore[no-untyped-call]
                   args=[run.rq_job_id, "R", -1, *builder.build(run)], client=pipe)
        pipe.time()
        before = utcnow()
        replies = pipe.execute()
        after = utcnow()
    return Sent([r.rq_job_id for r in runs], accepted_at(replies[-1], before, after))


def accepted_at(server_time: Any, before: datetime, after: datetime) -> datetime:
    """Redis's ``TIME`` reply as naive UTC, kept inside the local window ``[before, after]`` around the round
    trip: a Redis host whose clock is off cannot stamp a run before it was claimed or after the reply came back
    (with clocks in step, the server's time falls inside the window and is kept as is). On a simulated clock
    (a chaos run) the server's real time means nothing: the window's end is used."""
    if SIM is not None:
        return after
    seconds, micros = server_time
    at = datetime.fromtimestamp(int(seconds), timezone.utc).replace(tzinfo=None, microsecond=int(micros))
    return min(max(at, before), after)


def job_statuses(conn: redis.Redis, job_ids: list[str]) -> dict[str, str | None]:
    """RQ status of each job id in one round trip (None: the job is not in Redis)."""
    if not job_ids:
        return {}
    with conn.pipeline(transaction=False) as pipe:
        for jid in job_ids:
            pipe.hget(f"rq:job:{jid}", "status")
        values = pipe.execute()
    return {jid: (v.decode() if isinstance(v, bytes) else v) for jid, v in zip(job_ids, values, strict=False)}


def workers_alive(conn: redis.Redis, job_ids: list[str]) -> dict[str, bool | None]:
    """For jobs RQ says are started: does the worker running each still have its key in Redis (RQ renews it
    with every heartbeat; Redis expires it when the worker dies)? None when the job names no worker. Two round
    trips, and Redis's own timing: no clock of any host is compared."""
    if not job_ids:
        return {}
    with conn.pipeline(transaction=False) as pipe:
        for jid in job_ids:
            pipe.hget(f"rq:job:{jid}", "worker_name")
        names = [(v.decode() if isinstance(v, bytes) else v) for v in pipe.execute()]
    known = [(jid, name) for jid, name in zip(job_ids, names, strict=True) if name]
    out: dict[str, bool | None] = {jid: None for jid in job_ids}
    if known:
        with conn.pipeline(transaction=False) as pipe:
            for _, name in known:
                pipe.exists(f"rq:worker:{name}")
            for (jid, _), exists in zip(known, pipe.execute(), strict=True):
                out[jid] = bool(exists)
    return out
