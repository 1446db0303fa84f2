"""Which of a site's files hold secrets but are open to other users (for ``doctor``).

The SQLite database (and its ``-wal`` / ``-shm`` files) holds tracebacks, which may quote secrets; config files
may hold ``rq_password`` or a URL with a password. ``migrate`` creates the database owner-only (0600, folder
0700) whatever the umask. Files that already exist with looser modes are *reported*, not changed: a deliberate
group-shared setup (a worker running as another user of the same group) must not be broken by a routine
command, and an operator who sees the finding can tighten it with the ``chmod`` the hint gives. The one
exception is ``set-config`` writing a password, which makes that file owner-only and says so.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from ..config import Site
from ..store.database import open_database
from .redact import holds_secret


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
    return holds_secret(data)


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
