"""Helpers for the operator-CLI tests: a migrated site at a fixed moment, and running the CLI in-process
(through ``run_cli``, so exit statuses and one-line errors are the real ones) or as a subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from hookscheduler.broker.connection import redis_for
from hookscheduler.cli import run_cli
from hookscheduler.context import SiteContext, open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from tests.helpers import env_for


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run(bench: Path, *args: str, site: str | None = None) -> Result:
    """The CLI in this process, as a user calls it (one line on stderr for errors, the real exit status)."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["--bench", str(bench), *(["--site", site] if site else []), *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(argv)
    return Result(code, out.getvalue(), err.getvalue())


def sub(bench: Path, *args: str, **env: str) -> Result:
    """``python -m hookscheduler`` in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "hookscheduler", *args], env=env_for(bench, **env),
                          capture_output=True, text=True, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def migrated(bench: Path, now: datetime, site: str | None = None) -> tuple[SiteContext, redis.Redis]:
    """Open the site, migrate it as of ``now``, and return it with its Redis."""
    ctx = open_site(str(bench), site)
    db = ctx.database(create=True, require_schema=False)
    migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=now)
    return ctx, redis_for(ctx.site)


def assert_one_line_error(result: Result, code: int, *needles: str, secret: str | None = None) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err + result.out
    for needle in needles:
        assert needle in lines[0], lines[0]
    if secret:
        assert secret not in result.err + result.out
