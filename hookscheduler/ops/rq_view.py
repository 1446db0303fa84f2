"""The RQ Job and RQ Worker views of Frappe (§2.4 of the reference notes), for one site of a bench.

Jobs are read from the queue lists and registries of the bench's queues, restricted to the site's id prefix,
then fetched in one pipeline (``Job.fetch_many``). The actions (cancel a queued job, stop a running one, delete
one) keep the ledger truthful: a scheduled run removed from RQ by an operator is recorded as ``skipped`` or
``failed`` with who did it, instead of being taken for a run Redis lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import redis
from rq import Worker, worker_registration
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job
from rq.utils import parse_composite_key

from ..broker.discard import delete_job
from ..broker.keys import short_queue, site_prefix, user_job_id
from ..context import SiteContext
from ..exceptions import HookSchedulerError, JobNotFound, shown
from ..schedule.send import rq_queue
from ..store import store_for
from ..store.models import utcnow
from .queues import drop_from_ledger

#: An operator action on one RQ job: (site, connection, job id, who, now) -> the full job id.
Action = Callable[[SiteContext, redis.Redis, str, str, "datetime | None"], str]

#: RQ job statuses, in the order the listing shows them.
JOB_STATUSES = ("queued", "started", "deferred", "scheduled", "finished", "failed", "canceled")


def _text(value: Any) -> str:
    """bytes, str or an enum such as RQ's JobStatus -> its plain text value."""
    if isinstance(value, bytes):
        return value.decode()
    return str(getattr(value, "value", value))


def _naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def job_ids_by_status(conn: redis.Redis, bench_id: str, site: str, queues: Sequence[str],
                      statuses: Sequence[str] = JOB_STATUSES) -> list[tuple[str, str, str]]:
    """(queue, status, job id) of the site's jobs, from the lists and registries (one pipeline)."""
    prefix = site_prefix(bench_id, site)
    now = time.time()
    plan: list[tuple[str, str]] = []
    with conn.pipeline(transaction=False) as pipe:
        for name in queues:
            q = rq_queue(conn, bench_id, name)
            keys = {"started": q.started_job_registry.key, "deferred": q.deferred_job_registry.key,
                    "scheduled": q.scheduled_job_registry.key, "finished": q.finished_job_registry.key,
                    "failed": q.failed_job_registry.key, "canceled": q.canceled_job_registry.key}
            for status in statuses:
                plan.append((name, status))
                if status == "queued":
                    pipe.lrange(q.key, 0, -1)
                elif status in ("scheduled", "deferred"):
                    pipe.zrange(keys[status], 0, -1)
                else:  # expired entries are what RQ's cleanup would drop
                    pipe.zrangebyscore(keys[status], now, "+inf")
        raw = pipe.execute()
    out: list[tuple[str, str, str]] = []
    for (name, status), ids in zip(plan, raw, strict=True):
        for entry in ids:
            jid = parse_composite_key(_text(entry))[0] if status == "started" else _text(entry)
            if jid.startswith(prefix):
                out.append((name, status, jid))
    return list(dict.fromkeys(out))


def job_label(job: Job) -> str:
    """What the job is, for people: the scheduled job's name, else ``job_name``, else the function."""
    meta = (job.meta or {}).get("hookscheduler") or {}
    if isinstance(meta, dict) and meta.get("job"):
        return str(meta["job"])
    try:
        kwargs = job.kwargs or {}
    except Exception:  # an undecodable payload must not break the listing
        kwargs = {}
    name = kwargs.get("job_name") or kwargs.get("job_type") or job.func_name or "?"
    return str(name)


def job_view(job: Job, bench_id: str, status: str | None = None, detail: bool = False) -> dict[str, Any]:
    """The RQ Job view's columns (Frappe's names) for one job."""
    started, ended = _naive(job.started_at), _naive(job.ended_at)
    view: dict[str, Any] = {
        "job_id": job.id, "job_name": job_label(job), "queue": short_queue(job.origin, bench_id) or job.origin,
        "status": status or _text(job.get_status(refresh=False)), "creation": _naive(job.created_at),
        "enqueued_at": _naive(job.enqueued_at), "started_at": started, "ended_at": ended,
        "time_taken": (ended - started).total_seconds() if started and ended else None,
        "timeout": job.timeout, "worker_name": job.worker_name,
    }
    if detail:
        try:
            view["arguments"] = job.kwargs
        except Exception as exc:
            view["arguments"] = f"<cannot decode: {type(exc).__name__}>"
        view["description"] = job.description
        result = job.latest_result()
        view["exc_info"] = result.exc_string if result is not None and result.exc_string else None
    return view


