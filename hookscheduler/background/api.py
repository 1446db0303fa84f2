"""``hookscheduler.enqueue``: Frappe's ``frappe.enqueue`` on RQ, for an app's own background work.

The API finds its bench and site as the CLI does (``$HOOKSCHEDULER_BENCH``, ``$HOOKSCHEDULER_SITE``, the
current directory) unless the application called :func:`init` first; code running inside a job always
enqueues for the job's own site (a worker serves every site of its bench).

What is sent to RQ is a call of :func:`hookscheduler.worker.runner.execute_job` with the site, the method's dotted
path and its keyword arguments: the worker imports the method itself, so a callable must be importable by
its module and qualified name (no lambdas or nested functions), and the arguments must pickle. Both are checked
by the call, with the options, before anything is written (:func:`enqueue`): a worker or the end of a
transaction would find the mistake later, far from the code that made it.

Queues are the bench's (``<bench_id>:<queue>``): ``short``, ``default``, ``long`` and the custom queues under
``workers`` in ``common_site_config.json``. Job ids are namespaced per site (``naming.user_job_id``), so two
sites (or benches) sharing one Redis never collide; every function here accepts either the id the
application chose or the full id RQ reports.
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
import os
import pickle
import types
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import peewee as pw
import redis
from rq import Callback, Queue
from rq.exceptions import DuplicateJobError, InvalidJobOperation
from rq.job import Job, JobStatus

from ..broker.connection import redis_for
from ..broker.discard import delete_job
from ..broker.keys import site_prefix, user_job_id
from ..config import MAX_TIMEOUT, load_bench
from ..context import SiteContext, open_site
from ..declare.hooks import check_method, ensure_apps_on_path, exception_line, resolve_method
from ..exceptions import HookSchedulerError, QueueNotFound, shown
from ..followed import FollowedSite
from ..schedule.send import rq_queue
from ..security.redact import redact
from ..store import ledger_reads
from ..store.models import database_proxy
from ..worker.runner import JobContext, bound_context, import_path, job_context, worker_site

log = logging.getLogger(__name__)

EXECUTE = "hookscheduler.runner.execute_job"
RUN_DOC = "hookscheduler.runner.run_doc_method"
#: RQ statuses in which a job is still to run (deduplicate returns None while a twin is in one of them)
PENDING = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)

#: What :meth:`~hookscheduler.config.Bench.require_bench` tells the API's caller to do instead
_NOT_A_BENCH = ("run your code", "call hookscheduler.init(bench=PATH) or set $HOOKSCHEDULER_BENCH")

_INIT: dict[str, str | None] = {"bench": None, "site": None}
_SITES: dict[tuple[str, str | None], FollowedSite] = {}


def init(bench: str | os.PathLike[str] | None = None, site: str | None = None) -> None:
    """Choose the bench and site the API works on (instead of the environment or the current directory).

    A bench given here has its ``apps/`` put on ``sys.path`` at once, as the CLI and the workers do: a script
    outside the bench must be able to pass its apps' dotted paths (``enqueue(..., now=True)`` imports the method
    in this process) and import their modules itself. A bench that cannot be loaded, or a folder that is not a
    bench (no ``apps/``), is refused here, by name."""
    _INIT["bench"] = os.fspath(bench) if bench is not None else None
    _INIT["site"] = site
    _SITES.clear()
    if bench is not None:
        chosen = load_bench(bench)
        chosen.require_bench(*_NOT_A_BENCH)
        ensure_apps_on_path(chosen)


def current_site() -> SiteContext:
    """The site the API acts for: the running job's, else :func:`init`'s, else the environment's. The bench's
    ``apps/`` goes on ``sys.path`` when its site is first opened (a bench found by the environment or the current
    directory, too), so that its apps' dotted paths import here. A folder without ``apps/`` is refused: its jobs
    would go to a bench id (derived from the folder) that no worker serves, and to whatever Redis the defaults
    name, where they would wait for ever.

    The site is chosen once per process (and per :func:`init`), but its config is followed: an application
    process lives as long as a worker, and after ``set-config redis_queue`` or ``set-config db_url`` its jobs
    must go where the workers and the scheduler now look (:class:`~hookscheduler.followed.FollowedSite`)."""
    jctx = job_context()
    if jctx is not None:
        return worker_site(jctx.site)
    key = (_INIT["bench"] or os.environ.get("HOOKSCHEDULER_BENCH") or os.getcwd(),
           _INIT["site"] or os.environ.get("HOOKSCHEDULER_SITE"))
    known = _SITES.get(key)
    if known is not None:
        return known.current()
    ctx = open_site(key[0], key[1])
    ctx.bench.require_bench(*_NOT_A_BENCH)
    ensure_apps_on_path(ctx.bench)
    _SITES[key] = FollowedSite.start(ctx, key[0], "this process", log)
    return ctx


def method_path(method: str | Callable[..., Any]) -> str:
    """The dotted path a worker imports ``method`` by; refuses callables it could not import."""
    if isinstance(method, str):
        if "." not in method.strip(".") or " " in method or not method.isprintable():
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


def _checked_path(fn: str, what: str, method: Any) -> str:
    """:func:`method_path` with the refusal of the other options: the call and the parameter named, and that
    nothing was queued (a bad ``on_failure`` was reported as a bad ``method``)."""
    try:
        return method_path(method)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        text = f"{what} {text.removeprefix('method ')}" if text.startswith("method ") else f"{what}: {text}"
        raise type(exc)(f"{fn}: {text}; nothing was queued") from None


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
            on_failure: Callable[..., Any] | str | None = None, event: str | None = None, **kwargs: Any) -> Any:
    """Run ``method(**kwargs)`` in a background worker of the current site (Frappe's ``frappe.enqueue``).

    Every keyword of ``frappe.enqueue`` is the call's own, never the method's: ``event`` (a label, Frappe's
    scheduler event that queued the job) is kept in the job's meta (``job.meta["hookscheduler"]["event"]``).

    Returns the RQ :class:`~rq.job.Job`; the method's result when run inline (``now=True`` or
    ``is_async=False``); None when ``deduplicate`` found a twin still queued or started, or when
    ``enqueue_after_commit`` deferred it. ``on_success(job, connection, result)`` and
    ``on_failure(job, connection, type, value, traceback)`` are RQ callbacks (functions or dotted paths).

    Everything is checked here, before anything is written, so that a mistake is reported by the call that
    made it rather than by a worker later (or, deferred, by the end of a transaction that has committed): the
    options, that a dotted path imports, that the arguments serialise (the job's payload is built now, and a
    deferred job sends that payload, so later changes to an argument do not reach it). A ``job_id`` whose job is
    still queued or running is refused (:class:`~rq.exceptions.DuplicateJobError`) unless ``deduplicate``:
    RQ would queue the id twice and run the second call's arguments twice. A deferred job that cannot be sent
    after its commit (Redis down) is logged at ERROR; the commit stands and the other deferred jobs are sent.
    """
    is_async = kwargs.pop("async", is_async)  # Frappe's legacy spelling
    is_async, now, enqueue_after_commit, at_front, deduplicate = (
        _flag("enqueue", name, value) for name, value in (
            ("is_async", is_async), ("now", now), ("enqueue_after_commit", enqueue_after_commit),
            ("at_front", at_front), ("deduplicate", deduplicate)))
    _check_options("enqueue", queue, timeout, job_name)
    _check_text("enqueue", "job_id", job_id)
    _check_text("enqueue", "event", event)
    if deduplicate and job_id is None:
        raise ValueError("deduplicate=True needs a job_id (the identity of the job to deduplicate)")
    ctx = current_site()
    queue_timeout = validate_queue(ctx, queue)
    rq_id = full_job_id(job_id, ctx) if job_id is not None else None
    conn = redis_for(ctx.site)
    if now or not is_async:
        if rq_id is not None and deduplicate and _pending_twin(conn, rq_id):
            log.info("not running %s: job %s is already queued or running", _label(method), rq_id)
            return None
        return run_inline(ctx, method, job_name, kwargs)
    path = _checked_path("enqueue", "method", method)
    if isinstance(method, str):
        _require_importable("enqueue", "method", path)
    callbacks = _callback("on_success", on_success), _callback("on_failure", on_failure)
    q = rq_queue(conn, ctx.bench.bench_id, queue)
    job = _build_job(q, ctx, path, timeout or queue_timeout, job_name, rq_id, callbacks, kwargs, event)
    db = _open_transaction() if enqueue_after_commit else None
    if db is None:
        return _put(q, job, path, at_front, job_id, deduplicate)
    if rq_id is not None:
        status = _pending_twin(conn, rq_id)
        if status is None and _deferred_in_transaction(db, rq_id):
            if deduplicate:
                log.info("not deferring %s: job %s is already deferred by this transaction", path, rq_id)
                return None
            raise DuplicateJobError(f"enqueue: job {shown(job_id)} is already deferred by this transaction "
                                    "(enqueue_after_commit); pass deduplicate=True to skip the call, or choose "
                                    "another job_id; nothing was queued")
        if status is not None:
            if deduplicate:
                log.info("not queueing %s: job %s is already queued or running", path, rq_id)
                return None
            raise _duplicate(job_id, status)
    db.after_commit(functools.partial(_put_after_commit, q, job, path, at_front, job_id, deduplicate))
    return None


def run_inline(ctx: SiteContext, method: str | Callable[..., Any], job_name: str | None,
               kwargs: dict[str, Any]) -> Any:
    """``now=True``: call the method here, in the caller's transaction, with a job context."""
    fn = import_path(method_path(method)) if isinstance(method, str) else method
    name = _label(method)
    jctx = JobContext(ctx.site.name, job_name or name, name, "inline", None, None, kind="background")
    with bound_context(jctx):
        return fn(**kwargs)


