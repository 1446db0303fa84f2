"""Workload 1: what one scheduling pass costs as the job table grows, against RQ's cron and raw enqueue_many.

For N scheduled jobs (varied crons), on SQLite and PostgreSQL:

* *none due*: a pass at a moment when no row is due (the common case: most passes of a busy loop), averaged over
  a batch of passes per run;
* *1% due*: a pass at the moment N/100 rows are due (spread over crons that fire then); before every run the
  rows are put back on their slot and the runs forgotten (log rows and RQ jobs deleted), so each run repeats
  the same work. Also reported per fired job.

On the same Redis and the same N: RQ 3's ``CronScheduler`` (one iteration of its loop, see ``rqcron``), and the
floor, raw ``Queue.enqueue_many`` of the same N/100 jobs.
"""

from __future__ import annotations

import gc
from datetime import timedelta

import redis

from hookscheduler.tick import run_pass

from .common import BenchConfig, Measurement
from .rqcron import RQCron, enqueue_many_floor
from .tickbench import NOW, SLOT, BenchSite, clear_redis_prefix, fmt_n, make_site, populate, ratio, timed

TITLE = "1. Tick cost vs table size"

ANALYSIS = """\
**Reading it.** The none-due pass is one read-only statement (`tick.probe_pass`: is a row due, is a run
unsent, is the scheduler enabled), answered from indexes, so it does not grow with N; RQ's cron scans and
re-checks every registered job on every pass. With 1% due, hookscheduler's pass costs what its 1,000 runs
cost (claim, ledger rows, enqueue), not what the table holds; RQ's cron pays one Redis round trip per job plus
re-serialising every registered job into its scheduler hash (`save()`), which is why it grows with N.

**The latest run (above) was on a quiet machine** (load average below 1, at the end of the session). SQLite
misses <= 150 ms by 1.1x (166 ms, 117-180). PostgreSQL misses it by 2.8x (418 ms) and is 6.3x faster than
RQ's cron, below the 8x target. An earlier full run of the same tick code at load 3-7 measured 255 ms
(12.4x faster than RQ's cron), and the none-due pass also went from 0.13 ms to 0.55 ms between the two runs.
So PostgreSQL's round trips on this VM vary from one run to the next by about 2-4x, whatever the load. We
did not find the cause in this session. The SQLite figures and the ratio to `enqueue_many` (0.78x and
1.97x) are stable.

**Targets missed, by how much and why (earlier run).** The absolute targets (<= 150 ms and <= 0.15 ms per fired job at
N = 100,000; <= 1 ms none due on PostgreSQL) were measured on a 2-core machine shared with other engineers'
test suites (see the load average in this section's header line: at 4-12 on 2 cores, 2-6 runnable processes
share each core, and pass times grow by about that factor); the ratios measured in the same run are the reliable
part (>= 8x faster than RQ's cron: met on both databases; within 2x of raw `enqueue_many` per job: met).
Profile of one 1%-due pass at N = 100,000 (1,000 fired), timed step by step on the same machine at load ~3:

| step (ms) | before (peewee models, RQ `create_job`) | after, SQLite | after, PostgreSQL |
|---|---|---|---|
| select due rows | 19-23 | 5-6 | 10-15 |
| decide (pure) | 6-7 | 5-7 | 6-8 |
| claim (compare-and-set) | 6 | 6-8 | 30-45 |
| ledger rows | 73-111 | 18-28 | 62-90 |
| send to RQ (1,000 unique enqueues) | 151-235 | 93-121, 60-70 with hiredis | 97-133 |
| mark sent | 9-17 | 4-7 | 31-51 |
| **pass** | **294-385** (SQLite) | **137-169** | **272-430** |

SQLite is at the target on a quieter machine (1.3x over it in the run above); what remains is Redis (~65 us per
job: RQ's unique-enqueue Lua script with the ~18-field job hash, one `EVALSHA` per job). PostgreSQL misses it by
1.7x to 2x: its per-row write cost on this machine is 50-100 us per row per statement (`EXPLAIN ANALYZE`: claim
13 ms, ledger insert 25 ms, mark-sent update 21 ms for 250 rows), because every ledger row is inserted and then
updated with an entry in every index (schema v2 dropped one redundant index and made two partial, ~20% fewer
index writes).

**What would close it.** (1) A separate, narrow outbox table (insert with the claim, delete after the send)
instead of updating the ledger row: removes the mark-sent update (30-50 ms per 1,000 on PostgreSQL) and its
index churn; the worker already stamps `enqueued_at` when it starts a run. (2) Overlap the Redis send of round
*k* with the database work of round *k+1* (a sender thread): the two halves are of similar size. (3) One Lua
call per chunk of runs (the same EXISTS/HSET/RPUSH per job inside) instead of one `EVALSHA` per run. (4) A
quiet machine: the same code measured 137-169 ms (SQLite) at load ~3.
"""
W = "1. Tick cost"
IDLE_PASSES = 200  # none-due passes per run (one pass is well under a millisecond: average a batch)


