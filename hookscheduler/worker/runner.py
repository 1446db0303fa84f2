"""What an RQ work horse runs: the wrapper around every scheduled run and every background job.

* :func:`run_scheduled_job` (scheduled, catch-up, manual and event runs): start mark, ``queued -> started``,
  the method, then ``complete`` or ``failed`` with the traceback (docs/exactly-once.md, I5);
* :func:`execute_job` (``hookscheduler.enqueue``): the method with its keyword arguments.

Both run the method in a transaction on the site's database, expose :func:`job_context`, publish events
(:mod:`hookscheduler.background.events`) and re-raise, so that RQ's failed registry holds failures too. The
ledger is never a reason for a job not to run (Frappe #41245): each ledger write is best effort
(:func:`_ledger`), and the sweep later settles a row the worker could not write. What the database *says* is:
a run whose job was removed from hooks or pruned while it waited is not run (:func:`_gone`). Nor is a run the
clock sent while the site is in maintenance mode when it starts (:func:`_in_maintenance`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import sys
import time
import traceback as tb
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

import peewee as pw
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from ..background import events
from ..broker.keys import short_queue
from ..context import SiteContext, open_site
from ..declare.hooks import ensure_apps_on_path
from ..exceptions import HookSchedulerError, SchemaError, one_line
from ..followed import FollowedSite
from ..ops.retention import trim_failed_registry
from ..security.redact import redact, redact_failure
from ..states import LedgerStatus, Trigger
from ..store import job_reads, store_for
from ..store.base import JOB_ABSENT, JOB_PRESENT, JOB_REMOVED, Outcome
from ..store.database import raising_real_cause, real_cause
from ..store.models import utcnow
from . import ledger, marks, warm

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The ``reason`` of a run's ledger row when its job was removed from hooks while the run waited in its queue.
REMOVED_BEFORE_START = "job removed from hooks before its run started"
#: What such a run's RQ result says when its job was pruned (``migrate --prune``) while it waited.
PRUNED_BEFORE_START = "job pruned from the database before its run started"
#: The ``reason`` of a run the clock sent that was to start while the site was in maintenance mode.
MAINTENANCE_AT_START = ("site in maintenance mode when the run was to start (maintenance_mode is set); "
                        "`hookscheduler jobs backfill` runs its slot once maintenance is over")
#: Runs the clock sent (checked against maintenance mode when they start); a person's requests (``jobs run``,
#: ``trigger-scheduler-event``, ``jobs backfill``) were checked when asked, and ``--force`` was their answer.
_CLOCK_TRIGGERS = frozenset({Trigger.SCHEDULE.value, Trigger.CATCH_UP.value})


@dataclass(frozen=True)
class JobContext:
    """What a running job may ask about itself (``hookscheduler.job_context()``).

    ``kind`` is ``scheduled`` for runs of a Scheduled Job Type (``slot`` is the slot it serves, naive UTC)
    and ``background`` for ``enqueue`` jobs (``trigger`` ``enqueue``, or ``inline`` for ``now=True``)."""

    site: str
    job_name: str
    method: str
    trigger: str
    slot: datetime | None
    rq_job_id: str | None
    queue: str | None = None
    kind: str = "scheduled"

    @cached_property
    def frequency(self) -> str | None:
        """The job's frequency (``Hourly``, ``Cron``, ...) for scheduled runs; read on first use only."""
        if self.kind != "scheduled":
            return None
        try:
            return job_reads.frequency_of(self.job_name)
        except (pw.PeeweeException, HookSchedulerError) as exc:
            log.warning("could not read the frequency of %s: %s", self.job_name, exc)
            return None


_CURRENT: ContextVar[JobContext | None] = ContextVar("hookscheduler_job", default=None)
_SITES: dict[tuple[str | None, str | None, str], FollowedSite] = {}


def job_context() -> JobContext | None:
    """The context of the job running in this process (or thread), or None outside a job."""
    return _CURRENT.get()


@contextlib.contextmanager
def bound_context(ctx: JobContext) -> Iterator[None]:
    token = _CURRENT.set(ctx)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def worker_site(site: str) -> SiteContext:
    """The site as the worker sees it: its own bench ($HOOKSCHEDULER_BENCH or the working directory), with the
    config its files hold now (:class:`~hookscheduler.followed.FollowedSite`: a worker runs for weeks, and must
    record runs into the database a ``set-config db_url`` named, and prune with the ``log_retention_days`` set
    since). A new ``db_url`` also lets go of what the worker kept warm for the old database (its lent PostgreSQL
    spare, its held SQLite file: :func:`.warm.forget`), so that nothing is written there again."""
    key = (os.environ.get("HOOKSCHEDULER_BENCH"), os.environ.get("HOOKSCHEDULER_DB_URL"), site)
    known = _SITES.get(key)
    if known is None:
        ctx = open_site(key[0], site)
        ensure_apps_on_path(ctx.bench)
        _SITES[key] = FollowedSite.start(ctx, key[0], "this worker", log)
        return ctx
    return known.current(on_moved=warm.forget)


