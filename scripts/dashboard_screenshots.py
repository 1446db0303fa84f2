"""Regenerate the dashboard screenshots in docs/img from a real, running bench.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/img] [--redis redis://127.0.0.1:6379/0]

Needs the test extra (Playwright) and Debian's ``chromium``. It builds a throw-away bench around the example app
(SQLite), migrates it, writes a week of plausible history into the ledger (the scheduler cannot live through a
week in a minute), stops one job with a note and an end time, then runs a real ``schedule`` process, a real
worker and the real ``dashboard`` command for a few seconds, so that the pages show live heartbeats, queues,
workers and next runs in the future. Everything it made (folder, Redis keys) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
PAGES = (("jobs", "/sites/default/jobs"), ("missed", "/sites/default/missed?since=7d"),
         ("queues", "/sites/default/queues"), ("workers", "/sites/default/workers"),
         ("rq_jobs", "/sites/default/rq-jobs"), ("scheduler", "/scheduler"))
FEATURED = "example_app.tasks.sync_rates"  # hourly: a full timeline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"screenshots: {CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="hs_shots_"))
    bench_id = f"shots{uuid.uuid4().hex[:8]}"
    try:
        bench = _make_bench(work, args.redis, bench_id)
        env = {**os.environ, "HOOKSCHEDULER_BENCH": str(bench), "PYTHONPATH": str(bench / "apps")}
        _cli(env, "migrate")
        _seed_history(bench)
        _cli(env, "jobs", "disable", "example_app.tasks.weekly_report", "--note",
             "waiting for the new report template (INC-2231)", "--until", "3d")
        with _running(env) as base:
            _shoot(base, args.out)
    finally:
        _clear_redis(args.redis, bench_id)
        shutil.rmtree(work, ignore_errors=True)
    print(f"screenshots: written to {args.out}")
    return 0


def _make_bench(work: Path, redis_url: str, bench_id: str) -> Path:
    bench = work / "bench"
    (bench / "sites").mkdir(parents=True)
    shutil.copytree(REPO / "apps", bench / "apps", ignore=shutil.ignore_patterns("__pycache__"))
    conf = {"redis_queue": redis_url, "bench_id": bench_id, "time_zone": "Europe/Berlin"}
    (bench / "sites" / "common_site_config.json").write_text(json.dumps(conf))
    return bench


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "hookscheduler", *args], env=env, check=True, capture_output=True,
                   timeout=120)


def _seed_history(bench: Path) -> None:
    """A week of hourly and daily runs: mostly complete, a few late, two failures, a deploy window missed."""
    from hookscheduler.context import open_site
    from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, utcnow

    rnd = random.Random(7)
    ctx = open_site(str(bench))
    ctx.database()
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    rows: list[dict[str, Any]] = []
    for job in ScheduledJobType.select():
        step = {"Hourly": 1, "Hourly Long": 1, "Daily": 24, "Daily Long": 24}.get(job.frequency)
        if step is None:
            continue
        for h in range(7 * 24, 0, -step):
            slot = now - timedelta(hours=h)
            if 50 <= h <= 51:  # a deploy two days ago: the scheduler was down for these slots
                rows.append(_row(job, slot, "missed", reason="no scheduler pass ran for 1 slot; catchup=skip, "
                                                            "so not run"))
                continue
            failed = job.name == FEATURED and h in (30, 97)
            late = rnd.choice((0.02, 0.03, 0.05, 0.4)) if h % 17 else 95.0
            rows.append(_row(job, slot, "failed" if failed else "complete", late=late,
                             duration=rnd.uniform(0.4, 3.0) * (20 if "long" in job.frequency.lower() else 1)))
    ScheduledJobLog.insert_many(rows).execute()
    for job in ScheduledJobType.select():  # what the runtime would have recorded as each job's last run
        last = max((r["scheduled_for"] for r in rows if r["job"] == job.id and r["status"] != "missed"), default=None)
        if last is not None:
            ScheduledJobType.update(last_execution=last).where(ScheduledJobType.id == job.id).execute()
    # the bench has existed for the week the history covers
    ScheduledJobType.update(created_at=now - timedelta(days=8)).execute()
    ctx.close()


def _row(job: object, slot: datetime, status: str, *, reason: str | None = None, late: float = 0.0,
         duration: float = 1.0) -> dict[str, object]:
    ran = status in ("complete", "failed")
    sent = slot + timedelta(seconds=late)
    return {
        "job": job.id, "job_name": job.name, "scheduled_for": slot,  # type: ignore[attr-defined]
        "trigger": "schedule", "status": status, "reason": reason, "slots": 1, "first_slot": slot, "last_slot": slot,
        "queue": job.queue,  # type: ignore[attr-defined]
        "rq_job_id": f"seed-{uuid.uuid4().hex[:12]}" if ran else None,
        "enqueued_at": sent if ran else None, "started_at": sent + timedelta(seconds=0.2) if ran else None,
        "finished_at": sent + timedelta(seconds=duration) if ran else slot,
        "duration": duration if ran else None, "worker": "worker-1" if ran else None,
        "traceback": ("Traceback (most recent call last):\n  File \"example_app/tasks.py\", line 12, in sync_rates\n"
                      "TimeoutError: rates API did not answer in 30 s") if status == "failed" else None,
        "created_at": slot, "modified_at": slot}


@contextmanager
def _running(env: dict[str, str]) -> Iterator[str]:
    """A real scheduler, a worker and the dashboard; yields the dashboard's URL once the pulse job has run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hs = [sys.executable, "-m", "hookscheduler"]
    procs = [subprocess.Popen([*hs, "schedule"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([*hs, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             # a throwaway bench of example jobs, for a few seconds: no access token, so the browser needs none
             subprocess.Popen([*hs, "dashboard", "--port", str(port), "--no-token"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/scheduler", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(12)  # a real process on the real clock: let the 10-second pulse run once or twice
        yield base
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _shoot(base: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        for name, path in PAGES:
            page.goto(base + path)
            page.screenshot(path=str(out / f"{name}.png"))
        page.goto(f"{base}/sites/default/job?name={FEATURED}")
        page.screenshot(path=str(out / "job.png"))
        page.goto(f"{base}/sites/default/job?name={FEATURED}&at=30h")
        page.screenshot(path=str(out / "explain.png"), full_page=True)
        browser.close()


def _clear_redis(url: str, bench_id: str) -> None:
    import redis

    conn = redis.Redis.from_url(url)
    for key in conn.scan_iter(match=f"*{bench_id}*", count=1000):  # RQ's keys name the bench's queues too
        conn.delete(key)


if __name__ == "__main__":
    sys.exit(main())
