"""The dashboard as an ASGI application (Starlette): :func:`create_app` for ``hookscheduler dashboard`` or for
mounting in your own ASGI server (``app.mount("/scheduler", create_app(bench=...))``).

Why Starlette + Jinja2 + uvicorn: three small, widely used, well-kept libraries with no build step; Jinja2
escapes every value by default (job names and notes are untrusted text); Starlette gives routing, signed
session cookies and a thread pool for the blocking library calls, nothing more. Pages are plain HTML forms
(they work without JavaScript); one small vendored script (``static/live.js``) refreshes the page's content
every few seconds and asks before destructive actions.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..hosts import loopback_hosts
from ..metrics.bench import BenchSites
from ..security.redact import redact
from ..store.models import utcnow
from . import actions, present, views
from .access import AccessToken
from .auth import SESSION_SECONDS, AuthConfig, ClientGone, NotChecked
from .security import Viewer, audit_change, audit_sign_in, csrf_ok, csrf_token, sign_out, viewer

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Dashboard:
    """What every handler needs: the sites, the auth, the templates, the clock."""

    def __init__(self, sites: BenchSites, auth: AuthConfig | None, live_seconds: int, clock: Callable[[], Any],
                 metrics_grace: float) -> None:
        self.sites = sites
        self.auth = auth
        self.live_seconds = live_seconds
        self.clock = clock
        self.metrics_grace = metrics_grace
        # every value a page shows goes through the CLI's redaction first (a traceback or an error line may quote
        # a URL with its password), then Jinja2's escaping
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"], default=True),
                                     finalize=_redacted)
        self.templates.filters.update(duration=present.duration, q=present.url_quote, redact=redact)

    def render(self, request: Request, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        site = context.get("site")
        tz = self.sites.get(site).site.time_zone if site else None
        now = self.clock()
        page = self.templates.get_template(name).render(
            request=request, viewer=viewer(request, self.auth), csrf=csrf_token(request), sites=self.sites.names,
            live=self.live_seconds, now=now, tz=tz,
            local=(lambda v, s=True: present.local(v, tz, s)) if tz else None,
            ago=lambda v: present.ago(v, now), flash=request.session.pop("flash", None), root=_root(request),
            **context)
        return HTMLResponse(page, status_code=http_status, headers=SECURITY_HEADERS)


def _redacted(value: Any) -> Any:
    """Plain text is redacted; markup (a macro's output, already built from redacted values) passes."""
    return redact(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _root(request: Request) -> str:
    """The mount prefix, so links work when the app is mounted under a path."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _here(request: Request) -> str:
    """This page's path and query relative to the app's root (``/sites/shop/jobs``, not
    ``/scheduler/sites/shop/jobs`` when mounted at ``/scheduler``): sign-in adds the root back when it sends the
    user on, so a path holding it would arrive at ``/scheduler/scheduler/...``."""
    path, root = request.url.path, _root(request)
    if root and (path == root or path.startswith(f"{root}/")):
        path = path[len(root):] or "/"
    query = request.url.query
    return f"{path}?{query}" if query else path


Handler = Callable[[Dashboard, Request], Any]


def page(dash: Dashboard, fn: Handler, action: str = "") -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: sign-in required (when there is auth), operator role and CSRF token for a change
    (``action``: the change's path, for the POST of a change; empty for a page).

    A refused change is one audit line like a change that was made, so the log shows attempts too; a page that
    sends you to sign in is not a change and writes none."""
    from starlette.concurrency import run_in_threadpool

    write = bool(action)

    async def endpoint(request: Request) -> Response:
        who = viewer(request, dash.auth)
        if who is None:
            if write:
                return _refused(dash, request, 401, "sign in to change anything", None, action)
            return RedirectResponse(f"{_root(request)}/login?next={present.url_quote(_here(request))}", 303)
        if write:
            form = await request.form()
            if not csrf_ok(request, form.get("csrf")):
                return _refused(dash, request, 403, "the form's security token is missing or stale; reload the "
                                                    "page and try again", who, action)
            if not who.operator:
                return _refused(dash, request, 403, f"{who.name} has the viewer role; changes need an operator",
                                who, action)
            request.state.form = {k: v for k, v in form.items() if isinstance(v, str)}
        request.state.viewer = who
        return await run_in_threadpool(fn, dash, request)  # type: ignore[no-any-return]

    return endpoint


def _refused(dash: Dashboard, request: Request, status: int, why: str, who: Viewer | None,
             action: str) -> Response:
    audit_change(request, who, action, f"refused ({status})", why)
    return dash.render(request, "refused.html", http_status=status, why=why)


def login_get(dash: Dashboard, request: Request) -> Response:
    return dash.render(request, "login.html", next=request.query_params.get("next", ""), error=None)


async def login_post(request: Request) -> Response:
    dash: Dashboard = request.app.state.dash
    form = await request.form()
    nxt = str(form.get("next") or "")
    if dash.auth is None:
        return RedirectResponse(f"{_root(request)}/", 303)
    name = str(form.get("user") or "")
    if not csrf_ok(request, form.get("csrf")):
        audit_sign_in(request, name, "refused (403): the form's security token is missing or stale")
        return dash.render(request, "login.html", http_status=403, next=nxt, error="stale form; try again")
    try:
        user = await dash.auth.login_in_thread(name, str(form.get("password") or ""), _address(request),
                                               request.is_disconnected, _hung_up(request))
    except NotChecked as exc:
        audit_sign_in(request, name, _not_checked(exc))
        return dash.render(request, "login.html", http_status=429, next=nxt, error=BUSY)
    if user is None:
        audit_sign_in(request, name, "refused (401): wrong user name or password")
        return dash.render(request, "login.html", http_status=401, next=nxt, error="wrong user name or password")
    audit_sign_in(request, user.name, f"done ({user.role})")
    request.session.clear()
    request.session.update(user=user.name, role=user.role, sid=secrets.token_urlsafe(16))
    target = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"
    return RedirectResponse(f"{_root(request)}{target}", 303)


async def logout(request: Request) -> Response:
    """Sign out: the session's id is revoked in this process, so a copy of the cookie is refused too. Without the
    session's CSRF token (a page from before this tab's session was replaced, by signing in again in another
    tab) nothing is signed out, and the page says so: a redirect to the sign-in form would look like it was."""
    dash: Dashboard = request.app.state.dash
    form = await request.form()
    if not csrf_ok(request, form.get("csrf")):
        who = viewer(request, dash.auth)
        why = "sign-out refused: the page was stale (you signed in again since it was loaded); reload it and " \
              "sign out again"
        audit_sign_in(request, who.name if who else "", "refused (403): the form's security token is missing or "
                      "stale", via="sign-out")
        return dash.render(request, "refused.html", http_status=403, why=why)
    sign_out(request, dash.auth)
    return RedirectResponse(f"{_root(request)}/login", 303)


def metrics_endpoint(dash: Dashboard) -> Callable[[Request], Awaitable[Response]]:
    """``/metrics``: open when there is no auth; else a session or HTTP basic auth (for Prometheus's
    ``basic_auth``) of any role."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.concurrency import run_in_threadpool

    from ..metrics.exporter import registry_for

    registry = registry_for(dash.sites, grace=dash.metrics_grace, clock=dash.clock)

    async def endpoint(request: Request) -> Response:
        try:
            ok = dash.auth is None or viewer(request, dash.auth) is not None or await _basic_ok(dash.auth, request)
        except NotChecked:
            return Response(f"{BUSY}\n", 429, headers={"Retry-After": "1"})
        if not ok:
            return Response("authentication required\n", 401, headers={"WWW-Authenticate": 'Basic realm="metrics"'})
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return endpoint


#: Why a password check was refused at once (:class:`~.auth.TooManyChecks`).
BUSY = "too many password checks from this address at once; try again in a moment"


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


def _hung_up(request: Request) -> Callable[[], Awaitable[None]]:
    """What returns when the client of ``request`` hangs up. It reads the request's messages, so only for a
    request whose body has been read already, or has none that is wanted (``/metrics``)."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


def _not_checked(exc: NotChecked) -> str:
    """The outcome of a sign-in line for a password that was not checked."""
    if isinstance(exc, ClientGone):
        return "not checked: the client hung up while it waited"
    return f"refused (429): {BUSY}"


#: (user, address) pairs whose basic auth on /metrics succeeded, so that only the first scrape is a sign-in line.
_SCRAPERS: set[tuple[str, str]] = set()


async def _basic_ok(auth: AuthConfig, request: Request) -> bool:
    """HTTP basic auth of any user, checked off the event loop. A refusal is a sign-in line like the form's (it
    is a password guess as much); a success is one line the first time a user scrapes from an address.
    :class:`~.auth.NotChecked` when the password was not checked (too many checks from this address under way,
    or the client has gone)."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        audit_sign_in(request, "", "refused (401): malformed Authorization header", via="/metrics basic auth")
        return False
    try:
        user = await auth.login_in_thread(name, password, _address(request), request.is_disconnected,
                                          _hung_up(request))
    except NotChecked as exc:
        audit_sign_in(request, name, _not_checked(exc), via="/metrics basic auth")
        raise
    if user is None:
        audit_sign_in(request, name, "refused (401): wrong user name or password", via="/metrics basic auth")
        return False
    seen = (user.name, request.client.host if request.client else "")
    if seen not in _SCRAPERS:
        _SCRAPERS.add(seen)
        audit_sign_in(request, user.name, f"done ({user.role}); later scrapes from there are not logged",
                      via="/metrics basic auth")
    return True


def create_app(bench: str | None = None, site: str | None = None, auth: AuthConfig | None = None,
               allowed_hosts: list[str] | None = None, live_seconds: int = 5, clock: Callable[[], Any] = utcnow,
               metrics_grace: float = 30.0, sites: BenchSites | None = None, token: str | None = None,
               session_cookie: str = "hookscheduler_session") -> Starlette:
    """The dashboard for every site of ``bench`` (or only ``site``). ``allowed_hosts``: the Host headers
    accepted (``hookscheduler dashboard`` on loopback accepts only loopback names, its bind address and
    ``--allow-host`` names, which stops DNS rebinding); ``None`` accepts any. ``token``: an access token every
    browser must bring once (``?token=``, see :mod:`.access`; ``hookscheduler dashboard`` makes one per start
    when there is no auth file); ``None``, the default for mounting it in your own server, checks none.
    ``session_cookie``: the cookie's name; cookies are not scoped by port, so two dashboards on one host need
    two names (the CLI adds the port)."""
    dash = Dashboard(sites or BenchSites(bench, site), auth, live_seconds, clock, metrics_grace)

    async def login_page(request: Request) -> Response:
        return login_get(dash, request)

    def r(path: str, fn: Handler) -> Route:
        return Route(path, page(dash, fn), methods=["GET"])

    def change(path: str) -> Route:
        return Route(f"/sites/{{site}}/{path}", page(dash, actions.handler(path, actions.ACTIONS[path]), path),
                     methods=["POST"])

    routes = [
        Route("/", page(dash, views.home)),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/metrics", metrics_endpoint(dash)),
        Route("/scheduler", page(dash, views.scheduler)),
        r("/sites/{site}/jobs", views.jobs), r("/sites/{site}/job", views.job),
        r("/sites/{site}/log/{id:int}", views.log),
        r("/sites/{site}/missed", views.missed), r("/sites/{site}/queues", views.queues_page),
        r("/sites/{site}/workers", views.workers), r("/sites/{site}/rq-jobs", views.rq_jobs),
        *(change(path) for path in actions.ACTIONS),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"]),
                  Middleware(SessionMiddleware, secret_key=(auth.secret if auth else _random_secret()),
                             session_cookie=session_cookie, same_site="strict", max_age=SESSION_SECONDS)]
    if token is not None:
        if not token:
            raise ValueError("create_app: token is empty; pass None for no access token")
        middleware.append(Middleware(AccessToken, token=token))
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={Exception: lambda req, exc: _error(dash, req, exc)})
    app.state.dash = dash
    return app


def _random_secret() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def _error(dash: Dashboard, request: Request, exc: Exception) -> Response:
    import logging

    # not .exception(): this handler runs after the except block, where that would log "NoneType: None"
    logging.getLogger(__name__).error("dashboard: %s %s failed", request.method, request.url.path,
                                      exc_info=(type(exc), exc, exc.__traceback__))
    first = str(exc).splitlines()[0] if str(exc) else ""
    return dash.render(request, "refused.html", http_status=500, why=f"internal error {type(exc).__name__}: "
                       f"{redact(first)}")


__all__ = ["create_app", "loopback_hosts"]
