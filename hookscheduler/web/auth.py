"""Who may use the dashboard: users with hashed passwords and a role, read from a JSON file.

``{"users": {"alice": {"role": "operator", "password": "pbkdf2_sha256$600000$<salt>$<hash>"}}}``; make a hash
with ``hookscheduler dashboard --hash-password``. Roles: ``viewer`` reads every page, ``operator`` may also
change things. Without a file the dashboard only serves localhost, and whoever reaches it acts as the local
user (as the CLI on that machine would). The file holds hashes, never passwords, and they are never rendered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError

ROLES = ("viewer", "operator")
ITERATIONS = 600_000


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


@dataclass(frozen=True)
class AuthConfig:
    """The users, and the key that signs session cookies (random per process unless the file sets one)."""

    users: dict[str, User]
    secret: str

    def login(self, name: str, password: str) -> User | None:
        user = self.users.get(name)
        if user is None:
            check_password(password, hash_password("x", iterations=1000))  # same work either way
            return None
        return user if check_password(password, user.password_hash) else None


def load_auth(path: str | Path) -> AuthConfig:
    """Read and validate the auth file; a problem is one ConfigError naming the file and the key."""
    where = str(path)
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


__all__ = ["ROLES", "AuthConfig", "User", "check_password", "hash_password", "load_auth"]