def preload(sites: list[str]) -> None:
    """Warm the per-process caches before a worker forks: site settings, and this module's imports.
    Never connects to a database (a connection inherited across fork() is shared, and breaks)."""
    for site in sites:
        worker_site(site)


class CaughtTimeout(JobTimeoutException):
    """The job's timeout fired while it ran, and the job caught the exception and returned. RQ's timeout is an
    exception raised into the job, which a broad ``except Exception`` swallows; the run is still past its
    timeout, so it fails as if it had not been caught (its transaction is rolled back)."""


#: When a job's timeout last fired in this process (``time.monotonic()``; :func:`note_timeout`), or None.
_timeout_fired_at: float | None = None


def note_timeout() -> None:
    """In a work horse, as the job's timeout fires (the worker's death penalty calls it before it raises the
    timeout into the job): :func:`_perform` then fails a run that caught it and returned."""
    global _timeout_fired_at
    _timeout_fired_at = time.monotonic()


def _raise_if_timed_out(rq_job: Job | None, begun: float) -> None:
    """Raise :class:`CaughtTimeout` if the job's timeout fired since ``begun`` (the method returned anyway)."""
    if _timeout_fired_at is None or _timeout_fired_at < begun:
        return
    timeout = getattr(rq_job, "timeout", None)
    raise CaughtTimeout(f"Task exceeded maximum timeout value ({timeout} seconds) (the job caught the timeout "
                        "and returned)")


def record_death(rq_job: Job, site: str, reason: str, now: datetime) -> None:
    """In the worker, once a horse died without recording its run (killed, out of memory, ``os._exit``, or
    killed by the worker past the job's timeout): the run's row is settled ``failed`` with ``reason``, at ``now``
    (the death), with its duration. Only a row still ``queued`` or ``started``: a horse that recorded its
    outcome and then died knew better. Best effort, as every ledger write (:func:`_ledger`); the connection is
    closed afterwards, so that no horse inherits it."""
    ctx = worker_site(site)
    reason = redact(reason)

    def write(db: pw.Database) -> bool:
        store = store_for(db)
        with store.ledger_transaction():
            if not store.fail_active(rq_job.id, reason, now):
                return False
            _, started = store.started_at(rq_job.id)
            if started is not None:
                duration = max((now - started).total_seconds(), 0.0)
                store.record_finished(rq_job.id, Outcome(LedgerStatus.FAILED, now, duration, None, reason))
        return True

    try:
        if _ledger("record the death of the work horse", ctx, write) is None:
            marks.mark_outcome(rq_job.connection, ctx.bench.bench_id, rq_job.id, LedgerStatus.FAILED)
    finally:
        ctx.close()


def worker_name(rq_job: Job | None) -> str:
    name = getattr(rq_job, "worker_name", None) if rq_job else None
    return str(name) if name else f"{socket.gethostname()}.{os.getpid()}"


def import_path(path: str) -> Any:
    """``pkg.module.func`` or ``pkg.module.Class.method``: the longest importable module, then attributes."""
    parts = path.split(".")
    if len(parts) < 2 or not all(parts):
        raise ImportError(f"{path!r} is not a dotted path (module.function)")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # this prefix is not a module: try a shorter one
            raise
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no module found for {path!r}")


# --- the site's database in the horse --------------------------------------------------------------

#: Seconds during which the same "database unavailable" error of a site is logged once: a job tries its
#: database up to three times (its start, its outcome, a retry) and a worker's next jobs find it down too.
UNAVAILABLE_EVERY = 60.0
_unavailable_said: dict[tuple[str, str], float] = {}  # (site, error) -> when it was last logged (monotonic)


def _connect(ctx: SiteContext) -> pw.Database | None:
    """The site's database, connected and bound, or None (logged once per site and error per
    :data:`UNAVAILABLE_EVERY`) when it cannot be reached."""
    try:
        # no schema check in the horse (a query per job); a stale schema shows up as a logged ledger error
        return ctx.database(require_schema=False)
    except SchemaError:  # an SQLite site never migrated: background jobs still run, without a transaction
        log.debug("site %s has no database yet; the job runs without it", ctx.name)
        return None
    except (pw.PeeweeException, HookSchedulerError) as exc:
        _say_unavailable(ctx.name, one_line(exc), time.monotonic())
        return None