def _label(method: str | Callable[..., Any]) -> str:
    if isinstance(method, str):
        return method
    return f"{getattr(method, '__module__', '?')}.{getattr(method, '__qualname__', repr(method))}"


def _flag(fn: str, name: str, value: Any) -> bool:
    """A yes/no option: a bool, 0/1 or None (Frappe's code passes flags that are None when unset). Anything
    else is refused: the string 'false' is true in Python, and would run a job inline or at the front."""
    if value is None or isinstance(value, bool) or (type(value) is int and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{fn}: {name} must be True or False, got {shown(value)}; nothing was queued")


def _check_text(fn: str, name: str, value: Any) -> None:
    """A job's name or id: text, and printable, as a hooks.py ``name`` must be. Both reach the worker's log lines
    (RQ prints the job's description and id), where a newline would start a line of the caller's making."""
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ValueError(f"{fn}: {name} must be a non-empty string (or None), got {shown(value)}; nothing was queued")
    if value is not None and not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise ValueError(f"{fn}: {name} contains the control character {shown(bad)}, got {shown(value)}; pass one "
                         "line of printable text; nothing was queued")


def _check_options(fn: str, queue: Any, timeout: Any, job_name: Any) -> None:
    """The options every enqueue function takes. ``timeout`` follows hooks.py's rule: RQ takes 0 or less as
    "never time out", cuts 1.5 to 1 and 0.5 to 0, and reads strings its own way."""
    if not isinstance(queue, str):
        raise ValueError(f"{fn}: queue must be a queue's name such as 'default', got {shown(queue)}; "
                         "nothing was queued")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)
                                or not 0 < timeout <= MAX_TIMEOUT):
        raise ValueError(f"{fn}: timeout must be a whole number of seconds from 1 to {MAX_TIMEOUT} (or None for "
                         f"the queue's), got {shown(timeout)}; nothing was queued")
    _check_text(fn, "job_name", job_name)


