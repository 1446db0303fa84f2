"""Workload 7: memory of the tick loop: RSS over 10,000 passes on 10,000 jobs must stay flat.

The loop runs in a process of its own (``benchmarks/proc_memory.py``): ``Scheduler.step()`` 10,000 times on a
clock that advances one second per step (2 h 47 min of simulated time), over 10,000 jobs with varied crons,
so passes alternate between nothing due (most) and slots firing (every minute some job is due; no worker
runs them, so ``overlap="skip"`` jobs are skipped while their previous run waits, as on a stalled queue). RSS
is read from ``/proc`` after a ``gc.collect()`` at 20 points; growth is the last sample minus the sample after
the first 10% of the steps (imports, connection pools and caches warmed up). Quick mode: 500 passes on
1,000 jobs. One run per database (a trend over 10,000 passes, not a timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .common import BenchConfig, Measurement
from .tickbench import NOW, make_site, populate

TITLE = "7. Memory of the tick loop"
W = "7. Memory"
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 20


def one_run(path: Path, steps: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.proc_memory", str(path), NOW.isoformat(), str(steps),
                           str(SAMPLES)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"loop process failed: {proc.stderr.strip().splitlines()[-1:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    rss = data["rss"]
    warm = next(mb for step, mb in rss if step > steps // 10)
    return {"growth": rss[-1][1] - warm, "final": rss[-1][1], "warm": warm, "ms": data["ms_per_step"],
            "peak": max(mb for _, mb in rss)}


def run(cfg: BenchConfig) -> list[Measurement]:
    jobs, steps = (1_000, 500) if cfg.quick else (10_000, 10_000)
    runs = 1  # one long run per database: a memory trend, not a timing (a full run takes minutes)
    out = []
    for kind in ("sqlite", "postgres"):
        results = []
        for r in range(runs):
            site = make_site(cfg, f"w7{kind[:2]}{r}x", kind)
            try:
                populate(site, jobs, 0)
                results.append(one_run(site.path, steps))
            finally:
                site.close()
        growth = [x["growth"] for x in results]
        out.append(Measurement(
            W, f"{kind}: {jobs:,} jobs, {steps:,} passes", "MB RSS growth", growth, "<= 5 MB",
            max(growth) <= 5.0,
            f"RSS after warm-up {min(x['warm'] for x in results):.1f} MB, final "
            f"{max(x['final'] for x in results):.1f} MB, peak {max(x['peak'] for x in results):.1f} MB; "
            f"{runs} run(s) of {steps:,} steps"))
        out.append(Measurement(W, f"{kind}: loop step", "ms/step", [x["ms"] for x in results], "", None,
                               "config refresh + sweeps + pass + heartbeat, mean over the run"))
    return out
