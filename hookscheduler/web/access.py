"""The access token of a dashboard without sign-in (as Jupyter's): who has the URL ``hookscheduler dashboard``
printed may use it, nobody else.

Without an auth file the dashboard acts as the user who started it, and a loopback bind does not stop the other
users of a shared host: any of them could fetch a page, take its CSRF token and post a change that the ledger
records as the owner's. So the CLI makes a random token per start and prints it in the URL; only that user sees
the output. A request carrying the token (``?token=``, compared in constant time) gets it noted in its signed
session cookie and is redirected to the same URL without it (so the token leaves the address bar and the
history); a request without such a session gets a 401 page saying where to find the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from html import escape

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_KEY = "access"
DENIED = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Access token needed · "
          "hookscheduler</title></head><body><h1>Access token needed</h1><p>This dashboard needs the access "
          "token it was started with. Open the URL that <code>hookscheduler dashboard</code> printed when it "
          "started (<code>http://{host}/?token=…</code>).</p></body></html>")


def new_token() -> str:
    """A fresh random access token (one per start of the dashboard)."""
    return secrets.token_urlsafe(32)


def _mark(token: str) -> str:
    """What the session holds once the token was shown: a digest, so the cookie (signed, not encrypted) never
    carries the token itself, and a session from an earlier start (another token) is not accepted."""
    return hashlib.sha256(f"hookscheduler-access:{token}".encode()).hexdigest()


class AccessToken:
    """ASGI middleware (inside the session middleware): let through a request whose session has seen ``token``,
    admit one that carries it, refuse the rest with 401. ``/static`` stays open (styles, no data)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token
        self.mark = _mark(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        sent = request.query_params.get("token")
        if sent is not None:
            response: Response
            if hmac.compare_digest(sent.encode(), self.token.encode()):
                request.session[SESSION_KEY] = self.mark
                response = RedirectResponse(_without_token(request.url), 303)
            else:
                response = _denied(request)
            await response(scope, receive, send)
            return
        seen = request.session.get(SESSION_KEY)
        root = str(scope.get("root_path", "")).rstrip("/")
        if (isinstance(seen, str) and hmac.compare_digest(seen, self.mark)) \
                or request.url.path.startswith(f"{root}/static/"):
            await self.app(scope, receive, send)
            return
        await _denied(request)(scope, receive, send)


def _without_token(url: URL) -> str:
    """The path and query of ``url`` without ``token`` (relative, so a proxy's public name is kept)."""
    rest = url.remove_query_params("token")
    return f"{rest.path}?{rest.query}" if rest.query else rest.path


def _denied(request: Request) -> Response:
    host = request.headers.get("host") or "127.0.0.1:PORT"
    return HTMLResponse(DENIED.format(host=escape(host)), 401,
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'", "Referrer-Policy": "no-referrer"})


__all__ = ["AccessToken", "new_token"]