def _require_importable(fn: str, what: str, path: str, scan: bool = True) -> None:
    """Refuse a dotted path that does not resolve: the worker imports it only when the job runs, and would fail
    there (a callback, after the method ran, failing a job that did its work). Checked as ``migrate`` checks a
    hooks.py's methods: a module not imported yet whose source defines the name is not imported here (unless
    ``scan`` is False: the caller needs the object)."""
    problem = check_method(path, scan=scan)
    if problem is not None:
        raise ValueError(f"{fn}: {what}: {problem}; name a module-level function the workers can import "
                         "(app.module.function); nothing was queued")


def _callback(name: str, fn: Callable[..., Any] | str | None) -> Callback | None:
    if fn is None:
        return None
    path = _checked_path("enqueue", name, fn)
    if isinstance(fn, str):
        _require_importable("enqueue", name, path)
    return Callback(path)


def _build_job(q: Queue, ctx: SiteContext, path: str, timeout: int, job_name: str | None, rq_id: str | None,
               callbacks: tuple[Callback | None, Callback | None], kwargs: dict[str, Any],
               event: str | None = None) -> Job:
    """The job, its payload serialised now: an argument that cannot be is refused by the call that passed it
    (deferred, it would fail at the commit), and a deferred job keeps the arguments as they were at the call."""
    meta: dict[str, Any] = {"site": ctx.site.name, "job": job_name or path, "method": path}
    if event is not None:
        meta["event"] = event
    job = q.create_job(
        EXECUTE, kwargs=_job_kwargs(ctx, path, job_name, kwargs), timeout=timeout,
        job_id=rq_id or f"{site_prefix(ctx.bench.bench_id, ctx.site.name)}{uuid.uuid4().hex}",
        result_ttl=ctx.site.settings.rq_results_ttl, failure_ttl=ctx.site.settings.rq_job_failure_ttl,
        description=f"{job_name or path} [site {ctx.site.name}]",
        meta={"hookscheduler": meta}, status=JobStatus.QUEUED, on_success=callbacks[0], on_failure=callbacks[1],
    )
    try:
        data = job.data
    except Exception as exc:
        raise TypeError(_bad_argument("enqueue", path, kwargs, job.serializer) or (
            f"enqueue({shown(path)}): the job cannot be serialised for the worker ({exception_line(exc)}); "
            "nothing was queued")) from exc
    _refuse_main("enqueue", path, [data], kwargs)
    return job


