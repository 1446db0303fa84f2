"""Who may use the dashboard: users with hashed passwords and a role, read from a JSON file.

``{"users": {"alice": {"role": "operator", "password": "pbkdf2_sha256$600000$<salt>$<hash>"}}}``; make a hash
with ``hookscheduler dashboard --hash-password``. Roles: ``viewer`` reads every page, ``operator`` may also
change things. Without a file the dashboard only serves localhost, and whoever reaches it acts as the local
user (as the CLI on that machine would). The file holds hashes, never passwords, and they are never rendered;
its ``secret`` signs session cookies, so whoever reads it can forge one: the file must be owner-only.

A password check costs hundreds of milliseconds of CPU by design, so the web handlers run it off the event loop
(:meth:`AuthConfig.login_in_thread`), a few at a time, and an unknown user name costs the same as a known one.
A check waiting its turn is dropped when its client has gone (nobody would read the answer), and one address may
have only a few checks under way at once (:data:`CHECKS_PER_ADDRESS`): more are refused at once, so a flood from
one address cannot make everyone else's sign-in and scrape wait behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import anyio.to_thread
from anyio import CapacityLimiter

from ..exceptions import ConfigError

ROLES = ("viewer", "operator")
ITERATIONS = 600_000
#: Password checks that may run at once; more wait their turn without holding a thread, so a flood of guesses
#: cannot take every worker thread from the pages.
HASH_THREADS = 2
#: Password checks one client address may have waiting or running at once; more are refused at once (HTTP 429).
CHECKS_PER_ADDRESS = 4
#: How long a session cookie is accepted after it was last signed (the session cookie's max age).
SESSION_SECONDS = 12 * 3600


def hash_password(password: str, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    """A salted PBKDF2-SHA256 hash in the file's format."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash (False for a malformed one)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations)).hex()
    except ValueError:
        return False
    return hmac.compare_digest(candidate, digest)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def operator(self) -> bool:
        return self.role == "operator"


class NotChecked(Exception):
    """A password that was not checked: :class:`TooManyChecks` or :class:`ClientGone`."""


class TooManyChecks(NotChecked):
    """One address already has :data:`CHECKS_PER_ADDRESS` password checks waiting or running."""


class ClientGone(NotChecked):
    """The client hung up while its check waited for a thread."""


async def _still_here() -> bool:
    return False