def _say_unavailable(site: str, error: str, now: float) -> None:
    """Log a site's unreachable database at ERROR once per :data:`UNAVAILABLE_EVERY` (per error: a new one is
    logged at once), at DEBUG in between."""
    key = (site, error)
    last = _unavailable_said.get(key)
    if last is not None and now - last < UNAVAILABLE_EVERY:
        log.debug("site %s: database unavailable (%s); the job runs without it", site, error)
        return
    if len(_unavailable_said) > 1000:  # many sites, many errors: forget the old ones rather than grow
        _unavailable_said.clear()
    _unavailable_said[key] = now
    log.error("site %s: database unavailable (%s); the job runs without it", site, error)


def _ledger(what: str, ctx: SiteContext, fn: Callable[[pw.Database], T]) -> T | None:
    """A ledger write: best effort, retried once on a fresh connection (the job's may have been dropped)."""
    for attempt in (1, 2):
        db = _connect(ctx)
        if db is None:
            return None
        try:
            return fn(db)
        except (pw.OperationalError, pw.InterfaceError) as exc:
            if attempt == 2:
                log.error("could not %s: %s: %s (the job is not affected)", what, type(exc).__name__, exc)
                return None
            ctx.close()
        except Exception as exc:
            log.error("could not %s: %s: %s (the job is not affected)", what, type(exc).__name__, exc)
            return None
    return None


@contextlib.contextmanager
def job_transaction(db: pw.Database | None) -> Iterator[None]:
    """The job's own transaction: committed when it returns, rolled back when it raises. A rollback that
    fails (the connection is gone) is logged and does not hide the job's own exception."""
    if db is None:
        yield
        return
    txn = db.atomic()
    deferring = getattr(db, "deferring_begin", None)  # PostgreSQL: BEGIN with the job's first statement, if any
    with deferring() if deferring is not None else contextlib.nullcontext():
        txn.__enter__()
    try:
        yield
    except BaseException:
        try:
            txn.__exit__(*sys.exc_info())
        except Exception as exc:
            log.warning("rollback after the job's failure failed too: %s", one_line(real_cause(exc)))
        raise
    with raising_real_cause():  # the commit failed: say why (disk full, read-only), not "cannot rollback"
        txn.__exit__(None, None, None)


# --- entry points ---------------------------------------------------------------------------------

def run_scheduled_job(site: str, job_name: str, method: str, slot: str, trigger: str) -> Any:
    """The RQ entry point of every scheduled, manual and event-triggered run."""
    rq_job = get_current_job()
    rq_id = rq_job.id if rq_job else None
    ctx = worker_site(site)
    started = utcnow()
    who = worker_name(rq_job)
    if rq_job is not None and rq_id and not marks.set_start_mark(rq_job.connection, ctx.bench.bench_id, rq_id):
        log.warning("site %s: %s (%s) was started by an earlier delivery; not running it twice", site, job_name, rq_id)
        return _refused(ctx, rq_job, started)
    if trigger in _CLOCK_TRIGGERS and ctx.site.settings.maintenance_mode:
        return _in_maintenance(ctx, rq_job, rq_id, job_name, started)
    state = _ledger("record the start", ctx, lambda db: _record_start(db, rq_id, job_name, who, started))
    if state == "duplicate":
        log.warning("site %s: %s (%s) already started or finished; not running it twice", site, job_name, rq_id)
        return _refused(ctx, rq_job, started)
    if state in (JOB_REMOVED, JOB_ABSENT):
        return _gone(ctx, rq_job, rq_id, job_name, state, started)
    queue = short_queue(rq_job.origin, ctx.bench.bench_id) if rq_job else None
    jctx = JobContext(site, job_name, method, trigger, datetime.fromisoformat(slot) if slot else None, rq_id,
                      queue=queue, kind="scheduled")
    owned = started if state == "started" else None  # the row's started_at is ours: no need to read it back
    return _perform(ctx, rq_job, jctx, lambda: import_path(method)(), started, owned)