class _FoundMain(Exception):
    """Raised by :class:`_MainFinder` at the first class or function of ``__main__``."""


class _MainFinder(pickle.Pickler):
    """A pickler that stops at the first class or function it would store by reference to ``__main__``."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type | types.FunctionType) and getattr(obj, "__module__", None) == "__main__":
            raise _FoundMain(f"__main__.{getattr(obj, '__qualname__', '?')}")
        return NotImplemented


def _main_reference(value: Any) -> str | None:
    """``__main__.Name`` of the first class or function of ``__main__`` that pickling ``value`` stores."""
    try:
        _MainFinder(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except _FoundMain as found:
        return str(found)
    except Exception:  # what does not pickle is reported by the serialisation itself
        return None
    return None


def _refuse_main(fn: str, path: str, payloads: Iterable[bytes], arguments: dict[str, Any]) -> None:
    """Refuse arguments that pickle here but cannot be unpickled by a worker: an instance of a class, or a
    function, defined in the caller's ``__main__`` (a script) is stored as a reference to ``__main__``, which
    in the worker is the worker, so the job failed there with a ``DeserializationError`` and no ``failed``
    event. Only a payload that names ``__main__`` at all is looked at argument by argument."""
    if not any(b"__main__" in data for data in payloads):
        return
    for name, value in arguments.items():
        ref = _main_reference(value)
        if ref is not None:
            raise TypeError(f"{fn}({shown(path)}): argument {shown(name)} holds {ref}, defined in the script "
                            "that calls, which a worker cannot import; define it in a module of an app, or pass "
                            "what the job can rebuild it from (ids, strings, numbers, lists, dicts); "
                            "nothing was queued")


def _bad_argument(fn: str, path: str, arguments: dict[str, Any], serializer: Any) -> str | None:
    """The one-line error naming the first argument that cannot be serialised, or None when each can alone
    (looked for only once serialising them all failed)."""
    for name, value in arguments.items():
        try:
            serializer.dumps(value)
        except Exception as one:
            return (f"{fn}({shown(path)}): argument {shown(name)} cannot be serialised for the worker "
                    f"({exception_line(one)}); pass what the job can rebuild it from (ids, strings, numbers, lists, "
                    "dicts); nothing was queued")
    return None


def _pending_twin(conn: redis.Redis, rq_id: str) -> JobStatus | None:
    """The status of the job with this id while it is queued, started, deferred or scheduled; else None."""
    job = Job.fetch_many([rq_id], connection=conn)[0]
    if job is None:
        return None
    status = job.get_status(refresh=False)
    return status if status in PENDING else None


def _duplicate(job_id: str | None, status: JobStatus) -> DuplicateJobError:
    return DuplicateJobError(f"enqueue: job {shown(job_id)} is already {status.value}; pass deduplicate=True to "
                             "skip the call while it is pending, or choose another job_id; nothing was queued")


#: Rounds of (unique enqueue, replace a finished twin) before a call gives up: each lost round means another
#: process wrote the id in between, whose job is then pending, so a second round normally settles it
_PUT_ROUNDS = 5


def _put(q: Queue, job: Job, path: str, at_front: bool, job_id: str | None, deduplicate: bool) -> Job | None:
    """Write the built job to its queue. A job id the application chose goes through RQ's atomic unique
    enqueue, which refuses an id already in Redis: a finished or failed twin is then replaced
    (:func:`_replace_finished`, atomic); a pending one makes the call return None (``deduplicate``) or raise
    (RQ alone would queue the id twice)."""
    if job_id is None:
        return q.enqueue_job(job, at_front=at_front)
    status: JobStatus | None = None
    for _ in range(_PUT_ROUNDS):
        try:
            return q.enqueue_job(job, at_front=at_front, unique=True)
        except DuplicateJobError:
            pass
        replaced, status = _replace_finished(q, job, at_front)
        if replaced:
            return job
        if status is not None:
            break
    if deduplicate:  # a twin pending, or one written by another process each time we looked
        log.info("not queueing %s: job %s is already queued or running", path, job.id)
        return None
    raise _duplicate(job_id, status or JobStatus.QUEUED)


def _replace_finished(q: Queue, job: Job, at_front: bool) -> tuple[bool, JobStatus | None]:
    """Replace the finished (or failed, canceled, stopped) job that holds ``job``'s id by ``job``, in one
    transaction that Redis applies only if the twin's hash is unchanged since it was read (WATCH): of several
    processes re-using the id at once, exactly one replaces it; the others find its job pending (rq#793:
    re-using an id needs the old job gone, and each deleting what it had seen finished deleted the job another
    had just queued, which then ran twice). (True, None) when replaced; (False, status) when the twin is
    pending; (False, None) when the twin changed or vanished meanwhile (the caller tries again)."""
    conn = q.connection
    with conn.pipeline() as pipe:
        try:
            pipe.watch(job.key)  # type: ignore[no-untyped-call]
            twin = Job.fetch_many([job.id], connection=conn)[0]
            if twin is None:
                return False, None
            status = twin.get_status(refresh=False)
            if status in PENDING:
                return False, status
            pipe.multi()
            delete_job(twin, pipeline=pipe)
            q.enqueue_job(job, pipeline=pipe, at_front=at_front)
            pipe.execute()
        except (redis.WatchError, InvalidJobOperation):  # written or deleted by another process meanwhile
            return False, None
    return True, None


def _put_after_commit(q: Queue, job: Job, path: str, at_front: bool, job_id: str | None,
                      deduplicate: bool) -> None:
    """``enqueue_after_commit``'s send, run by the database once the transaction has committed. Its writes
    stand whatever happens here, so a failure is logged, not raised: raised, it would make the committed
    transaction look failed, and the database would drop the transaction's other deferred jobs."""
    try:
        _put(q, job, path, at_front, job_id, deduplicate)
    except Exception as exc:
        log.error("job %s (%s) was not queued after its transaction committed: %s; the transaction's writes "
                  "stand, so enqueue the job again once the cause is fixed, with its keyword arguments %s",
                  job.id, path, exception_line(exc), _logged_arguments(job))


