"""``hookscheduler.enqueue``: Frappe's ``frappe.enqueue`` on RQ, for an app's own background work.

The API finds its bench and site as the CLI does (``$HOOKSCHEDULER_BENCH``, ``$HOOKSCHEDULER_SITE``, the
current directory) unless the application called :func:`init` first; code running inside a job always
enqueues for the job's own site (a worker serves every site of its bench).

What is sent to RQ is a call of :func:`hookscheduler.worker.runner.execute_job` with the site, the method's dotted
path and its keyword arguments: the worker imports the method itself, so a callable must be importable by
its module and qualified name (no lambdas or nested functions), and the arguments must pickle.

Queues are the bench's (``<bench_id>:<queue>``): ``short``, ``default``, ``long`` and the custom queues under
``workers`` in ``common_site_config.json``. Job ids are namespaced per site (``naming.user_job_id``), so two
sites (or benches) sharing one Redis never collide; every function here accepts either the id the
application chose or the full id RQ reports.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import peewee as pw
import redis
from rq import Callback, Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus

from ..broker.connection import redis_for
from ..broker.keys import site_prefix, user_job_id
from ..config import load_bench
from ..context import SiteContext, open_site
from ..declare.hooks import ensure_apps_on_path
from ..exceptions import HookSchedulerError, QueueNotFound
from ..schedule.send import rq_queue
from ..store import ledger_reads
from ..store.models import database_proxy
from ..worker.runner import JobContext, bound_context, import_path, job_context, worker_site

log = logging.getLogger(__name__)

EXECUTE = "hookscheduler.runner.execute_job"
RUN_DOC = "hookscheduler.runner.run_doc_method"
#: RQ statuses in which a job is still to run (deduplicate returns None while a twin is in one of them)
PENDING = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)

_INIT: dict[str, str | None] = {"bench": None, "site": None}
_SITES: dict[tuple[str | None, str | None], SiteContext] = {}


def init(bench: str | os.PathLike[str] | None = None, site: str | None = None) -> None:
    """Choose the bench and site the API works on (instead of the environment or the current directory).

    A bench given here has its ``apps/`` put on ``sys.path`` at once, as the CLI and the workers do: a script
    outside the bench must be able to pass its apps' dotted paths (``enqueue(..., now=True)`` imports the method
    in this process) and import their modules itself. A bench that cannot be loaded is refused here, by name."""
    _INIT["bench"] = os.fspath(bench) if bench is not None else None
    _INIT["site"] = site
    _SITES.clear()
    if bench is not None:
        ensure_apps_on_path(load_bench(bench))


def current_site() -> SiteContext:
    """The site the API acts for: the running job's, else :func:`init`'s, else the environment's. The bench's
    ``apps/`` goes on ``sys.path`` when its site is first opened (a bench found by the environment or the current
    directory, too), so that its apps' dotted paths import here."""
    jctx = job_context()
    if jctx is not None:
        return worker_site(jctx.site)
    key = (_INIT["bench"] or os.environ.get("HOOKSCHEDULER_BENCH") or os.getcwd(),
           _INIT["site"] or os.environ.get("HOOKSCHEDULER_SITE"))
    ctx = _SITES.get(key)
    if ctx is None:
        ctx = open_site(key[0], key[1])
        ensure_apps_on_path(ctx.bench)
        _SITES[key] = ctx
    return ctx


def method_path(method: str | Callable[..., Any]) -> str:
    """The dotted path a worker imports ``method`` by; refuses callables it could not import."""
    if isinstance(method, str):
        if "." not in method.strip(".") or " " in method:
            raise ValueError(f"method {method!r} is not a dotted path such as 'my_app.tasks.run'")
        return method
    module = getattr(method, "__module__", None)
    qualname = getattr(method, "__qualname__", None)
    if not callable(method) or not module or not qualname:
        raise TypeError(f"method must be a dotted path or an importable function, not {type(method).__name__}")
    if "<" in qualname or module == "__main__":
        raise ValueError(f"cannot enqueue {module}.{qualname}: a worker imports the method by its dotted path, "
                         "so use a module-level function of an importable module")
    return f"{module}.{qualname}"