def _refused(ctx: SiteContext, rq_job: Job | None, now: datetime) -> dict[str, str]:
    """A second delivery of a run that already started ends without running it. RQ will call this delivery
    "finished"; the refusal mark tells the scheduler that this is not the run's outcome (:mod:`.marks`)."""
    if rq_job is not None:
        marks.mark_refused(rq_job.connection, ctx.bench.bench_id, rq_job.id, now)
    return {"skipped": "duplicate delivery: this run already started"}


def _gone(ctx: SiteContext, rq_job: Job | None, rq_id: str | None, job_name: str, state: str,
          now: datetime) -> dict[str, str]:
    """A run whose job the site's database says is gone ends without running the method, as Frappe, which looks
    the job up by name, never runs a deleted one. A job removed from hooks keeps its ledger: the run's row is
    settled ``skipped`` with the reason. A pruned job has no ledger left to write to: the run is logged."""
    if state == JOB_REMOVED:
        log.warning("site %s: %s (%s) was removed from hooks before its run started; not running it",
                    ctx.name, job_name, rq_id)
        return _not_run(ctx, rq_job, rq_id, REMOVED_BEFORE_START, now)
    log.warning("site %s: %s (%s) no longer exists (pruned from the database); not running it",
                ctx.name, job_name, rq_id)
    return _not_run(ctx, rq_job, None, PRUNED_BEFORE_START, now)


def _in_maintenance(ctx: SiteContext, rq_job: Job | None, rq_id: str | None, job_name: str,
                    now: datetime) -> dict[str, str]:
    """A run the clock sent, about to start while the site's config sets ``maintenance_mode``, is not run, as
    Frappe's wrapper of scheduled runs refuses them then: the site is being upgraded or restored, and a job must
    not write into it. The scheduler stops sending runs while maintenance lasts; this is for the runs already
    queued when it began. The run's row is settled ``skipped`` with the reason, so that the slot shows in
    ``jobs missed``, and its start mark stays set: a later delivery of the same run is refused too."""
    log.warning("site %s: %s (%s) not run: the site is in maintenance mode", ctx.name, job_name, rq_id)
    return _not_run(ctx, rq_job, rq_id, MAINTENANCE_AT_START, now)


def _not_run(ctx: SiteContext, rq_job: Job | None, skip_id: str | None, reason: str,
             now: datetime) -> dict[str, str]:
    """End a run without running its method: its ledger row (``skip_id``, when it has one to write to) settled
    ``skipped`` with ``reason``, and the refusal mark set, since RQ will call this delivery "finished" and that
    is not the run's outcome."""
    if skip_id:
        _ledger("record the skip", ctx, lambda db: store_for(db).skip_queued([skip_id], reason, utcnow()))
    if rq_job is not None:
        marks.mark_refused(rq_job.connection, ctx.bench.bench_id, rq_job.id, now)
    return {"skipped": reason}


def _record_start(db: pw.Database, rq_id: str | None, job_name: str, who: str, started: datetime) -> str | None:
    """One transaction for both start writes (each run pays for one commit, not two). The log row's
    ``queued -> started`` runs in a savepoint of its own: a broken log table must not stop ``last_execution``
    from advancing (Frappe #41245). A run whose job was removed from hooks or pruned is not started: the state
    is then :data:`JOB_REMOVED` or :data:`JOB_ABSENT`."""
    if rq_id:
        fast = ledger.start_in_one_trip(db, rq_id, job_name, who, started)  # PostgreSQL: one round trip
        if fast is not None:
            return fast
    state = None
    with ledger.ledger_txn(db):
        # the job's row before the ledger row, as a scheduler's pass does; and whether the job is still there
        presence = ledger.lock_job_row(db, job_name)
        if presence != JOB_PRESENT:
            return presence
        if rq_id:
            try:
                state = ledger.record_started(db, rq_id, who, started)  # nested: a savepoint
            except pw.DatabaseError as exc:
                log.error("could not record the start: %s (the job is not affected)", one_line(exc))
        if state != "duplicate":
            ledger.advance_last_execution(db, job_name, started)
    return state


def execute_job(site: str, method: str, job_name: str | None = None, kwargs: dict[str, Any] | None = None) -> Any:
    """The RQ entry point of ``hookscheduler.enqueue``: ``method(**kwargs)`` on ``site``."""
    rq_job = get_current_job()
    ctx = worker_site(site)
    queue = short_queue(rq_job.origin, ctx.bench.bench_id) if rq_job else None
    jctx = JobContext(site, job_name or method, method, "enqueue", None, rq_job.id if rq_job else None,
                      queue=queue, kind="background")
    return _perform(ctx, rq_job, jctx, lambda: import_path(method)(**(kwargs or {})), utcnow())