#: The most characters of a deferred job's arguments written in the ERROR line of a send that failed
_LOGGED_ARGUMENTS_MAX = 2000


def _logged_arguments(job: Job) -> str:
    """The method's keyword arguments, for re-enqueueing a lost deferred job by hand: redacted (a password
    passed to a job is no more logged than one in a URL), on one line, cut when long."""
    payload = job.kwargs if isinstance(job.kwargs, dict) else {}
    text = redact(repr(payload.get("kwargs", {}))).replace("\n", "\\n")
    if len(text) > _LOGGED_ARGUMENTS_MAX:
        text = f"{text[:_LOGGED_ARGUMENTS_MAX]}... ({len(text) - _LOGGED_ARGUMENTS_MAX} characters cut)"
    return text


def _deferred_in_transaction(db: pw.Database, rq_id: str) -> bool:
    """True when the open transaction already defers a job with this id: found only after the commit, the
    second was refused then, logged at ERROR, far from the call that made it. The deferred sends are the
    database's commit callbacks (peewee clears them on commit and rollback)."""
    callbacks = getattr(getattr(db, "_state", None), "commit_callbacks", None) or []
    return any(isinstance(cb, functools.partial) and cb.func is _put_after_commit and cb.args[1].id == rq_id
               for cb in callbacks)


