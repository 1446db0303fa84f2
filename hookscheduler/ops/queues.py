"""A site's share of the bench's RQ queues: pending counts, purging, and "is anything still pending?".

A bench's queues are shared by its sites, so every count and every purge is restricted to the job ids that
start with the site's prefix (:func:`naming.site_prefix`). Counting reads the id lists and registries in one
pipeline (no per-job round trip), and purging removes a batch of ids from a queue server-side in one Lua call
per batch, then deletes the job hashes in pipelined batches: O(N) for a queue of N jobs, where Frappe's
``purge-jobs`` fetches every job.

A scheduled run removed from RQ is first marked ``skipped`` in the ledger (compare-and-set from ``queued``),
so the sweep does not take it for a run Redis lost and send it again, and a worker that pops it in the
meantime finds no ``queued`` row and does not run it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from rq.job import Job
from rq.results import Result
from rq.utils import parse_composite_key

from ..broker.keys import site_prefix
from ..config import Site
from ..context import SiteContext
from ..exceptions import QueueNotFound, shown
from ..schedule.send import rq_queue
from ..store import Store, store_for
from ..store.models import database_proxy, utcnow
from .jobs import event_jobs

#: RQ's counts per queue (RQ's statuses, not the ledger's)
COUNTED = ("queued", "started", "failed", "scheduled")
BATCH = 1000  # ids per pipelined delete, and per ledger statement
LUA_BATCH = 5000  # ids per server-side removal call

# Remove the given ids from a list in one pass, keeping the order of the rest; returns the ids removed.
_REMOVE_IDS = """
local drop = {}
for _, id in ipairs(ARGV) do drop[id] = true end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local kept, removed = {}, {}
for _, id in ipairs(items) do
  if drop[id] then removed[#removed + 1] = id; drop[id] = nil else kept[#kept + 1] = id end
end
if #removed > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))
  end
end
return removed
"""


def check_queue(site: Site, queue: str) -> str:
    """``queue`` if the site knows it, else QueueNotFound (exit 2) listing the known ones."""
    if queue not in site.queues:
        raise QueueNotFound(
            f"unknown queue {shown(queue)} for site {site.name}; queues: {', '.join(site.queues)} "
            "(custom queues are declared under 'workers' in common_site_config.json)")
    return queue


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def site_job_ids(conn: redis.Redis, bench_id: str, site: str, queues: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """Per queue, the site's job ids that are queued, started, failed (not yet expired) and scheduled."""
    prefix = site_prefix(bench_id, site)
    now = time.time()
    with conn.pipeline(transaction=False) as pipe:
        for name in queues:
            q = rq_queue(conn, bench_id, name)
            pipe.lrange(q.key, 0, -1)
            pipe.zrangebyscore(q.started_job_registry.key, now, "+inf")
            pipe.zrangebyscore(q.failed_job_registry.key, now, "+inf")
            pipe.zrange(q.scheduled_job_registry.key, 0, -1)
        raw = pipe.execute()
    out: dict[str, dict[str, list[str]]] = {}
    for i, name in enumerate(queues):
        queued, started, failed, scheduled = raw[4 * i:4 * i + 4]
        started_ids = list(dict.fromkeys(parse_composite_key(_text(e))[0] for e in started))
        lists = {"queued": [_text(x) for x in queued], "started": started_ids,
                 "failed": [_text(x) for x in failed], "scheduled": [_text(x) for x in scheduled]}
        out[name] = {k: [j for j in v if j.startswith(prefix)] for k, v in lists.items()}
    return out


def pending_counts(conn: redis.Redis, bench_id: str, site: str, queues: Sequence[str]) -> dict[str, Any]:
    """``{"queues": {q: {queued, started, failed, scheduled}}, "total": {...}}``: ``show-pending-jobs``'s JSON."""
    ids = site_job_ids(conn, bench_id, site, queues)
    per_queue = {q: {k: len(ids[q][k]) for k in COUNTED} for q in queues}
    total = {k: sum(c[k] for c in per_queue.values()) for k in COUNTED}
    return {"queues": per_queue, "total": total}


def outbox_count() -> int:
    """Claimed runs not yet sent to Redis (the next pass sends them), of the bound site."""
    return store_for(database_proxy.obj).outbox_size()


@dataclass
class Readiness:
    """Whether the site can be migrated: nothing of it queued or running, in RQ or in the outbox."""

    ready: bool
    queued: int
    started: int
    outbox: int

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "queued": self.queued, "started": self.started, "outbox": self.outbox}