def run_doc_method(doc_model: str, doc_name: Any, doc_method: str, doc_kwargs: dict[str, Any] | None = None) -> Any:
    """``enqueue_doc``'s worker side: load the record by primary key and call one of its methods."""
    model = import_path(doc_model)
    record = model.get_by_id(doc_name)
    return getattr(record, doc_method)(**(doc_kwargs or {}))


def _perform(ctx: SiteContext, rq_job: Job | None, jctx: JobContext, call: Callable[[], Any],
             started: datetime, owned: datetime | None = None) -> Any:
    """Run ``call`` in the job's context and transaction; record, publish and re-raise its outcome."""
    scheduled = jctx.kind == "scheduled"
    _publish(ctx, rq_job, jctx, "started")
    db = _connect(ctx)
    begun = time.monotonic()
    try:
        with bound_context(jctx), job_transaction(db):
            result = call()
            _raise_if_timed_out(rq_job, begun)
    except BaseException as exc:
        timed_out = isinstance(exc, JobTimeoutException)
        reason = f"timed out: {exc}" if timed_out else None
        if scheduled and jctx.rq_job_id:
            # stored redacted: the ledger is read by operators (and shown by `jobs history`), and an error
            # message that quotes a connection URL must not put its password there
            _finish(ctx, rq_job, jctx.rq_job_id, LedgerStatus.FAILED, redact_failure(tb.format_exc()),
                    reason and redact(reason), owned)
        _publish(ctx, rq_job, jctx, "failed", started=started, error=one_line(exc), timed_out=timed_out)
        _bound_failed_registry(ctx, rq_job)
        raise
    if scheduled and jctx.rq_job_id:
        _finish(ctx, rq_job, jctx.rq_job_id, LedgerStatus.COMPLETE, None, None, owned)
    _publish(ctx, rq_job, jctx, "finished", started=started)
    return result


def _finish(ctx: SiteContext, rq_job: Job | None, rq_id: str, status: str, trace: str | None,
            reason: str | None, started: datetime | None) -> None:
    """Record the outcome in the ledger; when that fails, on the run's start mark in Redis (:mod:`.marks`):
    a refused later delivery must not leave the scheduler guessing."""
    def write(db: pw.Database) -> bool:
        now = utcnow()
        if started is not None and ledger.finish_in_one_trip(db, rq_id, status, now, started=started,
                                                             traceback=trace, reason=reason):
            return True
        ledger.record_finished(db, rq_id, status, now, traceback=trace, reason=reason, started=started)
        return True

    if not _ledger(f"record the outcome ({status})", ctx, write):
        if rq_job is not None:
            marks.mark_outcome(rq_job.connection, ctx.bench.bench_id, rq_id, status)
    elif rq_job is not None and status == LedgerStatus.COMPLETE and _frequent(rq_job):
        marks.shorten_start_mark(rq_job.connection, ctx.bench.bench_id, rq_id)


def _frequent(rq_job: Job) -> bool:
    """Was the run sent for a job that fires more than once an hour (:class:`~hookscheduler.schedule.send.Run`)?"""
    meta = rq_job.meta.get("hookscheduler") if isinstance(rq_job.meta, dict) else None
    return bool(isinstance(meta, dict) and meta.get("frequent"))


def _publish(ctx: SiteContext, rq_job: Job | None, jctx: JobContext, event: str, started: datetime | None = None,
             error: str | None = None, timed_out: bool = False) -> None:
    if rq_job is None:
        return
    fields: dict[str, Any] = {
        "job_id": jctx.rq_job_id, "job_name": jctx.job_name, "method": jctx.method, "kind": jctx.kind,
        "trigger": jctx.trigger, "queue": jctx.queue, "slot": jctx.slot, "worker": worker_name(rq_job),
    }
    if started is not None:
        fields["duration"] = round((utcnow() - started).total_seconds(), 6)
    if error is not None:
        fields["error"] = error
    if timed_out:
        fields["timed_out"] = True
    events.publish(rq_job.connection, ctx.bench.bench_id, ctx.name, event, **fields)


def _bound_failed_registry(ctx: SiteContext, rq_job: Job | None) -> None:
    if rq_job is None:
        return
    try:
        trim_failed_registry(rq_job.connection, rq_job.origin, ctx.site.settings.rq_failed_jobs_limit, room=1)
    except Exception as exc:  # bounding the registry is housekeeping; it never masks the job's failure
        log.warning("could not bound the failed registry of %s: %s", rq_job.origin, one_line(exc))