def sizes(cfg: BenchConfig) -> list[int]:
    return [1_000, 10_000] if cfg.quick else [1_000, 10_000, 100_000]


def idle_ms(site: BenchSite, passes: int) -> float:
    """Mean ms of a pass with nothing due (a minute before the slot)."""
    at = SLOT - timedelta(minutes=1)
    ms, results = timed(lambda: [run_pass(site.ctx, site.conn, now=at) for _ in range(passes)])
    assert all(r.fired == 0 and r.due == 0 for r in results), "a pass before the slot found something due"
    return float(ms / passes)


def due_ms(site: BenchSite, expected: int) -> float:
    site.reset()
    gc.collect()
    ms, result = timed(lambda: run_pass(site.ctx, site.conn, now=NOW))
    if result.fired != expected or result.send_error:
        raise RuntimeError(f"pass fired {result.fired} of {expected} due jobs ({result.send_error or 'no error'})")
    if site.queue_len() != expected:
        raise RuntimeError(f"RQ holds {site.queue_len()} jobs after the pass, expected {expected}")
    return float(ms)


def floor_per_job(conn: redis.Redis, n: int, runs: int) -> list[float]:
    """ms per job of raw ``enqueue_many`` of the N/100 jobs a 1% pass fires."""
    due, prefix = n // 100, f"hsbraw{n}x"
    per_job = []
    for _ in range(runs):
        clear_redis_prefix(conn, prefix)
        ms, count = timed(lambda: enqueue_many_floor(conn, prefix, due))
        assert count == due
        per_job.append(ms / due)
    clear_redis_prefix(conn, prefix)
    return per_job