def list_jobs(conn: redis.Redis, bench_id: str, site: str, queues: Sequence[str], status: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    entries = job_ids_by_status(conn, bench_id, site, queues, [status] if status else JOB_STATUSES)[:limit]
    jobs = Job.fetch_many([jid for _, _, jid in entries], connection=conn)
    return [job_view(job, bench_id, st) for (_, st, _), job in zip(entries, jobs, strict=True) if job is not None]


def resolve_job(conn: redis.Redis, bench_id: str, site: str, job_id: str) -> Job:
    """The site's RQ job with this id (the site prefix may be left out, and the id given as the application
    chose it, as ``enqueue(job_id=...)`` stores it); JobNotFound otherwise."""
    prefix = site_prefix(bench_id, site)
    full = job_id if job_id.startswith(prefix) else user_job_id(bench_id, site, job_id)
    if not job_id.startswith(prefix) and job_id.startswith(f"{bench_id}_"):
        full = job_id  # another site's id: never found here
    jobs = Job.fetch_many([full], connection=conn) if full.startswith(prefix) else [None]
    if jobs[0] is None:
        raise JobNotFound(f"RQ job {shown(job_id)} not found for site {site} (finished jobs are kept "
                          "rq_results_ttl seconds); see `hookscheduler rq-jobs list`")
    return jobs[0]


def show(conn: redis.Redis, bench_id: str, site: str, job_id: str) -> dict[str, Any]:
    return job_view(resolve_job(conn, bench_id, site, job_id), bench_id, detail=True)


def cancel(ctx: SiteContext, conn: redis.Redis, job_id: str, who: str, now: datetime | None = None) -> str:
    """Cancel a queued job (as Frappe: only a queued one); its scheduled run is logged skipped."""
    job = resolve_job(conn, ctx.bench.bench_id, ctx.name, job_id)
    status = _text(job.get_status())
    if status != "queued":
        raise HookSchedulerError(f"RQ job {job.id} is {status}; only a queued job can be canceled "
                                 "(use `rq-jobs stop` for a running one)")
    _ledger(ctx, [job.id], f"canceled by {who} (rq-jobs cancel)", now)
    job.cancel()
    return job.id


def stop(ctx: SiteContext, conn: redis.Redis, job_id: str, who: str, now: datetime | None = None) -> str:
    """Ask the worker running the job to stop it; its scheduled run is logged failed, stopped by ``who``."""
    job = resolve_job(conn, ctx.bench.bench_id, ctx.name, job_id)
    if _text(job.get_status()) != "started":
        raise HookSchedulerError(f"RQ job {job.id} is not running ({_text(job.get_status())}); nothing to stop")
    try:
        send_stop_job_command(conn, job.id)
    except InvalidJobOperation as exc:
        raise HookSchedulerError(f"RQ job {job.id}: {exc}") from None
    store = store_for(ctx.database())
    with store.transaction():
        # RQ says started before the runner records it: a still-queued row is closed too (and the runner,
        # finding no queued row, will not run it)
        store.fail_active(job.id, f"stopped by {who} (rq-jobs stop)", now or utcnow())
    return job.id


def delete(ctx: SiteContext, conn: redis.Redis, job_id: str, who: str, now: datetime | None = None) -> str:
    """Delete the job from RQ (queue, registries, hash); a queued scheduled run is logged skipped."""
    job = resolve_job(conn, ctx.bench.bench_id, ctx.name, job_id)
    _ledger(ctx, [job.id], f"deleted from RQ by {who} (rq-jobs delete)", now)
    delete_job(job)  # also a job whose worker was killed, which RQ's own delete refuses for a minute
    return job.id


def _ledger(ctx: SiteContext, ids: list[str], reason: str, now: datetime | None) -> None:
    store = store_for(ctx.database())
    with store.transaction():
        drop_from_ledger(store, ids, reason, now or utcnow())


# --- workers ---------------------------------------------------------------------------------------------

def list_workers(conn: redis.Redis, bench_id: str, site: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """The bench's workers (those listening on at least one of its queues), Frappe's RQ Worker columns."""
    now = now or utcnow()
    prefix = site_prefix(bench_id, site)
    out = []
    for worker in Worker.all(connection=conn):
        names = [q.name for q in worker.queues]
        mine = [short_queue(n, bench_id) for n in names if short_queue(n, bench_id)]
        if not mine or not worker.pid:
            continue
        birth = _naive(worker.birth_date)
        uptime = (now - birth).total_seconds() if birth else 0.0
        current = worker.get_current_job_id() if hasattr(worker, "get_current_job_id") else None
        out.append({
            "worker_name": worker.name, "status": worker.get_state(), "queue": ", ".join(names),
            "queue_type": ", ".join(q for q in mine if q), "pid": worker.pid, "hostname": worker.hostname,
            "current_job_id": current if current and current.startswith(prefix) else None,
            "successful_job_count": worker.successful_job_count, "failed_job_count": worker.failed_job_count,
            "total_working_time": worker.total_working_time, "birth_date": birth,
            "last_heartbeat": _naive(worker.last_heartbeat),
            "utilization_percent": round(worker.total_working_time / uptime * 100, 2) if uptime > 0 else 0.0,
        })
    return sorted(out, key=lambda w: str(w["worker_name"]))


def workers_per_queue(conn: redis.Redis, bench_id: str, queues: Sequence[str]) -> dict[str, int]:
    """How many live workers listen on each queue (RQ's per-queue worker sets, then one EXISTS per member in
    one pipeline: a worker killed with -9 stays in the set until RQ's cleanup, but its key expires)."""
    keys = {q: sorted(worker_registration.get_keys(queue=rq_queue(conn, bench_id, q), connection=conn))
            for q in queues}
    with conn.pipeline(transaction=False) as pipe:
        for q in queues:
            for key in keys[q]:
                pipe.exists(key)
        alive = iter(pipe.execute())
    return {q: sum(1 for _ in keys[q] if next(alive)) for q in queues}


__all__ = [
    "JOB_STATUSES", "Action", "cancel", "delete", "job_ids_by_status", "job_label", "job_view", "list_jobs",
    "list_workers", "resolve_job", "show", "stop", "workers_per_queue",
]
