"""Keeping the history bounded: old Scheduled Job Log rows, and RQ's failed-job registries.

* :func:`prune_logs` is the built-in daily maintenance job (``hookscheduler.builtin``): it deletes the site's
  log rows older than ``log_retention_days`` (default 30) and trims the bench's failed registries. Rows of
  runs still ``queued`` or ``started`` are never pruned: the pass's outbox and overlap checks rely on them.
* :func:`thin_frequent_runs` (also part of the daily job) keeps the ledger of a job that fires more often than
  hourly (an ``all`` job every 10 seconds writes 8,640 rows a day) from growing with its successes: after
  :data:`FREQUENT_KEEP` its ``complete`` on-time runs are thinned to the last one of each hour. Failures, missed
  and skipped slots, catch-up runs and runs still active are never thinned, and neither is a row the metrics
  counter (:mod:`hookscheduler.metrics.ledger_counts`) has not counted yet, so the counters stay exact.
* :func:`trim_failed_registry` keeps at most ``rq_failed_jobs_limit`` (default 1000, as Frappe) failed jobs
  per queue, deleting the oldest; the worker calls it after every failure, so a job failing every minute
  cannot grow Redis without bound between two daily passes. :func:`truncate_failed_registry` is the same as
  an RQ ``on_failure`` callback, for code ported from Frappe.

Both deletions record how far they reached (:func:`pruned_through`, in ``scheduler_state``, in the transaction
that deletes): with the rows goes the evidence that a slot ran, and ``jobs backfill`` must not take a slot with
no row for one that never ran (:mod:`.backfill`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from ..broker.keys import queue_name
from ..config import DEFAULT_FAILED_JOBS_LIMIT
from ..exceptions import HookSchedulerError
from ..store import store_for
from ..store.database import get_state, set_state
from ..store.models import utcnow
from ..timing.frequencies import fires_within_hour

BATCH = 1000  # log rows per DELETE; 100 RQ jobs per pipeline, as Frappe
#: How long every successful run of a job that fires more than once an hour is kept; after that, one per hour.
FREQUENT_KEEP = timedelta(hours=24)
#: ``scheduler_state`` key: the slots up to this moment may have lost their ledger rows to ``log_retention_days``.
PRUNED_KEY = "pruned_through"
#: A run claimed ahead has its row written just before its slot: a row created before a prune's cutoff may
#: serve a slot a little after it.
CLAIM_SLACK = timedelta(minutes=1)


def thinned_key(job_id: int) -> str:
    """``scheduler_state`` key: the job's latest slot whose run was thinned away."""
    return f"thinned_through:{job_id}"


def _raise_mark(key: str, through: datetime) -> None:
    """Move a horizon forward (never back), inside the caller's transaction."""
    current = _stamp(get_state(key))
    if current is None or through > current:
        set_state(key, through.isoformat(sep=" "))