def validate_queue(ctx: SiteContext, queue: str) -> int:
    """The queue's default timeout; QueueNotFound listing the valid queues for an unknown one."""
    queues = ctx.site.queues
    if queue not in queues:
        raise QueueNotFound(f"queue {queue!r} does not exist; valid queues: {', '.join(queues)} "
                            "(custom queues are declared under 'workers' in common_site_config.json)")
    return queues[queue]


def full_job_id(job_id: str, ctx: SiteContext | None = None) -> str:
    """The RQ id of an application's ``job_id`` on the current site (a full id is returned as is)."""
    ctx = ctx or current_site()
    prefix = site_prefix(ctx.bench.bench_id, ctx.site.name)
    return job_id if job_id.startswith(prefix) else user_job_id(ctx.bench.bench_id, ctx.site.name, job_id)


def enqueue(method: str | Callable[..., Any], queue: str = "default", timeout: int | None = None,
            is_async: bool = True, now: bool = False, job_name: str | None = None,
            enqueue_after_commit: bool = False, at_front: bool = False, job_id: str | None = None,
            deduplicate: bool = False, on_success: Callable[..., Any] | str | None = None,
            on_failure: Callable[..., Any] | str | None = None, **kwargs: Any) -> Any:
    """Run ``method(**kwargs)`` in a background worker of the current site (Frappe's ``frappe.enqueue``).

    Returns the RQ :class:`~rq.job.Job`; the method's result when run inline (``now=True`` or
    ``is_async=False``); None when ``deduplicate`` found a twin still queued or started, or when
    ``enqueue_after_commit`` deferred it. ``on_success(job, connection, result)`` and
    ``on_failure(job, connection, type, value, traceback)`` are RQ callbacks (functions or dotted paths).
    """
    is_async = kwargs.pop("async", is_async)  # Frappe's legacy spelling
    ctx = current_site()
    queue_timeout = validate_queue(ctx, queue)
    rq_id = full_job_id(job_id, ctx) if job_id else None
    conn = redis_for(ctx.site)
    if deduplicate:
        if not rq_id:
            raise ValueError("deduplicate=True needs a job_id (the identity of the job to deduplicate)")
        if not _clear_twin(conn, rq_id):
            log.info("not queueing %s: job %s is already queued or running", _label(method), rq_id)
            return None
    if now or not is_async:
        return run_inline(ctx, method, job_name, kwargs)
    path = method_path(method)

    def send() -> Job | None:
        return _send(ctx, conn, path, queue, timeout or queue_timeout, job_name, at_front, rq_id, deduplicate,
                     on_success, on_failure, kwargs)

    if enqueue_after_commit and _defer_until_commit(send):
        return None
    return send()


def run_inline(ctx: SiteContext, method: str | Callable[..., Any], job_name: str | None,
               kwargs: dict[str, Any]) -> Any:
    """``now=True``: call the method here, in the caller's transaction, with a job context."""
    fn = import_path(method) if isinstance(method, str) else method
    name = _label(method)
    jctx = JobContext(ctx.site.name, job_name or name, name, "inline", None, None, kind="background")
    with bound_context(jctx):
        return fn(**kwargs)


def _label(method: str | Callable[..., Any]) -> str:
    if isinstance(method, str):
        return method
    return f"{getattr(method, '__module__', '?')}.{getattr(method, '__qualname__', repr(method))}"


def _clear_twin(conn: redis.Redis, rq_id: str) -> bool:
    """False while a job with this id is pending; otherwise delete a finished/failed twin and return True."""
    job = Job.fetch_many([rq_id], connection=conn)[0]
    if job is None:
        return True
    if job.get_status(refresh=False) in PENDING:
        return False
    job.delete()  # a finished or failed twin is replaced (rq#793: re-using an id needs the old job gone)
    return True


