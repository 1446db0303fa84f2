"""Sessions, roles and CSRF for the dashboard.

* The session is Starlette's signed cookie (itsdangerous), ``HttpOnly`` and ``SameSite=Strict``; it holds the
  user name, the role, a random session id and the CSRF token, never a password. Signing out revokes the id
  in this process (:class:`~hookscheduler.web.auth.Revoked`), so a copy of the cookie stops working too.
* Every state change is a POST that must carry the session's CSRF token (a hidden form field): a page of
  another site cannot post to the dashboard with the user's cookie, even on localhost without auth.
* Without an auth file every visitor is an operator acting as the local user: the CLI decides that, and only
  allows it on a loopback bind (:func:`check_bind`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass

from starlette.requests import Request

from ..exceptions import ConfigError
from ..hosts import LOOPBACK_NAMES, is_loopback
from ..ops.jobs import actor
from .auth import AuthConfig

audit = logging.getLogger("hookscheduler.web.audit")


def check_bind(host: str, auth: AuthConfig | None, bound: str | None = None) -> None:
    """Refuse to serve beyond this machine without authentication. ``bound``: the address ``--host`` was bound
    to (default ``host``), which is what decides: ``--host vm`` may resolve to a loopback address."""
    if auth is None and not is_loopback(host if bound is None else bound):
        raise ConfigError(f"dashboard: refusing to listen on {host} without authentication; pass --auth-file "
                          "(see docs/dashboard.md) or listen on 127.0.0.1")


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a user name (or the local user without auth) and whether they may change things."""

    name: str
    operator: bool
    authenticated: bool

    @property
    def role(self) -> str:
        return "operator" if self.operator else "viewer"

    @property
    def actor(self) -> str:
        """What the audit columns and log lines record for this person's changes."""
        return f"{self.name} (dashboard)"


def viewer(request: Request, auth: AuthConfig | None) -> Viewer | None:
    """The signed-in user, the local user when there is no auth, or None (must sign in)."""
    if auth is None:
        return Viewer(actor(), True, False)
    name = request.session.get("user")
    if name is None:
        return None
    sid = request.session.get("sid")
    if not isinstance(sid, str) or auth.revoked.holds(sid):
        # signed out (or a cookie from before session ids): drop it, so no response signs it afresh
        request.session.clear()
        return None
    user = auth.users.get(name) if isinstance(name, str) else None
    if user is None or request.session.get("role") != user.role:
        return None
    return Viewer(user.name, user.operator, True)


def sign_out(request: Request, auth: AuthConfig | None) -> None:
    """End the session: revoke its id in this process and clear the cookie."""
    sid = request.session.get("sid")
    if auth is not None and isinstance(sid, str):
        auth.revoked.revoke(sid)
    request.session.clear()


def audit_change(request: Request, who: Viewer | None, action: str, outcome: str, message: str) -> None:
    """Write the one audit line of a change, done or refused: who (``not signed in`` when unknown), from which
    address, which action on which site, the outcome and its one-line message.

    A refusal is logged as well as a change, because an audit trail that only shows what succeeded hides the
    attempts (a viewer pressing buttons, a forged post without the token). The form's values, the CSRF token,
    the cookie and any password are never part of the line, and text the request chose (the site in the path)
    is escaped, so that a crafted URL cannot forge a second line."""
    address = request.client.host if request.client else "an unknown address"
    audit.info("%s from %s: %s on site %s %s: %s", who.actor if who else "not signed in", _one_line(address),
               action, _one_line(str(request.path_params.get("site", ""))), outcome, _one_line(message))


def audit_sign_in(request: Request, name: str, outcome: str, via: str = "sign-in") -> None:
    """One audit line per sign-in attempt, made or refused: who it claimed to be (the name typed, escaped, never
    the password), from which address and how (``sign-in`` for the form, ``/metrics basic auth``). Failed
    sign-ins are how guessing shows in a log."""
    address = request.client.host if request.client else "an unknown address"
    audit.info("%s from %s: %s %s", _one_line(name) or "(no user name)", _one_line(address), via, outcome)


def _one_line(text: str) -> str:
    """``text`` with its control characters escaped (``\\n``), as it would otherwise break the line in two."""
    return text if text.isprintable() else repr(text)[1:-1]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, sent: object) -> bool:
    """Whether ``sent`` is the session's CSRF token, compared in constant time as bytes (``compare_digest``
    refuses a ``str`` that is not ASCII, and a form may send anything)."""
    token = request.session.get("csrf")
    return isinstance(token, str) and isinstance(sent, str) and \
        hmac.compare_digest(token.encode(), sent.encode("utf-8", "surrogatepass"))


__all__ = ["LOOPBACK_NAMES", "Viewer", "audit", "audit_change", "audit_sign_in", "check_bind", "csrf_ok",
           "csrf_token", "is_loopback", "sign_out", "viewer"]
