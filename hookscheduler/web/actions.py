"""The dashboard's changes (POST): the CLI's library calls, recorded with the person who made them.

Each action reads its form, calls the same function as its CLI command, writes one audit log line
(``hookscheduler.web.audit``: who, from where, what, which site, the outcome), and redirects back with a one-line
message (post/redirect/get). A refused action (the library's one-line error) is reported the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import peewee as pw
import redis
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..broker.connection import check_redis
from ..exceptions import BadInput, HookSchedulerError
from ..metrics.bench import UnknownSite
from ..ops import backfill as backfill_lib
from ..ops import jobs as jobs_lib
from ..ops import manual, queues, rq_view
from ..ops import scheduler as scheduler_state
from ..ops.notes import automatic_end, one_line_note
from ..security.redact import redact
from ..store.models import utcnow
from ..timing.moments import parse_moment
from .security import Viewer, audit_change

if TYPE_CHECKING:
    from ..context import SiteContext
    from .app import Dashboard

Action = Callable[["Dashboard", Request, str, dict[str, str], Viewer], str]

#: The most bytes a message carried to the next page in the session cookie may take there, as the cookie holds
#: it (JSON, where a character beyond ASCII is six or twelve bytes): a browser drops a cookie over about 4 KB,
#: and the cookie travels with every request (the log line keeps the whole message).
FLASH_BYTES = 1000


def _cookie_bytes(text: str) -> int:
    return len(json.dumps(text))  # ASCII: non-ASCII characters are escaped, as the session cookie stores them


def flash_text(message: str) -> str:
    """``message`` cut, with an ellipsis, so that it takes at most :data:`FLASH_BYTES` in the cookie."""
    if _cookie_bytes(message) <= FLASH_BYTES:
        return message
    low, high = 0, len(message)  # the longest prefix that fits with its ellipsis: low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _cookie_bytes(message[:mid] + "\u2026") <= FLASH_BYTES else (low, mid)
    return message[:low] + "\u2026"


def _need(form: dict[str, str], key: str) -> str:
    value = form.get(key, "")
    if not value:
        raise BadInput(f"the form has no {key}")
    return value


def _connected(dash: Dashboard, site: str) -> redis.Redis:
    conn = dash.sites.redis(site)
    check_redis(conn, dash.sites.get(site).site.redis_url)
    return conn


def _until(dash: Dashboard, form: dict[str, str], ctx: SiteContext) -> datetime | None:
    """The optional ``until`` field of the disable and pause forms (left empty: none), read as the CLI's
    ``--until``, at the dashboard's clock."""
    return automatic_end((form.get("until") or "").strip() or None, ctx, dash.clock(), "until")