def _defer_until_commit(send: Callable[[], Job | None]) -> bool:
    """Register ``send`` to run when the site database's current transaction commits (dropped on rollback).
    False when no transaction is open: then the job is sent at once."""
    db = database_proxy.obj
    if not isinstance(db, pw.Database) or not db.in_transaction():
        return False
    db.after_commit(send)
    return True


def _callback(fn: Callable[..., Any] | str | None) -> Callback | None:
    return Callback(fn if isinstance(fn, str) else method_path(fn)) if fn is not None else None


def _send(ctx: SiteContext, conn: redis.Redis, path: str, queue: str, timeout: int, job_name: str | None,
          at_front: bool, rq_id: str | None, unique: bool, on_success: Callable[..., Any] | str | None,
          on_failure: Callable[..., Any] | str | None, kwargs: dict[str, Any]) -> Job | None:
    q = rq_queue(conn, ctx.bench.bench_id, queue)
    try:
        return q.enqueue_call(
            EXECUTE, kwargs=_job_kwargs(ctx, path, job_name, kwargs), timeout=timeout, at_front=at_front,
            job_id=rq_id or f"{site_prefix(ctx.bench.bench_id, ctx.site.name)}{uuid.uuid4().hex}",
            result_ttl=ctx.site.settings.rq_results_ttl, failure_ttl=ctx.site.settings.rq_job_failure_ttl,
            description=f"{job_name or path} [site {ctx.site.name}]",
            meta={"hookscheduler": {"site": ctx.site.name, "job": job_name or path, "method": path}},
            on_success=_callback(on_success), on_failure=_callback(on_failure), unique=unique,
        )
    except DuplicateJobError:  # a twin was enqueued between our check and our write
        log.info("not queueing %s: job %s was queued meanwhile", path, rq_id)
        return None


def _job_kwargs(ctx: SiteContext, path: str, job_name: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"site": ctx.site.name, "method": path, "job_name": job_name or path, "kwargs": kwargs}


def enqueue_doc(model: str | type, name: Any, method: str, queue: str = "default", timeout: int | None = None,
                now: bool = False, **kwargs: Any) -> Any:
    """Load the record of ``model`` (a peewee model, or its dotted path) with primary key ``name`` in the
    worker and call its ``method(**kwargs)`` there (Frappe's ``enqueue_doc``). The model must be bound to a
    database in the worker, e.g. declared on ``hookscheduler.models.database_proxy`` (the site's database)."""
    model_path = model if isinstance(model, str) else method_path(model)
    options = {k: kwargs.pop(k) for k in ("job_name", "enqueue_after_commit", "at_front", "job_id", "deduplicate",
                                          "on_success", "on_failure", "is_async") if k in kwargs}
    options.setdefault("job_name", f"{model_path}.{method}")
    return enqueue(RUN_DOC, queue=queue, timeout=timeout, now=now, doc_model=model_path, doc_name=name,
                   doc_method=method, doc_kwargs=kwargs, **options)


