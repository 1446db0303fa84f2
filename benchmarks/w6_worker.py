"""6. Worker overhead: scheduled no-op runs through ``hookscheduler worker --burst`` vs a plain ``rq worker --burst``.

The hookscheduler side is a real scheduled workload: N job types (one app, a no-op method) migrated and fired
by one tick pass, so Redis holds N runs and the ledger N ``queued`` rows (N = 2,000 per run in full mode, see
:func:`run`). ``hookscheduler
worker --burst --queue default`` then runs them all, each through the runner: ``queued -> started``
compare-and-set, ``last_execution``, the job's transaction, ``complete``, started/finished events.

The floor is RQ's own worker: ``rq worker --burst`` on a queue holding the same number of jobs of the same
no-op function, written with ``Queue.enqueue_many``, on the same Redis. Both workers fork a work horse per
job (RQ's default) and run quiet. Throughput is jobs / wall time of the worker process (start-up included, as
a user sees it); the span from the first job's start to the last job's end (RQ's own timestamps) is in the
note. The two workers alternate within each run, so that machine noise hits both alike, and the ratio is
taken per run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from rq import Queue

from benchmarks._hsbench import cli_env, ledger_rows, make_bench, pg_database, redis_cleanup
from benchmarks.common import BenchConfig, Measurement

TITLE = "6. Worker overhead"
TARGET_RATIO = 0.7
TASKS = "def noop():\n    return None\n"
SETUP = """
import sys
from datetime import datetime
from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.broker.connection import redis_for
from hookscheduler.schedule.claim import run_pass
ctx = open_site()
db = ctx.database(create=True, require_schema=False)
migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=datetime(2026, 1, 5, 10, 7))
result = run_pass(ctx, redis_for(ctx.site), now=datetime(2026, 1, 5, 11, 0, 1), batch=100000)
print(result.fired)
"""


def _hooks(n: int) -> str:
    entries = [{"method": "wapp.tasks.noop", "name": f"noop_{i}"} for i in range(n)]
    return f"scheduler_events = {json.dumps({'hourly': entries})}\n"


def _span(conn: redis.Redis, job_ids: list[str]) -> tuple[float, int]:
    """Seconds from the first job's start to the last job's end (RQ's timestamps), and how many finished."""
    starts, ends, finished = [], [], 0
    with conn.pipeline(transaction=False) as pipe:
        for jid in job_ids:
            pipe.hmget(f"rq:job:{jid}", "started_at", "ended_at", "status")
        for started, ended, status in pipe.execute():
            if started and ended:
                starts.append(datetime.fromisoformat(started.decode().rstrip("Z")))
                ends.append(datetime.fromisoformat(ended.decode().rstrip("Z")))
            finished += status == b"finished"
    return (max(ends) - min(starts)).total_seconds() if starts else float("nan"), finished


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return elapsed


def _ledger(bench: Path, db_url: str | None) -> dict[str, int]:
    sql = "SELECT status, count(*) FROM scheduled_job_log GROUP BY status"
    return {status: count for status, count in ledger_rows(bench, db_url, sql)}


def one_run(cfg: BenchConfig, n: int, db_url: str | None) -> dict[str, Any]:
    conn = redis.Redis.from_url(cfg.redis_url)
    bench, bench_id = make_bench(cfg.workdir, "wrk", cfg.redis_url, {"wapp": _hooks(n)}, tasks=TASKS)
    env = cli_env(bench, db_url)
    try:
        # hookscheduler: n scheduled runs, queued by a real tick pass
        fired = int(subprocess.run([sys.executable, "-c", SETUP], env=env, capture_output=True, text=True,
                                   check=True, timeout=600).stdout.split()[-1])
        assert fired == n, (fired, n)
        hs_queue = Queue(f"{bench_id}:default", connection=conn)
        hs_ids = hs_queue.get_job_ids()
        assert len(hs_ids) == n
        # the floor: the same number of no-op jobs for a plain RQ worker
        plain = Queue(f"{bench_id}:plain", connection=conn)
        with conn.pipeline() as pipe:
            plain.enqueue_many([Queue.prepare_data("wapp.tasks.noop", result_ttl=600) for _ in range(n)],
                               pipeline=pipe)
            pipe.execute()
        plain_ids = plain.get_job_ids()
        rq_env = dict(env, PYTHONPATH=f"{bench / 'apps'}:{env['PYTHONPATH']}")
        hs_wall = _timed([sys.executable, "-m", "hookscheduler", "worker", "--burst", "--queue", "default",
                          "--quiet"], env)
        rq_wall = _timed([sys.executable, "-m", "rq.cli", "worker", "--burst", "--quiet", "--url", cfg.redis_url,
                          plain.name], rq_env)
        hs_span, hs_done = _span(conn, hs_ids)
        rq_span, rq_done = _span(conn, plain_ids)
        ledger = _ledger(bench, db_url)
        return {"hs": n / hs_wall, "rq": n / rq_wall, "hs_span": n / hs_span, "rq_span": n / rq_span,
                "ok": hs_done == n and rq_done == n and ledger == {"complete": n}, "ledger": ledger}
    finally:
        redis_cleanup(conn, bench_id)


def run(cfg: BenchConfig) -> list[Measurement]:
    # The issue asks for 10,000 runs. A forking worker does 50-90 jobs/s on a quiet 2-core machine (8-40 on a busy
    # one), so 10,000 runs x 2 workers x 2 databases x 5 runs would take about an hour: full mode runs 2,000 per
    # run, 10,000 per worker and database over the 5 runs. The per-job cost is what is compared; it does not
    # depend on N (the queue and the ledger are read by id).
    n = 200 if cfg.quick else 2000
    out: list[Measurement] = []
    for kind in ("sqlite", "postgres"):
        results = []
        for _ in range(cfg.runs):
            if kind == "sqlite":
                results.append(one_run(cfg, n, None))
            else:
                with pg_database(cfg.pg_dsn, "wrk") as url:
                    results.append(one_run(cfg, n, url))
        case = f"{kind}, {n:,} no-op runs"
        ratios = [r["hs"] / r["rq"] for r in results]
        span_ratio = statistics.median(r["hs_span"] / r["rq_span"] for r in results)
        checked = all(r["ok"] for r in results)
        ledger = results[-1]["ledger"]
        out += [
            Measurement(TITLE, case, "hookscheduler worker, jobs/s", [r["hs"] for r in results],
                        note=f"every run recorded complete in the ledger: {'yes' if checked else f'NO {ledger}'}"),
            Measurement(TITLE, case, "plain rq worker, jobs/s", [r["rq"] for r in results]),
            Measurement(TITLE, case, "ratio (hookscheduler / rq)", ratios, f">= {TARGET_RATIO:g}x",
                        statistics.median(ratios) >= TARGET_RATIO and checked,
                        f"first start to last end (RQ timestamps): ratio {span_ratio:.2f}"),
        ]
    return out


ANALYSIS = """
**Reading it.** The ratio is taken within each run, with the two workers alternating, and is the figure to
read. The run recorded above is from a second machine (2026-12-07 19:00, Intel Xeon, commit 6ff6c33, 5 runs,
with the worker's check of a site's config files before each job, two `stat` calls): SQLite 0.73 (0.70-0.75),
PostgreSQL 0.70 (0.64-0.71), both met; the same run without that check (18:16, cd5f29d) read 0.74 and 0.70, and
a 3-run pass at 18:06 SQLite 0.699 (a miss by 0.001) and PostgreSQL 0.707: the margin is within the noise.
An earlier long run (quiet machine, 2,000 runs per run, 10,000 per worker and database in all)
meets 0.7x on both databases, SQLite only just: SQLite 0.70 (0.68-0.78), PostgreSQL 0.74 (0.65-0.80); the same
over RQ's own timestamps. The margins are within run-to-run noise: the run before it (before the start write
took the job's row first) measured SQLite 0.78 and PostgreSQL 0.71, and earlier runs of this session 0.685 and
0.723 on PostgreSQL. Before this session: 0.57 on PostgreSQL (quick run, this machine) and 0.60 on the previous
machine, under load.

**Where a scheduled run's time goes.** RQ's timestamps split each job into the time inside the work horse
(`started_at` to `ended_at`) and the gap to the next job's start (dequeue, fork, the horse's exit, the
parent noticing it). Medians in ms, 200-300 runs, quiet machine:

| | plain RQ | PostgreSQL, before | PostgreSQL, after | SQLite, before | SQLite, after |
|---|---|---|---|---|---|
| inside the horse | 0.6 | 8.4 | 2.6-3.1 | 3.6-4.4 | 2.9-3.0 |
| gap between jobs | 10-11.5 | 12.8 | 10.4-12 | 11.7-13.5 | 12.6-13 |

Inside the horse, before (marks in `run_scheduled_job`): on PostgreSQL the start write took 6.8 ms, because it
opened a connection (a new server backend, whose first statements load the catalog entries of the ledger's
tables and indexes); on SQLite the connect took 2.3 ms, because with no other connection open each horse
rebuilt the WAL index from the whole WAL file. The rest: finish 0.2-0.7, the job's own transaction 0.1-0.3,
start mark and events 0.9.

**What changed.**

1. PostgreSQL (`hookscheduler/worker/warm.py`): the worker keeps one warm connection and lends it to each horse,
   which adopts it at its first connect. After its job the horse reports, through a byte of memory shared
   with its parent, whether it left the connection open, idle and not TLS; if so the worker resets it
   (`DISCARD ALL`) and lends it again, else it drops it without a byte on its socket and makes a new one
   while the next horse runs. One server backend then serves every job. An earlier version made a new warm
   connection for each horse while the previous one ran: 0.685x, because making a backend per job still cost
   5 ms of the worker's time and competed with the horse for the two cores.
2. PostgreSQL: the start write is one round trip (one statement in an implicit transaction with
   `SET LOCAL lock_timeout`), not a request and a `COMMIT`.
3. SQLite: the worker holds one idle connection to each site's database, so the WAL index survives from one
   horse to the next.

**What remains.** About 2 ms per job inside the horse (start and finish writes, the job's transaction, the
start mark and two events) and 1-1.5 ms of gap: the worker process is larger than RQ's (46 MB RSS against
37 MB: the apps' job modules, peewee and psycopg2 are loaded before the fork so that horses do not import),
so its forks cost more. A pooler (PgBouncer) changes nothing here now that the backend is reused.

**Second pass (2026-12-07, after the quick run above measured PostgreSQL 0.62x and SQLite 0.73x).** A profile
of one worker over 200 PostgreSQL runs (pyinstrument in every work horse, on a machine at load 5-11, so in
shares rather than milliseconds): RQ's own work in the horse was 58% of its time, and a quarter of the horse's
time was its new Redis connection (connect, `CLIENT SETINFO`, a health-check `PING` before the first command),
which a plain RQ horse pays too; hookscheduler's part (`run_scheduled_job`) was 38%: the start write 26% of it,
the outcome 18%, the two events 17%, the start mark 14%, the job's `BEGIN` and `COMMIT` 12%, the connect 8%.
Beside it, RQ imported `hookscheduler.runner` (the stored entry point) afresh in every horse, 4% of the horse.
A round trip to the local server costs 0.02 ms; a commit that wrote costs 0.34 ms median and 1.8 ms at the
90th percentile on this machine's disk (the WAL's fsync), so the two fsyncs of a run (start, outcome) are
most of what PostgreSQL adds over SQLite, whose commits do not wait for the disk (`synchronous = normal`).

What changed: the job's own transaction sends its `BEGIN` with its first statement, so a run that touches no
table sends no `BEGIN` and no `COMMIT` (two round trips, each a wait for the server process on a busy host);
a horse that sent nothing on its lent connection but the run's one-trip writes hands it back without the
`DISCARD ALL` between two runs (one round trip fewer on the path from one job to the next); the worker
imports `hookscheduler.runner` before it forks; a burst worker's exit no longer waits out its command
listener's one-second wake-up (it did in most exits of a worker that found its queues empty; the 200-job runs
here were not affected). A quick run after it (03:36 UTC, load 1.6-3.2, the machine shared): SQLite 0.775
(0.61-0.78; RQ timestamps 0.77), PostgreSQL 0.754 (0.70 and 0.75 in the two runs whose plain RQ worker did not
wait 60 s at its exit, RQ timestamps 0.68): better than the 0.62 and 0.73 above, short of 0.8 on both.

Levers not taken, largest first: the start write could commit without waiting for its fsync
(`synchronous_commit = off` for that one transaction: visible at once, so the compare-and-set is unchanged,
and made durable by the run's own outcome commit, which flushes the WAL up to itself) - left alone because a
crash of the server before that flush (at most about 0.6 s) would take a committed `started` back; lending each
horse a Redis connection made while the previous horse ran, as the PostgreSQL one is (RQ's cost, but a quarter
of the horse); the start mark and the `started` event in one script (a round trip fewer, but the event would go
out before the ledger says started).
"""
