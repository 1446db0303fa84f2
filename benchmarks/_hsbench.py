"""Scratch benches for the workloads that drive the real CLI (4. latency, 5. migrate, 6. worker).

A bench here is what a user has: ``apps/<app>/{__init__,hooks,tasks}.py``, ``sites/common_site_config.json``
with a ``bench_id`` of its own (so its queues and job ids never meet another run's in the shared Redis), and
SQLite in the site folder or a PostgreSQL database created for the run and dropped after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from hookscheduler.broker.connection import delete_bench_keys

ROOT = Path(__file__).resolve().parent.parent


def make_bench(workdir: Path, label: str, redis_url: str, apps: dict[str, str], tasks: str = "",
               common: dict[str, Any] | None = None) -> tuple[Path, str]:
    """A fresh bench under ``workdir``; ``apps`` maps app name -> hooks.py source. Returns (path, bench_id)."""
    bench_id = f"hsb{label}{uuid.uuid4().hex[:8]}"
    bench = workdir / bench_id
    (bench / "apps").mkdir(parents=True)
    (bench / "sites").mkdir()
    for app, hooks in apps.items():
        pkg = bench / "apps" / app
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "tasks.py").write_text(tasks or "def noop():\n    return None\n")
        (pkg / "hooks.py").write_text(hooks)
    conf = {"redis_queue": redis_url, "bench_id": bench_id, "time_zone": "UTC", **(common or {})}
    (bench / "sites" / "common_site_config.json").write_text(json.dumps(conf))
    return bench, bench_id


def cli_env(bench: Path, db_url: str | None = None) -> dict[str, str]:
    """The environment of a ``hookscheduler`` subprocess on ``bench`` (this checkout's package)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCHEDULER_")}
    # As on a real host: Python caches compiled modules (this sandbox sets PYTHONDONTWRITEBYTECODE, which would
    # make every command recompile hookscheduler and every app's hooks.py and tasks.py).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["HOOKSCHEDULER_BENCH"] = str(bench)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TZ"] = "UTC"
    if db_url:
        env["HOOKSCHEDULER_DB_URL"] = db_url
    return env


def hookscheduler(bench: Path, *args: str, db_url: str | None = None, check: bool = True) -> str:
    """Run one CLI command to completion; returns its stdout (raises with stderr on failure)."""
    proc = subprocess.run([sys.executable, "-m", "hookscheduler", *args], env=cli_env(bench, db_url),
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise RuntimeError(f"hookscheduler {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


#: Delete every key of one bench (the workloads' name for it).
redis_cleanup = delete_bench_keys


@contextlib.contextmanager
def pg_database(pg_dsn: str, label: str) -> Iterator[str]:
    """A PostgreSQL database for one run (dropped afterwards); yields its URL."""
    name = f"hsbench_{label}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(pg_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(pg_dsn)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    try:
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def ledger_rows(bench: Path, db_url: str | None, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read straight from a bench's default site database (PostgreSQL when ``db_url`` is given,
    else the site's SQLite file), with a connection of its own: a benchmark checks the ledger independently of
    the code it measures."""
    conn: Any = psycopg2.connect(db_url) if db_url else sqlite3.connect(bench / "sites" / "default" /
                                                                         "scheduler.sqlite3")
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        conn.close()