def enqueue_batches(method: str | Callable[..., Any], items: Iterable[Any], batch_size: int = 100, *,
                    arg_name: str = "items", queue: str = "default", timeout: int | None = None,
                    job_name: str | None = None, at_front: bool = False, **kwargs: Any) -> list[Job]:
    """Split ``items`` into jobs of ``batch_size``: ``method(**{arg_name: batch}, **kwargs)`` per job, sent in
    one round trip (e.g. 10,000 invoices as 100 jobs of 100). Returns the jobs, in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    ctx = current_site()
    queue_timeout = validate_queue(ctx, queue)
    path = method_path(method)
    conn = redis_for(ctx.site)
    prefix = site_prefix(ctx.bench.bench_id, ctx.site.name)
    it = iter(items)
    data = []
    for i in itertools.count():
        batch = list(itertools.islice(it, batch_size))
        if not batch:
            break
        name = f"{job_name or path} (batch {i + 1})"
        data.append(Queue.prepare_data(
            EXECUTE, kwargs=_job_kwargs(ctx, path, name, {**kwargs, arg_name: batch}), timeout=timeout or queue_timeout,
            job_id=f"{prefix}{uuid.uuid4().hex}", at_front=at_front, description=f"{name} [site {ctx.site.name}]",
            result_ttl=ctx.site.settings.rq_results_ttl, failure_ttl=ctx.site.settings.rq_job_failure_ttl,
            meta={"hookscheduler": {"site": ctx.site.name, "job": name, "method": path}}))
    if not data:
        return []
    with conn.pipeline() as pipe:
        jobs = rq_queue(conn, ctx.bench.bench_id, queue).enqueue_many(data, pipeline=pipe)
        pipe.execute()
    return list(jobs)


def get_job(job_id: str) -> Job | None:
    """The RQ job of ``job_id`` on the current site, or None (Frappe's ``get_job``)."""
    ctx = current_site()
    return Job.fetch_many([full_job_id(job_id, ctx)], connection=redis_for(ctx.site))[0]


def get_job_status(job_id: str) -> JobStatus | None:
    """``queued``, ``started``, ``finished``, ``failed``, ... (RQ's :class:`~rq.job.JobStatus`), or None when
    Redis has no such job (never enqueued, or its result expired)."""
    job = get_job(job_id)
    return job.get_status(refresh=False) if job is not None else None


def is_job_enqueued(job_id: str) -> bool:
    """True while the job is queued or running (Frappe's ``is_job_enqueued``)."""
    return get_job_status(job_id) in (JobStatus.QUEUED, JobStatus.STARTED)


def describe_job(job_id: str, ctx: SiteContext | None = None) -> dict[str, Any] | None:
    """Everything known about a job, for ``hookscheduler job-status``: RQ's view (while Redis keeps the job)
    and, for a scheduled run, its Scheduled Job Log row (which outlives RQ's ``rq_results_ttl``).
    None when neither knows the id."""
    ctx = ctx or current_site()
    rq_id = full_job_id(job_id, ctx)
    info: dict[str, Any] = {"job_id": rq_id, "site": ctx.site.name, "status": None}
    job = Job.fetch_many([rq_id], connection=redis_for(ctx.site))[0]
    if job is not None:
        info.update(_rq_fields(job))
    row = _log_row(ctx, rq_id)
    if row is not None:
        info["log"] = {"status": row.status, "reason": row.reason, "job": row.job_name, "trigger": row.trigger,
                       "scheduled_for": row.scheduled_for, "started_at": row.started_at,
                       "finished_at": row.finished_at, "duration": row.duration, "worker": row.worker,
                       "traceback": row.traceback}
        info["status"] = info["status"] or row.status
    return info if job is not None or row is not None else None


def _rq_fields(job: Job) -> dict[str, Any]:
    kwargs = job.kwargs if isinstance(job.kwargs, dict) else {}
    out: dict[str, Any] = {
        "status": str(job.get_status(refresh=False).value), "queue": str(job.origin).rpartition(":")[2],
        "method": kwargs.get("method") or job.func_name, "job_name": kwargs.get("job_name"),
        "enqueued_at": job.enqueued_at, "started_at": job.started_at, "ended_at": job.ended_at,
        "worker": job.worker_name, "error": None, "result": None,
    }
    result = job.latest_result()
    if result is not None and result.type == result.Type.FAILED and result.exc_string:
        out["error"] = result.exc_string.strip().splitlines()[-1]
        out["traceback"] = result.exc_string
    elif result is not None and result.type == result.Type.SUCCESSFUL:
        text = repr(result.return_value)
        out["result"] = text if len(text) <= 500 else text[:497] + "..."
    return out


def _log_row(ctx: SiteContext, rq_id: str) -> Any:
    if not rq_id.startswith(site_prefix(ctx.bench.bench_id, ctx.site.name) + "sched-"):
        return None
    try:
        ctx.database()
        return ledger_reads.row_of_run(rq_id)
    except (pw.PeeweeException, HookSchedulerError):
        return None
