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
from hookscheduler.hooks_loader import load_job_specs
from hookscheduler.migrate import migrate_site
from hookscheduler.redis_conn import redis_for
from hookscheduler.tick import run_pass
ctx = open_site()
db = ctx.database(create=True, require_schema=False)
migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.clock, now=datetime(2026, 1, 5, 10, 7))
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
read. In the latest run (quiet machine, 2,000 runs per run, 10,000 per worker and database in all) SQLite meets
0.7x (0.73, over RQ's own timestamps 0.73) and PostgreSQL misses by 2% (0.685, range 0.674-0.735; 0.68 over
RQ's timestamps). Before this session's change PostgreSQL measured 0.57 (quick run, same machine) and 0.60 on
the previous machine under load.

**Where a scheduled run's time goes.** RQ's timestamps split each job into the time inside the work horse
(`started_at` to `ended_at`) and the gap to the next job's start (dequeue, fork, the horse's exit, the
parent noticing it). Medians in ms, 200-300 runs, quiet machine:

| | plain RQ | hookscheduler, PostgreSQL, before | after | hookscheduler, SQLite |
|---|---|---|---|---|
| inside the horse | 0.6 | 8.4 | 3.4-3.9 | 3.6-4.0 |
| gap between jobs | 10-11 | 12.8 | 12-14 | 11.7-11.9 |

Inside the horse, before, timed with marks in `run_scheduled_job` (PostgreSQL): the start write 6.8 ms
(opening a connection: a new server backend, whose first statements load the catalog entries of the ledger's
tables and indexes), finish 0.7, the job's own transaction 0.3, start mark and events 0.9.

**What changed.** (1) While a horse runs, the worker opens and warms (`EXPLAIN` of the start and finish
statements) one PostgreSQL connection for the next horse, which adopts it at its first connect
(`hookscheduler/pgspare.py`: only a direct child of the maker adopts it, once; the parent detaches its copy of
the socket through `/dev/null`, so nothing it does reaches the horse's session; a stale spare costs the
ledger write's existing retry). The start write in the horse went from 6.8 ms to 1.7 ms. (2) The start write
is one round trip (one statement in an implicit transaction with `SET LOCAL lock_timeout`), not a request and
a `COMMIT`.

**Why PostgreSQL still misses by 2%.** The new backend is still made per job, now by the parent, in parallel
with the horse: connecting takes 2.7 ms and the warm-up 2.2 ms of the parent's time, and on two cores the
backend's start-up competes with the horse and its own backend for CPU; the gap between jobs grows by 1-2 ms
over SQLite's. SQLite's extra gap over plain RQ (about 1 ms) is the larger worker process (46 MB RSS against
37 MB: the apps' job modules, peewee and psycopg2 are loaded before the fork so that horses do not import).

**What would close it.** (1) An operator's choice: a connection pooler such as PgBouncer in front of
PostgreSQL makes each connect cheap and keeps server backends warm. (2) Reuse the horse's backend for the
next horse (a pool of one across forks): the horse would report through shared memory that it left the
connection idle, and the parent would `DISCARD ALL` and hand it on; plain-TCP connections only (a TLS
session's state lives in the process that last used it). Not done: it needs the parent to trust the horse's
report of the session's state, which a killed horse cannot give.
"""