def _open_transaction() -> pw.Database | None:
    """The site database when a transaction is open on it (a deferred job is sent when it commits, dropped on
    rollback); None when there is none: the job is then sent at once."""
    db = database_proxy.obj
    if not isinstance(db, pw.Database) or not db.in_transaction():
        return None
    return db


def _job_kwargs(ctx: SiteContext, path: str, job_name: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"site": ctx.site.name, "method": path, "job_name": job_name or path, "kwargs": kwargs}


def enqueue_doc(model: str | type, name: Any, method: str, queue: str = "default", timeout: int | None = None,
                now: bool = False, **kwargs: Any) -> Any:
    """Load the record of ``model`` (a peewee model, or its dotted path) with primary key ``name`` in the
    worker and call its ``method(**kwargs)`` there (Frappe's ``enqueue_doc``). The model must be bound to a
    database in the worker, e.g. declared on ``hookscheduler.store.models.database_proxy`` (the site's database).
    A model that does not import, or that has no ``method``, is refused here (the worker would fail on it),
    whether given as a class or as a dotted path (which is imported to look); the options are :func:`enqueue`'s,
    checked by it."""
    model_path = model if isinstance(model, str) else method_path(model)
    if not isinstance(method, str) or not method.isidentifier():
        raise ValueError(f"enqueue_doc: method must be the name of a method of the model, got {shown(method)}; "
                         "nothing was queued")
    if isinstance(model, str):
        _require_importable("enqueue_doc", "model", model_path, scan=False)
        model = resolve_method(model_path)
    if not callable(getattr(model, method, None)):
        raise ValueError(f"enqueue_doc: model {model_path} has no method {shown(method)}; name one of its "
                         "methods; nothing was queued")
    options = {k: kwargs.pop(k) for k in ("job_name", "enqueue_after_commit", "at_front", "job_id", "deduplicate",
                                          "on_success", "on_failure", "is_async", "event") if k in kwargs}
    options.setdefault("job_name", f"{model_path}.{method}")
    return enqueue(RUN_DOC, queue=queue, timeout=timeout, now=now, doc_model=model_path, doc_name=name,
                   doc_method=method, doc_kwargs=kwargs, **options)


