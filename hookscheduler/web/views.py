"""The dashboard's pages (GET): each one calls the operator library exactly as the CLI command does."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import peewee as pw
import redis
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..broker.connection import check_redis
from ..exceptions import HookSchedulerError, JobNotFound, QueueNotFound, ServiceUnavailable
from ..ops import explain as explain_lib
from ..ops import history as history_lib
from ..ops import jobs as jobs_lib
from ..ops import queues as queues_lib
from ..ops import rq_view
from ..ops import scheduler as scheduler_state
from ..ops.backfill import BACKFILL_CAP
from ..schedule.claim import grace_seconds
from ..timing.moments import parse_moment
from . import present

if TYPE_CHECKING:
    from .app import Dashboard

PAGE_SIZE = 100
MAX_CELLS = 3000
#: The missed-and-failed page lists the newest rows of each kind (its per-job counts cover the whole window).
MISSED_ROWS = 500
FAILED_ROWS = 200
#: The largest row id a database can hold (a signed 64-bit integer): a larger one in a URL names no row.
MAX_ROW_ID = 2**63 - 1


def status_of(exc: HookSchedulerError) -> int:
    if isinstance(exc, (JobNotFound, QueueNotFound)):
        return 404
    if isinstance(exc, ServiceUnavailable):
        return 503
    return 400 if exc.exit_code == 2 else 409


def guarded(fn: Any) -> Any:
    """A library error becomes the page's one-line message with a fitting status, as the CLI's one line."""

    def wrapper(dash: Dashboard, request: Request) -> Response:
        try:
            return fn(dash, request)  # type: ignore[no-any-return]
        except HookSchedulerError as exc:
            return dash.render(request, "refused.html", http_status=status_of(exc), why=str(exc),
                               site=request.path_params.get("site") if _known(dash, request) else None)
        except (pw.OperationalError, redis.exceptions.RedisError) as exc:
            what = "database" if isinstance(exc, pw.OperationalError) else "Redis"
            return dash.render(request, "refused.html", http_status=503, why=f"{what}: {str(exc).splitlines()[0]}")

    wrapper.__name__ = fn.__name__
    return wrapper


def _known(dash: Dashboard, request: Request) -> bool:
    return request.path_params.get("site") in dash.sites.names


def _int(request: Request, key: str, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(request.query_params.get(key, default))))
    except ValueError:
        return default


def home(dash: Dashboard, request: Request) -> Response:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/sites/{present.url_quote(dash.sites.names[0])}/jobs",
                            303)


@guarded
def jobs(dash: Dashboard, request: Request) -> Response:
    """Jobs of a site, a page at a time (``jobs list``), with the switches."""
    name = request.path_params["site"]
    search = request.query_params.get("q") or None
    show_removed = request.query_params.get("all") == "1"
    page_no = _int(request, "page", 1, 1, 1_000_000)
    with dash.sites.use(name) as ctx:
        total = jobs_lib.count_jobs(show_removed, search)
        rows = jobs_lib.list_jobs(show_removed, search, (page_no - 1) * PAGE_SIZE, PAGE_SIZE, dash.clock())
        calendar = ctx.calendar
    for row in rows:
        row["schedule_text"] = present.schedule_text(row["frequency"], row["cron_format"], calendar)
    return dash.render(request, "jobs.html", site=name, rows=rows, total=total, page=page_no, page_size=PAGE_SIZE,
                       q=search or "", show_removed=show_removed)


@guarded
def job(dash: Dashboard, request: Request) -> Response:
    """One job: timeline of the last N days, run history, explain at a moment, next fire times."""
    site = request.path_params["site"]
    name = request.query_params.get("name", "")
    days = _int(request, "days", 7, 1, 90)
    offset = _int(request, "offset", 0, 0, 10_000_000)
    at_text = request.query_params.get("at") or None
    now = dash.clock()
    conn = dash.sites.redis(site)
    with dash.sites.use(site) as ctx:
        row = jobs_lib.get_job(name)
        info = jobs_lib.job_info(row, now)
        cells = history_lib.slot_cells(name, now - timedelta(days=days), now + timedelta(seconds=1), MAX_CELLS + 1)
        runs = history_lib.history(name, limit=25, offset=offset)
        inactive, resume_at = scheduler_state.activity(ctx, now)
        upcoming = jobs_lib.next_runs(row, ctx.calendar, 10, grace=grace_seconds(ctx), inactive=inactive,
                                      resume_at=resume_at, now=now)
        explanation = None
        if at_text is not None:
            at = parse_moment(at_text, now, ctx.site.time_zone, "at")
            explanation = explain_lib.explain(ctx, _checked(conn, ctx), name, at, now)
        late_after = float(max(ctx.site.tick_interval, 60))
        calendar = ctx.calendar
    for c in cells:
        c["kind"] = history_lib.cell_kind(c, late_after)
    by_day: dict[str, list[dict[str, Any]]] = {}
    tz = dash.sites.get(site).site.time_zone
    for c in cells[-MAX_CELLS:]:
        by_day.setdefault(present.local(c["scheduled_for"], tz)[:10], []).append(c)
    info["schedule_text"] = present.schedule_text(info["frequency"], info["cron_format"], calendar)
    return dash.render(request, "job.html", site=site, job=info, days=days, by_day=by_day,
                       truncated=len(cells) > MAX_CELLS, runs=runs, offset=offset, upcoming=upcoming,
                       explanation=explanation, at_text=at_text or "", utc_iso=present.utc_iso,
                       backfill_cap=BACKFILL_CAP)


def _checked(conn: redis.Redis, ctx: Any) -> redis.Redis | None:
    try:
        check_redis(conn, ctx.site.redis_url)
    except ServiceUnavailable:
        return None
    return conn


@guarded
def log(dash: Dashboard, request: Request) -> Response:
    """One ledger row (where a timeline cell links)."""
    site = request.path_params["site"]
    row_id = int(request.path_params["id"])
    if row_id > MAX_ROW_ID:  # the databases cannot even compare it (SQLite: OverflowError)
        raise JobNotFound(f"log row {row_id} not found (row ids go up to {MAX_ROW_ID})")
    with dash.sites.use(site):
        row = history_lib.log_row(row_id)
    return dash.render(request, "log.html", site=site, row=row)


@guarded
def missed(dash: Dashboard, request: Request) -> Response:
    """Missed and skipped slots (``jobs missed``) and failed runs (``jobs history --status failed``) since T."""
    site = request.path_params["site"]
    since_text = request.query_params.get("since") or "1d"
    now = dash.clock()
    with dash.sites.use(site) as ctx:
        since = parse_moment(since_text, now, ctx.site.time_zone, "since")
        report = history_lib.missed(since, limit=MISSED_ROWS)
        failed = history_lib.history(status="failed", since=since, limit=FAILED_ROWS)
        failed_total = history_lib.failed_count(since) if len(failed) == FAILED_ROWS else len(failed)
    return dash.render(request, "missed.html", site=site, since=since_text, since_at=since, groups=report.groups,
                       report=report, failed=failed, failed_total=failed_total)


@guarded
def scheduler(dash: Dashboard, request: Request) -> Response:
    """Every site's scheduler (``scheduler status -v``), with pause / resume."""
    statuses = []
    for name in dash.sites.names:
        conn: redis.Redis | None = dash.sites.redis(name)
        error = None
        try:
            check_redis(conn, dash.sites.get(name).site.redis_url)  # type: ignore[arg-type]
        except ServiceUnavailable as exc:
            conn, error = None, str(exc)
        with dash.sites.use(name) as ctx:
            statuses.append((scheduler_state.site_status(ctx, conn, error), ctx.site.time_zone))
    return dash.render(request, "scheduler.html", statuses=statuses, present=present)


