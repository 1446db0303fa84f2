"""Shared by the hostile-input and security tests: a bench with a migrated table, and an independent snapshot of
everything a refused command must leave alone (every table row through ``sqlite3`` or ``psycopg2``, not through our
models, and the bytes of every config file)."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from tests.integration.opcli_support import Result, migrated, run

T0 = datetime(2026, 1, 5, 10, 7)
TABLES = ("scheduled_job_type", "scheduled_job_log", "scheduler_state")


def sqlite_path(bench: Path, site: str = "default") -> Path:
    return bench / "sites" / site / "scheduler.sqlite3"


def snapshot(bench: Path, site: str = "default") -> dict[str, Any]:
    """Every row of every table (read with the stdlib ``sqlite3``) and the bytes of every config file."""
    out: dict[str, Any] = {}
    db_file = sqlite_path(bench, site)
    pg_url = os.environ.get("HOOKSCHEDULER_DB_URL", "")
    if pg_url.startswith("postgresql"):  # the bench_factory's PostgreSQL schema, read with psycopg2 directly
        conn = psycopg2.connect(pg_url)
        try:
            with conn.cursor() as cur:
                for table in TABLES:
                    cur.execute(f"SELECT * FROM {table} ORDER BY 1")
                    out[table] = cur.fetchall()
        finally:
            conn.close()
    elif db_file.exists():
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        try:
            for table in TABLES:
                out[table] = conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        finally:
            conn.close()
    for conf in sorted((bench / "sites").rglob("*")):
        if conf.is_file() and (conf.suffix in (".json", ".txt")):
            out[str(conf.relative_to(bench))] = conf.read_bytes()
    return out


def migrated_bench(bench: Path) -> Path:
    """Migrate ``bench`` (as of T0) so the tables exist and hold the jobs."""
    ctx, _ = migrated(bench, T0)
    ctx.close()
    return bench


def refused(bench: Path, *args: str, code: int = 2, site: str | None = None) -> Result:
    """Run a command that must be refused; assert it changed nothing and printed no traceback."""
    before = snapshot(bench)
    result = run(bench, *args, site=site)
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.out + result.err
    assert result.err.startswith("Error: "), result.err
    assert snapshot(bench) == before, "a refused command changed the tables or the config files"
    return result
