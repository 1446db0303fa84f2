"""A real Prometheus (Debian's package) scrapes `hookscheduler metrics` and the dashboard's /metrics, and its
queries return the ledger's numbers; the shipped alert rules pass `promtool check rules` and `promtool test
rules`. Never skipped: `.ci/run` installs prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hookscheduler.context import open_site
from hookscheduler.metrics import ALERT_RULES
from hookscheduler.store.models import ScheduledJobLog
from hookscheduler.web.app import create_app
from tests.helpers import env_for
from tests.web.support import auth_config, free_port, live_server, make_bench, seed_ledger

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def test_the_shipped_alert_rules_check_and_pass_their_unit_tests(tmp_path):
    assert Path(PROMTOOL).exists(), "promtool is missing: apt-get install prometheus (.ci/run does)"
    check = subprocess.run([PROMTOOL, "check", "rules", str(ALERT_RULES)], capture_output=True, text=True)
    assert check.returncode == 0 and "6 rules found" in check.stdout, check.stdout + check.stderr
    tests = (Path(__file__).with_name("alerts_test.yml")).read_text().replace("RULES_FILE", str(ALERT_RULES))
    (tmp_path / "alerts_test.yml").write_text(tests)
    run = subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "alerts_test.yml")], capture_output=True,
                         text=True)
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def _wait_http(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
                return bytes(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    body = _wait_http(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    data = json.loads(body)
    assert data["status"] == "success", data
    return list(data["data"]["result"])


def _value(base: str, expr: str, want: float, timeout: float = 60.0) -> float:
    """Poll a PromQL query until it returns ``want`` (scrapes land every second)."""
    deadline = time.monotonic() + timeout
    got: Any = None
    while time.monotonic() < deadline:
        result = _query(base, expr)
        got = float(result[0]["value"][1]) if result else None
        if got == want:
            return got
        time.sleep(0.5)
    pytest.fail(f"{expr} = {got}, expected {want}")


def test_prometheus_scrapes_both_endpoints_and_queries_return_the_ledger_counts(bench_factory, db_kind, tmp_path):
    assert Path(PROMETHEUS).exists(), "prometheus is missing: apt-get install prometheus (.ci/run does)"
    bench = make_bench(bench_factory, db_kind, hours_ago=80)
    seed_ledger(bench)
    ctx = open_site(str(bench))
    ctx.database()
    want = {s: ScheduledJobLog.select().where((ScheduledJobLog.job_name == "app1.tasks.ok")
                                              & (ScheduledJobLog.status == s)).count()
            for s in ("complete", "failed", "missed")}
    ctx.close()
    exporter_port, prom_port = free_port(), free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "hookscheduler", "metrics", "--port", str(exporter_port),
                                 "--grace", "0"], env=env_for(bench), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{exporter_port}/metrics")
        with live_server(create_app(str(bench), auth=auth_config(), metrics_grace=0)) as dash:
            dash_port = dash.rsplit(":", 1)[1]
            config = tmp_path / "prometheus.yml"
            config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{ALERT_RULES}"]
scrape_configs:
  - job_name: exporter
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
  - job_name: dashboard
    basic_auth: {{username: victor, password: "correct horse battery staple"}}
    static_configs: [{{targets: ["127.0.0.1:{dash_port}"]}}]
""")
            prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                     f"--web.listen-address=127.0.0.1:{prom_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                base = f"http://127.0.0.1:{prom_port}"
                _wait_http(f"{base}/-/ready", timeout=60)
                for target in ("exporter", "dashboard"):
                    ok = f'{{job="{target}",job_name="app1.tasks.ok",site="default"'
                    _value(base, f'hookscheduler_job_runs_total{ok},status="complete"}}', want["complete"])
                    _value(base, f'hookscheduler_job_runs_total{ok},status="failed"}}', want["failed"])
                    _value(base, f'sum(hookscheduler_job_slots_not_run_total{ok},status="missed"}})', want["missed"])
                    _value(base, f'hookscheduler_job_enabled{ok}}}', 1)
                    _value(base, f'hookscheduler_job_schedule_interval_seconds{ok}}}', 3600)
                    _value(base, f'hookscheduler_scheduler_up{{job="{target}",site="default"}}', 0)
                    _value(base, f'hookscheduler_site_up{{job="{target}",site="default"}}', 1)
                # the rules loaded and are evaluated against the scraped series
                rules = json.loads(_wait_http(f"{base}/api/v1/rules"))["data"]["groups"][0]["rules"]
                assert {r["name"] for r in rules} == {"JobMissedSlots", "JobFailing", "JobNotRunSince",
                                                      "SchedulerDown", "QueueBacklog", "NoWorkerForQueue"}
            finally:
                prom.terminate()
                prom.wait(timeout=30)
    finally:
        exporter.terminate()
        exporter.wait(timeout=30)
