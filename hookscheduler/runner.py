"""What an RQ worker runs for a scheduled slot: resolve the method, record the run, expose the job context.

The RQ job calls :func:`run_scheduled_job` with the site and the job name. It finds its ledger row by its own
RQ job id, moves it ``queued -> started`` (refusing a duplicate delivery), advances ``last_execution``, runs
the method inside a transaction on the site's database (committed on success, rolled back on failure), and
records ``complete`` or ``failed`` with the traceback. Exceptions are re-raised so RQ's failed registry has
them too (Frappe swallows them). A timeout (RQ's ``JobTimeoutException``) is recorded as failed with that
reason before RQ sees it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import traceback as tb
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rq import get_current_job
from rq.timeouts import JobTimeoutException

from . import runlog
from .context import SiteContext, open_site
from .hooks_loader import ensure_apps_on_path, resolve_method
from .models import utcnow

log = logging.getLogger("hookscheduler.runner")


@dataclass(frozen=True)
class JobContext:
    """What a running job may ask about itself (``hookscheduler.job_context()``)."""

    site: str
    job_name: str
    method: str
    trigger: str
    slot: datetime | None
    rq_job_id: str | None


_CURRENT: ContextVar[JobContext | None] = ContextVar("hookscheduler_job", default=None)
_SITES: dict[tuple[str | None, str | None, str], SiteContext] = {}


def job_context() -> JobContext | None:
    """The context of the job running in this process, or None outside a job."""
    return _CURRENT.get()


@contextlib.contextmanager
def bound_context(ctx: JobContext) -> Iterator[None]:
    token = _CURRENT.set(ctx)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def worker_site(site: str) -> SiteContext:
    """The site as the worker sees it: its own bench ($HOOKSCHEDULER_BENCH or the working directory)."""
    key = (os.environ.get("HOOKSCHEDULER_BENCH"), os.environ.get("HOOKSCHEDULER_DB_URL"), site)
    ctx = _SITES.get(key)
    if ctx is None:
        ctx = open_site(key[0], site)
        ensure_apps_on_path(ctx.bench)
        _SITES[key] = ctx
    return ctx


def worker_name() -> str:
    job = get_current_job()
    name = getattr(job, "worker_name", None) if job else None
    return str(name) if name else f"{socket.gethostname()}.{os.getpid()}"


def run_scheduled_job(site: str, job_name: str, method: str, slot: str, trigger: str) -> Any:
    """The RQ entry point of every scheduled, manual and event-triggered run."""
    rq_job = get_current_job()
    rq_id = rq_job.id if rq_job else None
    ctx = worker_site(site)
    db = ctx.database()
    started = utcnow()
    if rq_id:
        state = runlog.best_effort("record the start", lambda: runlog.mark_started(db, rq_id, worker_name(), started))
        if state == "duplicate":
            log.warning("site %s: %s (%s) already started or finished; not running it twice", site, job_name, rq_id)
            return {"skipped": "duplicate delivery: this run already started"}
    runlog.best_effort("advance last_execution", lambda: runlog.advance_last_execution(db, job_name, started))
    jctx = JobContext(site, job_name, method, trigger, datetime.fromisoformat(slot) if slot else None, rq_id)
    try:
        with bound_context(jctx), db.atomic():
            result = resolve_method(method)()
    except JobTimeoutException as exc:
        _finish(db, rq_id, "failed", tb.format_exc(), f"timed out: {exc}")
        raise
    except BaseException:
        _finish(db, rq_id, "failed", tb.format_exc(), None)
        raise
    _finish(db, rq_id, "complete", None, None)
    return result


def _finish(db: Any, rq_id: str | None, status: str, trace: str | None, reason: str | None) -> None:
    if rq_id:
        runlog.best_effort(f"record the outcome ({status})",
                           lambda: runlog.mark_finished(db, rq_id, status, utcnow(), traceback=trace, reason=reason))