class Revoked:
    """Session ids signed out in this process, each kept until a cookie carrying it could no longer be accepted.

    A session cookie is signed, not stored, so signing out alone would leave a copied cookie valid; its id is
    remembered here instead. Only this process knows: a restart, or another dashboard process with the same
    ``secret``, forgets it (then the cookie's own age is the limit)."""

    def __init__(self, keep_seconds: float = SESSION_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._until: dict[str, float] = {}

    def revoke(self, session_id: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._until = {sid: end for sid, end in self._until.items() if end > now}
        self._until[session_id] = now + self.keep_seconds

    def holds(self, session_id: object, now: float | None = None) -> bool:
        end = self._until.get(session_id) if isinstance(session_id, str) else None
        return end is not None and end > (time.monotonic() if now is None else now)


@dataclass(frozen=True)
class AuthConfig:
    """The users, and the key that signs session cookies (random per process unless the file sets one)."""

    users: dict[str, User]
    secret: str
    revoked: Revoked = field(default_factory=Revoked, compare=False, repr=False)

    @cached_property
    def _dummy_hash(self) -> str:
        """A hash that costs what checking a real user's password costs (the file's largest iteration count)."""
        counts = [int(parts[1]) for u in self.users.values()
                  if len(parts := u.password_hash.split("$")) == 4 and parts[1].isdigit()]
        return hash_password(secrets.token_hex(8), iterations=max(counts, default=ITERATIONS))

    def login(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs; an unknown name costs the same work, so timing does not tell
        which names exist. Blocks for the hash: from async code use :meth:`login_in_thread`."""
        user = self.users.get(name)
        if user is None:
            check_password(password, self._dummy_hash)
            return None
        return user if check_password(password, user.password_hash) else None

    async def login_in_thread(self, name: str, password: str, address: str = "",
                              gone: Callable[[], Awaitable[bool]] = _still_here,
                              hung_up: Callable[[], Awaitable[None]] | None = None) -> User | None:
        """:meth:`login` in a worker thread, at most :data:`HASH_THREADS` at once for this file's users.

        ``address``: the client's; when it already has :data:`CHECKS_PER_ADDRESS` checks waiting or running,
        :class:`TooManyChecks` at once. ``gone``: whether the client has hung up (Starlette's
        ``request.is_disconnected``), asked once a thread is free: a check nobody waits for is not started
        (:class:`ClientGone`). ``hung_up``: returns when the client hangs up; a check waiting for a thread
        leaves the queue then (:class:`ClientGone`), so a flood of requests that hang up at once does not hold
        its address's places, nor anyone's turn."""
        if self._checks.get(address, 0) >= CHECKS_PER_ADDRESS:
            raise TooManyChecks(address)
        self._checks[address] = self._checks.get(address, 0) + 1
        try:
            if not await self._turn(hung_up):
                raise ClientGone(address)
            try:
                if await gone():
                    raise ClientGone(address)
                return await anyio.to_thread.run_sync(self.login, name, password)
            finally:
                self._limiter.release()
        finally:
            self._checks[address] -= 1
            if not self._checks[address]:
                del self._checks[address]

    async def _turn(self, hung_up: Callable[[], Awaitable[None]] | None) -> bool:
        """Wait for a place in :attr:`_limiter` (then hold it: True), or until ``hung_up`` returns (False)."""
        if hung_up is None:
            await self._limiter.acquire()
            return True
        got = False
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await hung_up()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await self._limiter.acquire()
            got = True  # no checkpoint between: a cancel cannot come after the place was taken and before this
            tg.cancel_scope.cancel()
        return got

    @cached_property
    def _checks(self) -> dict[str, int]:
        """Password checks waiting or running, by client address."""
        return {}

    @cached_property
    def _limiter(self) -> CapacityLimiter:
        """Made on first use, from async code (an anyio limiter needs a running event loop to be made)."""
        return CapacityLimiter(HASH_THREADS)


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def load_auth(path: str | Path) -> AuthConfig:
    """Read and validate the auth file; a problem is one ConfigError naming the file and the key.

    Like ssh with a private key, a file that group or others can read or write is refused: its ``secret``
    signs session cookies and its hashes can be guessed at offline. So is a file owned by another user than the
    one serving (or root): its owner could rewrite the users and the secret."""
    where = str(path)
    try:
        info = Path(path).stat()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the dashboard auth file ({exc.strerror})") from None
    mode = stat.S_IMODE(info.st_mode)
    me = os.geteuid() if hasattr(os, "geteuid") else None
    if me is not None and info.st_uid not in (me, 0):
        # its owner could rewrite the users and the secret: owner-only protects nothing if that is someone else
        raise ConfigError(f"{where}: the dashboard auth file belongs to uid {info.st_uid}, not to the user serving "
                          f"the dashboard (uid {me}), who could change its users and secret; make it yours: "
                          f"chown {_user_name(me)} {where}")
    if mode & 0o077:
        raise ConfigError(f"{where}: the dashboard auth file is {mode:04o}, open to group/others (its secret signs "
                          f"sessions); make it owner-only: chmod 600 {where}")
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the dashboard auth file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc.msg} at line {exc.lineno}); see docs/dashboard.md") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not users:
        raise ConfigError(f'{where}: needs "users": {{"name": {{"role": ..., "password": ...}}}}; '
                          "see docs/dashboard.md")
    out: dict[str, User] = {}
    for name, spec in users.items():
        if not isinstance(spec, dict) or spec.get("role") not in ROLES:
            raise ConfigError(f"{where}: users.{name}.role must be one of {', '.join(ROLES)}")
        pw = spec.get("password")
        if not isinstance(pw, str) or not pw.startswith("pbkdf2_sha256$") or pw.count("$") != 3:
            raise ConfigError(f"{where}: users.{name}.password must be a hash from "
                              "`hookscheduler dashboard --hash-password` (never the password itself)")
        out[str(name)] = User(str(name), str(spec["role"]), pw)
    secret = data.get("secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 32):
        raise ConfigError(f"{where}: secret must be a string of at least 32 characters (it signs session cookies)")
    return AuthConfig(out, secret or secrets.token_urlsafe(32))


__all__ = ["CHECKS_PER_ADDRESS", "HASH_THREADS", "ITERATIONS", "ROLES", "SESSION_SECONDS", "AuthConfig", "ClientGone",
           "NotChecked", "Revoked", "TooManyChecks", "User", "check_password", "hash_password", "load_auth"]
