"""The README's main command, end to end: the example app migrated and run by `hookscheduler start`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import env_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_example_app_runs_end_to_end_under_start(tmp_path, redis_url, redis_client):
    from tests.helpers import redis_cleanup

    bench = tmp_path / "bench"
    shutil.copytree(ROOT / "apps", bench / "apps", ignore=shutil.ignore_patterns("__pycache__"))
    (bench / "sites").mkdir()
    bench_id = f"hsex{int(time.time() * 1000) % 10**9}"
    (bench / "sites" / "common_site_config.json").write_text(json.dumps({"redis_queue": redis_url,
                                                                         "bench_id": bench_id}))
    env = env_for(bench)
    env.pop("HOOKSCHEDULER_DB_URL", None)
    cli = [sys.executable, "-m", "hookscheduler"]
    try:
        out = subprocess.run([*cli, "migrate"], env=env, cwd=bench, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "18 added" in out.stdout  # the example app's 17 jobs + the built-in log retention job
        start = subprocess.Popen([*cli, "start"], env=env, cwd=bench, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        log = bench / "logs" / "example_app.jsonl"
        deadline = time.monotonic() + 60
        while not (log.exists() and "pulse" in log.read_text()):  # the pulse job fires every 10 s
            assert start.poll() is None, start.communicate()[0]
            assert time.monotonic() < deadline, "no example job ran under `hookscheduler start`"
            time.sleep(0.2)
        start.send_signal(signal.SIGINT)
        output, _ = start.communicate(timeout=60)
        assert start.returncode == 0, output
        hist = subprocess.run([*cli, "jobs", "history", "example_app.tasks.pulse", "--format", "json"], env=env,
                              cwd=bench, capture_output=True, text=True, timeout=60)
        assert hist.returncode == 0, hist.stderr
        rows = json.loads(hist.stdout)
        assert any(r["status"] == "complete" and r["worker"] for r in rows), rows
    finally:
        redis_cleanup(redis_client, bench_id)
