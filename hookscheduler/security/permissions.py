"""Which of a site's files hold secrets but are open to other users (for ``doctor``).

The SQLite database (and its ``-wal`` / ``-shm`` files) holds tracebacks, which may quote secrets; config files
may hold ``rq_password`` or a URL with a password. ``migrate`` creates the database owner-only (0600, folder
0700) whatever the umask. Files that already exist with looser modes are *reported*, not changed: a deliberate
group-shared setup (a worker running as another user of the same group) must not be broken by a routine
command, and an operator who sees the finding can tighten it with the ``chmod`` the hint gives.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from ..config import Site
from ..store.database import open_database
from .redact import redact

#: A config key whose value is a secret whatever it holds.
_SECRET_KEY = re.compile(r"password|passwd|pwd|secret|encryption_key|token", re.I)


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def sqlite_files(site: Site) -> tuple[Path | None, list[Path]]:
    """The folder and files of the site's SQLite database (none for PostgreSQL or ``:memory:``)."""
    if not site.db_url.lower().startswith("sqlite"):
        return None, []
    db = open_database(site.db_url, site.bench.path)
    if db.database == ":memory:":
        return None, []
    main = Path(db.database)
    return main.parent, [p for p in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if p.exists()]


def _holds_secret(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return False
    return _secret_in(data)


def _secret_in(value: Any) -> bool:
    """A password in any form: a key named like one (``rq_password``, Frappe's ``db_password``,
    ``encryption_key``) with a value, or a string holding one (a URL's ``user:pass@``, a ``?password=``)."""
    if isinstance(value, dict):
        return any((_SECRET_KEY.search(str(k)) is not None and v not in (None, "", False)) or _secret_in(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(_secret_in(v) for v in value)
    return isinstance(value, str) and redact(value) != value


def loose_permissions(site: Site) -> list[str]:
    """One line per file or folder that other users can read or write but should not, with its mode."""
    findings = []
    folder, files = sqlite_files(site)
    for path in files:
        mode = _mode(path)
        if mode is not None and mode & 0o077:
            findings.append(f"{path} is {mode:04o} (group/others can read it; it holds run tracebacks)")
    if folder is not None:
        mode = _mode(folder)
        if mode is not None and mode & 0o022:
            findings.append(f"{folder} is {mode:04o} (group/others can replace the database in it)")
    for conf in (site.bench.sites_path / "common_site_config.json", site.config_path):
        mode = _mode(conf)
        if mode is not None and mode & 0o077 and _holds_secret(conf):
            findings.append(f"{conf} is {mode:04o} and holds a password")
    return findings
