"""The benchmark harness cannot rot: the runner runs a workload end to end (real Redis, SQLite, PostgreSQL)
and renders its results, keeping the rows of workloads it did not run. Timing is never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_DSN, REDIS_URL

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--runs", "1", "--out", str(out),
                           "--redis-url", REDIS_URL, "--pg-dsn", PG_DSN, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_runner_runs_a_workload_and_keeps_the_others_rows(tmp_path: Path) -> None:
    old = {"workloads": {"6": {"number": 6, "module": "w6_x", "title": "6. Earlier workload", "error": None,
                               "rows": [{"workload": "6", "case": "kept row", "metric": "jobs/s", "values": [1.0],
                                         "target": "", "ok": None, "note": ""}],
                               "date": "2026-01-01 00:00 UTC", "mode": "full", "runs": 5, "seconds": 1.0,
                               "load_before": "0", "load_after": "0"}}}
    (tmp_path / "results.json").write_text(json.dumps(old))
    proc = _run(tmp_path, "--only", "2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["workloads"]) == {"2", "6"}
    rows = data["workloads"]["2"]["rows"]
    assert {r["case"] for r in rows} >= {"sqlite: first pass after 48 h", "postgres: first pass after 48 h"}
    assert all(r["values"] for r in rows)
    md = (tmp_path / "RESULTS.md").read_text()
    assert "2. Downtime recovery" in md and "kept row" in md and "load average" in md
    assert "redis server" in md and "postgresql server" in md


def test_runner_refuses_an_unknown_workload(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--only", "99")
    assert proc.returncode != 0
    assert "no workload '99'" in proc.stderr and not (tmp_path / "RESULTS.md").exists()


def test_merge_takes_the_newer_run_of_each_workload(tmp_path: Path) -> None:
    def entry(num: int, date: str, case: str) -> dict:
        return {"number": num, "module": f"w{num}_x", "title": f"{num}. W", "error": None, "date": date,
                "mode": "full", "runs": 5, "seconds": 1.0, "load_before": "0", "load_after": "0",
                "rows": [{"workload": str(num), "case": case, "metric": "ms", "values": [1.0], "target": "",
                          "ok": None, "note": ""}]}
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir(), theirs.mkdir()
    def env(cpu: str) -> dict:
        return {"machine": {"cpu": cpu, "cores": 2, "ram": "1 GiB", "platform": "x"}, "versions": {}}

    (mine / "results.json").write_text(json.dumps({"workloads": {
        "1": entry(1, "2026-12-01 02:00 UTC", "mine, newer"), "4": entry(4, "2026-12-01 01:00 UTC", "mine, older")},
        "environment": env("Old CPU")}))
    (theirs / "results.json").write_text(json.dumps({"workloads": {
        "1": entry(1, "2026-12-01 01:00 UTC", "theirs, older"), "4": entry(4, "2026-12-01 02:00 UTC", "theirs, newer"),
        "5": entry(5, "2026-12-01 03:00 UTC", "theirs only")}, "environment": env("New CPU")}))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--out", str(mine), "--merge",
                           str(theirs / "results.json")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    md = (mine / "RESULTS.md").read_text()
    assert "mine, newer" in md and "theirs, newer" in md and "theirs only" in md
    assert "older" not in md
    assert "machine: New CPU" in md and "Old CPU" not in md  # the header is the newest run's machine


#: The peer workloads in smoke mode (tiny N, windows of seconds): each must run end to end against the real
#: services and the real peers, and produce rows with values. Which cases each must report:
PEER_WORKLOADS = {
    "8": ("B rq-scheduler, N=20, one loop iteration", "C APScheduler, postgres store, N=20, one loop iteration",
          "D Frappe emulation, postgres, N=20, one loop iteration",
          "hookscheduler postgres, N=20, Scheduler.cycle(), clock +60 s/step"),
    "9": ("hookscheduler schedule, postgres, 6 jobs every 2-5 s, 2 s x 1 runs",
          "C APScheduler 3 (SQLAlchemy store on SQLite), 6 jobs every 2-5 s, 2 s x 1 runs",
          "postgres: ledger enqueued_at - Redis accept (MONITOR), per run"),
    "10": ("hookscheduler migrate, postgres, N=100 (1 apps)", "A, N=100", "B, N=100", "C-redis, N=100",
           "D-postgres, N=100"),
    "11": ("sqlite, 2 sites x 20 jobs", "postgres, 2 sites x 20 jobs"),
}


@pytest.mark.parametrize("number", sorted(PEER_WORKLOADS))
def test_peer_workload_runs_in_smoke_mode(tmp_path: Path, number: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--only", number, "--out", str(tmp_path),
                           "--redis-url", REDIS_URL, "--pg-dsn", PG_DSN], cwd=ROOT, capture_output=True, text=True,
                          timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    entry = json.loads((tmp_path / "results.json").read_text())["workloads"][number]
    assert entry["error"] is None and entry["mode"] == "smoke"
    rows = entry["rows"]
    assert all(r["values"] for r in rows), [r["case"] for r in rows if not r["values"]]
    cases = {r["case"] for r in rows}
    for wanted in PEER_WORKLOADS[number]:
        assert wanted in cases, (wanted, sorted(cases))
    if number == "11":  # the sharing check is a correctness check even at this size
        shared = [r for r in rows if r["metric"] == "3 processes: duplicates"]
        assert shared and all(r["values"] == [0] and r["ok"] for r in shared), shared