def readiness(ctx: SiteContext, conn: redis.Redis) -> Readiness:
    totals = pending_counts(conn, ctx.bench.bench_id, ctx.name, list(ctx.site.queues))["total"]
    outbox = store_for(ctx.database()).outbox_size()
    queued, started = totals["queued"] + totals["scheduled"], totals["started"]
    return Readiness(queued + started + outbox == 0, queued, started, outbox)


def drop_from_ledger(store: Store, rq_ids: Iterable[str], reason: str, now: datetime) -> int:
    """Mark the ledger rows of runs removed from RQ (still ``queued``) as ``skipped`` with ``reason``."""
    ids = list(rq_ids)
    return sum(store.skip_queued(ids[i:i + BATCH], reason, now) for i in range(0, len(ids), BATCH))


@dataclass
class PurgeResult:
    purged: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)
    outbox: int = 0  # claimed-but-unsent runs dropped from the ledger's outbox

    def as_dict(self) -> dict[str, Any]:
        return {"purged": self.purged, "by_queue": self.by_queue, "outbox": self.outbox}


def purge(ctx: SiteContext, conn: redis.Redis, queue: str | None = None, event: str | None = None,
          who: str = "operator", now: datetime | None = None) -> PurgeResult:
    """Delete the site's queued jobs (of ``queue``, or every queue; with ``event``, only the queued scheduled
    runs of that event's jobs) and record them as skipped in the ledger."""
    now = now or utcnow()
    store = store_for(ctx.database())
    bench_id = ctx.bench.bench_id
    queues = [check_queue(ctx.site, queue)] if queue is not None else list(ctx.site.queues)
    reason = f"purged from the queue by {who} (purge-jobs{' --event ' + event if event else ''})"
    only: set[str] | None = None
    job_ids: list[int] = []
    if event is not None:
        job_ids = [j.id for j in event_jobs(event, include_stopped=True)]
        only = store.queued_rq_ids(job_ids)
    ids = site_job_ids(conn, bench_id, ctx.name, queues)
    result = PurgeResult()
    for name in queues:
        targets = [j for j in ids[name]["queued"] if only is None or j in only]
        with store.transaction():
            drop_from_ledger(store, targets, reason, now)
        removed = remove_ids(conn, rq_queue(conn, bench_id, name).key, targets)
        delete_job_keys(conn, removed)
        result.by_queue[name] = len(removed)
        result.purged += len(removed)
    with store.transaction():
        result.outbox = store.skip_outbox(queues, job_ids if event is not None else None, reason, now)
    return result


def remove_ids(conn: redis.Redis, queue_key: str, ids: Sequence[str]) -> list[str]:
    """Remove ``ids`` from the queue list server-side, in batches; returns the ids that were there."""
    script = conn.register_script(_REMOVE_IDS)
    removed: list[str] = []
    for i in range(0, len(ids), LUA_BATCH):
        removed += [_text(x) for x in script(keys=[queue_key], args=list(ids[i:i + LUA_BATCH]))]
    return removed


def _result_key(job_id: str) -> str:
    return str(Result.get_key(job_id))  # type: ignore[no-untyped-call]


def delete_job_keys(conn: redis.Redis, ids: Sequence[str]) -> None:
    """Delete the job hashes (and their dependents set and results stream) in pipelined batches."""
    for i in range(0, len(ids), BATCH):
        keys: list[str] = []
        for jid in ids[i:i + BATCH]:
            keys += [Job.key_for(jid), Job.dependents_key_for(jid), _result_key(jid)]
        conn.unlink(*keys)


__all__ = [
    "COUNTED", "PurgeResult", "Readiness", "check_queue", "delete_job_keys", "drop_from_ledger",
    "outbox_count", "pending_counts", "purge", "readiness", "remove_ids", "site_job_ids",
]