def rq_cron(conn: redis.Redis, n: int, runs: int, idle_passes: int) -> tuple[list[float], list[float]]:
    """RQ's ``CronScheduler`` with N jobs: (ms per pass with none due, ms per pass with N/100 due)."""
    due = n // 100
    cron = RQCron(conn, f"hsbrq{n}x", n, due)
    passes = max(1, idle_passes // 20) if n >= 100_000 else max(1, idle_passes // 5)
    try:
        idle = []
        for _ in range(runs):
            ms, counts = timed(lambda: [cron.cron_pass() for _ in range(passes)])
            assert not any(counts), "RQ cron enqueued when nothing was due"
            idle.append(ms / passes)
        busy = []
        for _ in range(runs):
            cron.make_due()
            cron.clear_jobs()
            gc.collect()
            ms, count = timed(cron.cron_pass)
            if count != due:
                raise RuntimeError(f"RQ cron enqueued {count} of {due}")
            busy.append(ms)
    finally:
        cron.close()
    return idle, busy


def run(cfg: BenchConfig) -> list[Measurement]:
    out: list[Measurement] = []
    idle_passes = 50 if cfg.quick else IDLE_PASSES
    hs_due: dict[tuple[str, int], list[float]] = {}
    hs_idle: dict[tuple[str, int], list[float]] = {}
    for kind in ("sqlite", "postgres"):
        for n in sizes(cfg):
            due = n // 100
            site = make_site(cfg, f"w1{kind[:2]}{n}x", kind)
            try:
                populate(site, n, due)
                run_pass(site.ctx, site.conn, now=SLOT - timedelta(minutes=1))  # warm-up (connections, caches)
                idle = [idle_ms(site, idle_passes) for _ in range(cfg.runs)]
                site.reset()
                run_pass(site.ctx, site.conn, now=NOW)  # warm-up of the firing path
                busy = [due_ms(site, due) for _ in range(cfg.runs)]
            finally:
                site.close()
            hs_idle[(kind, n)], hs_due[(kind, n)] = idle, busy
    conn = make_conn(cfg)
    floor = {n: floor_per_job(conn, n, cfg.runs) for n in sizes(cfg)}
    rq = {n: rq_cron(conn, n, cfg.runs, idle_passes) for n in sizes(cfg)}

    top = max(sizes(cfg))
    for kind in ("sqlite", "postgres"):
        for n in sizes(cfg):
            idle = hs_idle[(kind, n)]
            target = "<= 1 ms, flat in N" if n == top else ""
            ok = (sorted(idle)[len(idle) // 2] <= 1.0) if n == top else None
            out.append(Measurement(W, f"hookscheduler {kind}, N={fmt_n(n)}, none due", "ms/pass", idle, target, ok,
                                   f"RQ cron {ratio(rq[n][0], idle):.0f}x slower"))
        small, big = hs_idle[(kind, min(sizes(cfg)))], hs_idle[(kind, top)]
        growth = [b / s for s, b in zip(small, big, strict=True)]
        out.append(Measurement(W, f"hookscheduler {kind}, none due, N={fmt_n(top)} vs N={fmt_n(min(sizes(cfg)))}",
                               "x (growth)", growth, "flat (<= 2x)", sorted(growth)[len(growth) // 2] <= 2.0,
                               f"RQ cron grows {ratio(rq[top][0], rq[min(sizes(cfg))][0]):.0f}x"))
        for n in sizes(cfg):
            due = n // 100
            busy = hs_due[(kind, n)]
            per_job = [v / due for v in busy]
            speedup = ratio(rq[n][1], busy)
            vs_floor = ratio(per_job, floor[n])
            if n == top:
                ok_pass = sorted(busy)[len(busy) // 2] <= 150 and speedup >= 8
                ok_job = sorted(per_job)[len(per_job) // 2] <= 0.15 and vs_floor <= 2
                t_pass, t_job = "<= 150 ms, >= 8x faster than RQ cron", "<= 0.15 ms, <= 2x enqueue_many"
            else:
                ok_pass = ok_job = None
                t_pass = t_job = ""
            out.append(Measurement(W, f"hookscheduler {kind}, N={fmt_n(n)}, 1% due ({fmt_n(due)} fired)", "ms/pass",
                                   busy, t_pass, ok_pass, f"{speedup:.1f}x faster than RQ cron"))
            out.append(Measurement(W, f"hookscheduler {kind}, N={fmt_n(n)}, 1% due", "ms/fired job", per_job,
                                   t_job, ok_job, f"{vs_floor:.2f}x raw enqueue_many per job"))
    for n in sizes(cfg):
        due = n // 100
        out.append(Measurement(W, f"RQ CronScheduler, N={fmt_n(n)}, none due", "ms/pass", rq[n][0]))
        out.append(Measurement(W, f"RQ CronScheduler, N={fmt_n(n)}, 1% due ({fmt_n(due)} fired)", "ms/pass",
                               rq[n][1], note=f"{ratio(rq[n][1], [1.0] * len(rq[n][1])) / due:.3f} ms/fired job"))
        out.append(Measurement(W, f"raw enqueue_many, {fmt_n(due)} jobs", "ms/job", floor[n]))
    return out


def make_conn(cfg: BenchConfig) -> redis.Redis:
    return redis.Redis.from_url(cfg.redis_url)