def _stamp(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Horizon:
    """The slots up to ``through`` (inclusive) of a job may have lost their ledger rows, and why."""

    through: datetime
    why: str


def pruned_through(job_id: int) -> Horizon | None:
    """How far the deletions reached for ``job_id``: the later of the site's ``log_retention_days`` pruning and
    the thinning of the job's own runs (None: no row of it was ever deleted). Reads ``scheduler_state``."""
    found = [Horizon(at, why) for at, why in (
        (_stamp(get_state(PRUNED_KEY)), "log_retention_days deleted the ledger's rows up to then"),
        (_stamp(get_state(thinned_key(job_id))), "the daily thinning of a job that fires more than hourly deleted "
                                                 "its successful runs up to then"),
    ) if at is not None]
    return max(found, key=lambda h: h.through, default=None)


def prune_site_logs(db: pw.Database, retention_days: int, now: datetime | None = None) -> int:
    """Delete finished log rows whose creation and last change are both older than ``retention_days``.

    ``modified_at`` matters for the rows the pass keeps extending (a job stopped for months has one
    ``skipped`` row whose ``last_slot`` moves): they are kept while they are still being written."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    store = store_for(db)
    total = 0
    while True:
        with store.transaction():
            # one statement (the first of its transaction is a write: no SQLite read->write upgrade)
            deleted = store.prune_finished(cutoff, BATCH)
            if deleted:
                _raise_mark(PRUNED_KEY, cutoff + CLAIM_SLACK)
        total += deleted
        if deleted < BATCH:
            return total


def thin(rows: Iterable[tuple[int, datetime]]) -> list[int]:
    """Pure: of (id, slot) rows of one job, the ids to delete so that the last run of each hour is kept."""
    keep: dict[datetime, int] = {}
    ids = []
    for row_id, slot in rows:
        ids.append(row_id)
        hour = slot.replace(minute=0, second=0, microsecond=0)
        keep[hour] = max(keep.get(hour, row_id), row_id)
    kept = set(keep.values())
    return [i for i in ids if i not in kept]


def thin_frequent_runs(db: pw.Database, now: datetime | None = None, counted: Counted | None = None) -> int:
    """Thin the successful on-time runs older than :data:`FREQUENT_KEEP` of every job that fires more than once
    an hour to the last run of each hour; ``counted``: what the metrics counter has read (a row is deleted only
    once the counters have it). Returns how many rows were deleted."""
    cutoff = (now or utcnow()) - FREQUENT_KEEP
    store = store_for(db)
    jobs = [job_id for job_id, frequency, cron in store.job_schedules() if fires_within_hour(frequency, cron)]
    total = 0
    for job_id in jobs:
        runs = store.thinnable_runs(job_id, cutoff, counted.below if counted is not None else None)
        pending = counted.pending if counted is not None else frozenset()
        doomed = [i for i in thin(runs) if i not in pending]
        slot_of = dict(runs)
        for i in range(0, len(doomed), BATCH):
            chunk = doomed[i:i + BATCH]
            with store.transaction():
                total += store.delete_ledger_rows(chunk)
                _raise_mark(thinned_key(job_id), max(slot_of[j] for j in chunk))
    return total


def trim_failed_registry(conn: redis.Redis, full_queue_name: str, limit: int | None = None, room: int = 0) -> int:
    """Keep at most ``limit`` jobs in the queue's failed registry, the newest (RQ scores them by the second:
    among failures of the same second the order is arbitrary); ``room`` leaves space for jobs about to be added
    (a failing job is added after its own failure handling). Returns how many were deleted."""
    keep = max(int(limit or DEFAULT_FAILED_JOBS_LIMIT) - room, 0)
    registry = FailedJobRegistry(full_queue_name, connection=conn)
    excess = int(conn.zcard(registry.key)) - keep
    if excess <= 0:
        return 0
    # scores are expiry times (failure time + failure_ttl): the lowest are the oldest failures
    ids = registry.get_job_ids(0, excess - 1, cleanup=False)
    for i in range(0, len(ids), 100):
        chunk = ids[i:i + 100]
        jobs = Job.fetch_many(chunk, connection=conn)
        with conn.pipeline() as pipe:
            pipe.zrem(registry.key, *chunk)
            for job in jobs:
                if job is not None:
                    job.delete(pipeline=pipe, remove_from_queue=False)
            pipe.execute()
    return len(ids)


def trim_failed_registries(conn: redis.Redis, bench_id: str, queues: Iterable[str], limit: int | None = None) -> int:
    """:func:`trim_failed_registry` for every queue of a bench."""
    return sum(trim_failed_registry(conn, queue_name(bench_id, q), limit) for q in queues)


def truncate_failed_registry(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    """RQ ``on_failure`` callback (Frappe's name): bound the failed registry of the job's queue."""
    trim_failed_registry(connection, job.origin, room=1)


def prune_logs() -> dict[str, int]:
    """The built-in daily maintenance job of every site (runs in a worker, as a scheduled job)."""
    from ..broker.connection import redis_for
    from ..store.database import require_schema
    from ..worker.runner import job_context, worker_site  # late: the runner imports this module

    jctx = job_context()
    if jctx is None:
        raise HookSchedulerError("prune_logs runs as a scheduled job in a worker; "
                                 "call prune_site_logs(db, retention_days) directly instead")
    ctx = worker_site(jctx.site)
    db = ctx.database(require_schema=False)
    require_schema(db)  # deletes nothing under a schema this hookscheduler does not know (newer, or outdated)
    conn = redis_for(ctx.site)
    deleted = prune_site_logs(db, ctx.site.log_retention_days)
    thinned = thin_frequent_runs(db, counted=metrics_counted(conn, ctx.bench.bench_id, ctx.name))
    trimmed = trim_failed_registries(conn, ctx.bench.bench_id, ctx.site.queues, ctx.site.settings.rq_failed_jobs_limit)
    return {"deleted_logs": deleted, "thinned_runs": thinned, "trimmed_failed_jobs": trimmed}


@dataclass(frozen=True)
class Counted:
    """What the metrics counter has read of a site's ledger: every id below ``below`` except the ``pending``
    ones (rows it saw still active, to be counted when they end)."""

    below: int
    pending: frozenset[int]


def metrics_counted(conn: redis.Redis, bench_id: str, site: str) -> Counted | None:
    """The metrics counter's progress (None: metrics were never collected, so no row waits to be counted)."""
    from ..metrics.ledger_counts import counts_key, pending_key  # late: the metrics package imports the ops layer

    raw = conn.hget(counts_key(bench_id, site), "cursor")
    if raw is None:
        return None
    pending = frozenset(int(x) for x in conn.smembers(pending_key(bench_id, site)))  # type: ignore[union-attr]
    return Counted(int(raw), pending)