def enqueue_batches(method: str | Callable[..., Any], items: Iterable[Any], batch_size: int = 100, *,
                    arg_name: str = "items", queue: str = "default", timeout: int | None = None,
                    job_name: str | None = None, at_front: bool = False, **kwargs: Any) -> list[Job]:
    """Split ``items`` into jobs of ``batch_size``: ``method(**{arg_name: batch}, **kwargs)`` per job, sent in
    one round trip (e.g. 10,000 invoices as 100 jobs of 100). Returns the jobs, in order. Checked as
    :func:`enqueue` checks its call; a batch that cannot be serialised sends none of them."""
    fn = "enqueue_batches"
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be a whole number from 1, got {shown(batch_size)}; "
                         "nothing was queued")
    if not isinstance(arg_name, str) or not arg_name.isidentifier():
        raise ValueError(f"{fn}: arg_name must be the name of the method's parameter that takes a batch, got "
                         f"{shown(arg_name)}; nothing was queued")
    at_front = _flag(fn, "at_front", at_front)
    _check_options(fn, queue, timeout, job_name)
    ctx = current_site()
    queue_timeout = validate_queue(ctx, queue)
    path = _checked_path(fn, "method", method)
    if isinstance(method, str):
        _require_importable(fn, "method", path)
    try:
        it = iter(items)
    except TypeError:
        raise TypeError(f"{fn}: items must be an iterable of the values to split into batches, got "
                        f"{shown(items)}; nothing was queued") from None
    conn = redis_for(ctx.site)
    prefix = site_prefix(ctx.bench.bench_id, ctx.site.name)
    data = []
    batches = []
    for i in itertools.count():
        batch = list(itertools.islice(it, batch_size))
        if not batch:
            break
        batches.append(batch)
        name = f"{job_name or path} (batch {i + 1})"
        data.append(Queue.prepare_data(
            EXECUTE, kwargs=_job_kwargs(ctx, path, name, {**kwargs, arg_name: batch}), timeout=timeout or queue_timeout,
            job_id=f"{prefix}{uuid.uuid4().hex}", at_front=at_front, description=f"{name} [site {ctx.site.name}]",
            result_ttl=ctx.site.settings.rq_results_ttl, failure_ttl=ctx.site.settings.rq_job_failure_ttl,
            meta={"hookscheduler": {"site": ctx.site.name, "job": name, "method": path}}))
    if not data:
        return []
    q = rq_queue(conn, ctx.bench.bench_id, queue)
    with conn.pipeline() as pipe:
        try:  # the jobs are serialised into the pipeline, which is sent only once they all are
            # at the front, each job is pushed before the ones already there: the last batch goes first, so
            # that the batches run in order ahead of the queue
            jobs = q.enqueue_many(data[::-1] if at_front else data, pipeline=pipe)
            if at_front:
                jobs = jobs[::-1]
        except Exception as exc:
            arguments = {**kwargs, **{f"{arg_name} (batch {i + 1})": b for i, b in enumerate(batches)}}
            bad = _bad_argument(fn, path, arguments, q.serializer)
            if bad:
                raise TypeError(bad) from exc
            raise
        _refuse_main(fn, path, (job.data for job in jobs),
                     {**kwargs, **{f"{arg_name} (batch {i + 1})": b for i, b in enumerate(batches)}})
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
    meta = (job.meta or {}).get("hookscheduler") or {}
    try:
        kwargs = job.kwargs if isinstance(job.kwargs, dict) else {}
        func_name: str | None = job.func_name
    except Exception:  # an undecodable payload (DeserializationError): the meta still says what the job is
        kwargs, func_name = {}, None
    if isinstance(meta, dict):
        kwargs = {"method": meta.get("method"), "job_name": meta.get("job"), **kwargs}
    out: dict[str, Any] = {
        "status": str(job.get_status(refresh=False).value), "queue": str(job.origin).rpartition(":")[2],
        "method": kwargs.get("method") or func_name, "job_name": kwargs.get("job_name"),
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