@guarded
def queues_page(dash: Dashboard, request: Request) -> Response:
    """Per queue: queued, started, failed, scheduled (``show-pending-jobs``), with purge."""
    site = request.path_params["site"]
    ctx = dash.sites.get(site)
    counts = queues_lib.pending_counts(dash.sites.redis(site), ctx.bench.bench_id, site, list(ctx.site.queues))
    return dash.render(request, "queues.html", site=site, counts=counts, columns=queues_lib.COUNTED)


@guarded
def workers(dash: Dashboard, request: Request) -> Response:
    """The bench's workers (``workers list``)."""
    site = request.path_params["site"]
    ctx = dash.sites.get(site)
    rows = rq_view.list_workers(dash.sites.redis(site), ctx.bench.bench_id, site, dash.clock())
    return dash.render(request, "workers.html", site=site, rows=rows)


@guarded
def rq_jobs(dash: Dashboard, request: Request) -> Response:
    """The site's RQ jobs (``rq-jobs list``) with cancel / stop / delete."""
    site = request.path_params["site"]
    ctx = dash.sites.get(site)
    queue = request.query_params.get("queue") or None
    status = request.query_params.get("status") or None
    if status is not None and status not in rq_view.JOB_STATUSES:
        raise HookSchedulerError(f"unknown RQ status {status!r}; one of {', '.join(rq_view.JOB_STATUSES)}")
    qs = [queues_lib.check_queue(ctx.site, queue)] if queue else list(ctx.site.queues)
    rows = rq_view.list_jobs(dash.sites.redis(site), ctx.bench.bench_id, site, qs, status, 200)
    return dash.render(request, "rq_jobs.html", site=site, rows=rows, queue=queue or "", status=status or "",
                       queues=list(ctx.site.queues), statuses=rq_view.JOB_STATUSES)


__all__ = ["home", "job", "jobs", "log", "missed", "queues_page", "rq_jobs", "scheduler", "workers"]
