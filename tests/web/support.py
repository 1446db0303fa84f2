"""Shared by the dashboard and metrics tests: benches with hostile job names, a signed-in test client, a live
server in a thread, free ports, and Debian's Chromium / Prometheus (never skipped: CI installs them)."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from starlette.testclient import TestClient

from hookscheduler.store.models import utcnow
from hookscheduler.web.app import create_app
from hookscheduler.web.auth import AuthConfig, User, hash_password
from tests.integration.opcli_support import migrated

HOSTILE = '<script>alert("pwn")</script> \'q\' & "dq"'
HOSTILE_NOTE = '<img src=x onerror=alert(1)> "quoted" \'single\''
APPS = {"app1": {
    "hourly": ["app1.tasks.ok", {"method": "app1.tasks.ok", "name": HOSTILE}],
    "daily": ["app1.tasks.boom"],
    "cron": {"30 2 * * *": ["app1.tasks.other"]},
}}
PASSWORD = "correct horse battery staple"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def auth_config() -> AuthConfig:
    cheap = 1000  # the real default is 600,000 iterations; tests need not pay for that
    return AuthConfig({"alice": User("alice", "operator", hash_password(PASSWORD, cheap)),
                       "victor": User("victor", "viewer", hash_password(PASSWORD, cheap))}, "s" * 40)


def make_bench(bench_factory: Any, db_kind: str = "sqlite", sites: dict[str, dict[str, Any]] | None = None,
               hours_ago: int = 30) -> Path:
    """A bench migrated ``hours_ago`` hours ago (so its jobs have history room), one or several sites."""
    bench: Path = bench_factory.make(APPS, db=db_kind, sites=sites)
    for site in (sites or {None: {}}):
        migrated(bench, utcnow() - timedelta(hours=hours_ago), site)
    return bench


def client(bench: Path, auth: AuthConfig | None = None, **kwargs: Any) -> TestClient:
    return TestClient(create_app(str(bench), auth=auth, live_seconds=0, **kwargs), base_url="http://127.0.0.1")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(c: TestClient, user: str = "alice", password: str = PASSWORD) -> None:
    page = c.get("/login")
    r = c.post("/login", data={"user": user, "password": password, "csrf": csrf_of(page.text), "next": "/"},
               follow_redirects=False)
    assert r.status_code == 303, r.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def seed_ledger(bench: Path, site: str | None = None, days: int = 3) -> None:
    """Hourly ledger rows for ``app1.tasks.ok`` over the last ``days`` days: mostly complete, with failed (and a
    traceback holding a password, which must be redacted), missed, skipped and late runs."""
    from hookscheduler.context import open_site
    from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType

    ctx = open_site(str(bench), site)
    ctx.database()
    job = ScheduledJobType.get(ScheduledJobType.name == "app1.tasks.ok")
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    rows = []
    for h in range(days * 24, 0, -1):
        slot = now - timedelta(hours=h)
        kind = h % 11
        status = {0: "failed", 3: "missed", 5: "skipped"}.get(kind, "complete")
        late = 300 if kind == 7 else 1
        rows.append({
            "job": job.id, "job_name": job.name, "scheduled_for": slot, "trigger": "schedule", "status": status,
            "reason": {"missed": "no scheduler pass ran for 1 slot; catchup=skip, so not run",
                       "skipped": "job stopped"}.get(status), "slots": 1, "first_slot": slot, "last_slot": slot,
            "queue": "default", "rq_job_id": f"seed-{site}-{h}" if status in ("complete", "failed") else None,
            "enqueued_at": slot + timedelta(seconds=late) if status in ("complete", "failed") else None,
            "started_at": slot + timedelta(seconds=late + 1) if status in ("complete", "failed") else None,
            "finished_at": slot + timedelta(seconds=late + 4), "duration": 3.0 if status == "complete" else None,
            "worker": "w1" if status in ("complete", "failed") else None,
            "traceback": ("Traceback (most recent call last):\n  File \"tasks.py\", line 3\n"
                          "ConnectionError: postgresql://app:s3cret-pw@db/x refused") if status == "failed" else None,
            "created_at": slot, "modified_at": slot})
    ScheduledJobLog.insert_many(rows).execute()
    ctx.close()