def disable(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    note = one_line_note(form.get("note"), "note")
    name = _need(form, "name")
    with dash.sites.use(site) as ctx:
        row = jobs_lib.set_stopped(ctx.database(), name, True, note, who=who.actor, until=_until(dash, form, ctx))
    end = f" until {row.stopped_until:%Y-%m-%d %H:%M} UTC" if row.stopped_until else ""
    return f"disabled {row.name}{end}" + (f": {row.stopped_note}" if row.stopped_note else "")


def enable(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    with dash.sites.use(site) as ctx:
        row = jobs_lib.set_stopped(ctx.database(), _need(form, "name"), False, who=who.actor)
    return f"enabled {row.name}"


def run_now(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    conn = _connected(dash, site)
    with dash.sites.use(site) as ctx:
        outcome = manual.run_job(ctx, conn, _need(form, "name"), force=form.get("force") == "1", who=who.actor)
    if outcome.status != "queued":
        raise HookSchedulerError(f"{outcome.job_name}: not enqueued: {outcome.reason}")
    return f"queued {outcome.job_name} on queue {outcome.queue} as RQ job {outcome.rq_job_id}"


def skip_next(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    with dash.sites.use(site) as ctx:
        result = jobs_lib.skip_next(ctx.database(), _need(form, "name"), ctx.calendar, who=who.actor)
    return result.describe(lambda t: f"{t:%Y-%m-%d %H:%M:%S} UTC")


#: The backfill form's fields and buttons, for the library's refusals (which name the CLI's options by default).
FORM_LABELS = backfill_lib.Labels(
    start="from", end="to", policy="policy",
    confirm=f"tick 'more than {backfill_lib.BACKFILL_CAP} slots' to confirm", narrow="narrow from/to",
    run_now="use Run now to run the job now", stopped="press Enable first",
    maintenance="a backfill cannot be forced from here")


def backfill(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    conn = _connected(dash, site)
    now = utcnow()
    with dash.sites.use(site) as ctx:
        tz = ctx.site.time_zone
        start = parse_moment(_need(form, "from"), now, tz, "from")
        end = parse_moment(_need(form, "to"), now, tz, "to")
        result = backfill_lib.backfill(ctx, conn, _need(form, "name"), start, end,
                                       policy=form.get("policy") or "once", confirmed=form.get("yes") == "1",
                                       who=who.actor, now=now, labels=FORM_LABELS)
    runs = len(result.runs)
    return (f"backfill of {result.job_name}: {result.in_range} slot(s) in range, {result.already_ran} already ran, "
            f"{result.left_to_scheduler} left to the scheduler; {len(result.eligible)} slot(s) sent in {runs} run(s)")


def pause(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    with dash.sites.use(site) as ctx:
        until = _until(dash, form, ctx)
        scheduler_state.set_paused(ctx, True, until)
    return f"scheduler paused for site {site}" + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else "")


def resume(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    with dash.sites.use(site) as ctx:
        scheduler_state.set_paused(ctx, False)
        status, reason = scheduler_state.scheduler_state(ctx)
        against = scheduler_state.bench_paused(ctx)
    still = f"; note: still {status}: {reason}" if status != scheduler_state.ENABLED else ""
    bench = "; note: the bench is paused in common_site_config.json, this site runs anyway" if against else ""
    return f"scheduler resumed for site {site}{still}{bench}"


def purge(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
    conn = _connected(dash, site)
    queue = form.get("queue") or None
    with dash.sites.use(site) as ctx:
        if queue is not None:
            queues.check_queue(ctx.site, queue)
        result = queues.purge(ctx, conn, queue=queue, who=who.actor)
    return f"purged {result.purged} job(s)" + (f" and {result.outbox} unsent run(s)" if result.outbox else "")


def _rq(fn: rq_view.Action, verb: str) -> Action:
    def action(dash: Dashboard, request: Request, site: str, form: dict[str, str], who: Viewer) -> str:
        conn = _connected(dash, site)
        with dash.sites.use(site) as ctx:
            done = fn(ctx, conn, _need(form, "job_id"), who.actor, None)
        return f"{verb} RQ job {done}"

    return action


ACTIONS: dict[str, Action] = {
    "jobs/disable": disable, "jobs/enable": enable, "jobs/run": run_now, "jobs/skip-next": skip_next,
    "jobs/backfill": backfill,
    "scheduler/pause": pause, "scheduler/resume": resume, "queues/purge": purge,
    "rq-jobs/cancel": _rq(rq_view.cancel, "canceled"), "rq-jobs/stop": _rq(rq_view.stop, "stop sent to"),
    "rq-jobs/delete": _rq(rq_view.delete, "deleted"),
}


def handler(path: str, action: Action) -> Callable[[Dashboard, Request], Response]:
    """The endpoint body of one action (sign-in, role and CSRF were checked by the caller).

    An unknown site is refused here, before the action, with the same 400 page as the site's pages: the
    action's own redirect would lead back to a page of that site. Whatever happens is one audit line, an
    unexpected error included (it is re-raised for the application's error page), since a change that broke
    halfway may still have changed something."""

    def run(dash: Dashboard, request: Request) -> Response:
        site = request.path_params["site"]
        form: dict[str, str] = request.state.form
        who: Viewer = request.state.viewer
        try:
            dash.sites.get(site)
        except UnknownSite as exc:
            audit_change(request, who, path, "refused (400)", str(exc))
            return dash.render(request, "refused.html", http_status=400, why=str(exc))
        try:
            message, ok = action(dash, request, site, form, who), True
        except (HookSchedulerError, pw.OperationalError, redis.exceptions.RedisError) as exc:
            message, ok = str(exc).splitlines()[0] if str(exc) else type(exc).__name__, False
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            audit_change(request, who, path, "failed", redact(f"internal error {type(exc).__name__}: {first}"))
            raise
        message = redact(message)
        audit_change(request, who, path, "done" if ok else "refused", message)
        request.session["flash"] = {"ok": ok, "text": flash_text(message)}
        back = form.get("back", "")
        root = str(request.scope.get("root_path", "")).rstrip("/")
        target = back if back.startswith("/") and not back.startswith("//") else f"{root}/sites/{site}/jobs"
        return RedirectResponse(target, 303)

    run.__name__ = path.replace("/", "_").replace("-", "_")
    return run


__all__ = ["ACTIONS", "FLASH_BYTES", "flash_text", "handler"]
