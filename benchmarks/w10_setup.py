"""10. Setup: ``hookscheduler migrate`` of N jobs as a process, against the peers registering the same N jobs.

hookscheduler: workload 5's bench (apps of 100 events each across the sections and varied crons; the loader
imports and checks every method), N/100 apps, a cold ``migrate`` into an empty SQLite file / fresh PostgreSQL
database, timed as the wall time of the command (interpreter start and imports included, as a deploy sees it).

The peers (``proc_register``), each a fresh process registering N cron jobs (workload 1's crons) into empty
storage, timed the same way: A RQ's ``CronScheduler`` (in-memory registration, saved to Redis by
``register_birth``), B rq-scheduler (``cron`` per job: two round trips each), C APScheduler 3 (``add_job`` per
job into a SQLAlchemy store on SQLite / PostgreSQL, and into its Redis store), D the Frappe emulation
(``sync_jobs`` given the cron strings: an existence ``SELECT`` and an ``INSERT`` per job, no app code read),
Dh the same sync as Frappe 14/15 runs it on the same apps hookscheduler migrates (a bench of its own, as
cold: every ``hooks.py`` imported, every method resolved by importing its module, then the ``SELECT`` and
``INSERT`` per job). The target: at most 2x the fastest peer.

At 100,000 jobs (full mode) only A (the fastest library at 10,000 in every run recorded), D-sqlite, Dh-sqlite
and Dh-postgres run: B and C were 3-100x slower than A, and D-postgres 10x slower than D-sqlite, at 10,000 jobs,
and each registers job by job (linear in N: C-sqlite alone would take minutes a run); their rows say so.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

from ._hsbench import cli_env, pg_database, redis_cleanup
from .common import BenchConfig, Measurement
from .peers import crons_for
from .tickbench import fmt_n
from .w5_migrate import make_apps, timed_migrate

TITLE = "10. Setup: migrate vs peers' registration"
W = "10. Setup"
EVENTS = 100  # per app
PEERS = ("A", "B", "C-sqlite", "C-postgres", "C-redis", "D-sqlite", "D-postgres", "Dh-sqlite", "Dh-postgres")
#: Peers that read the apps' hooks and resolve every method, as hookscheduler does (the like-for-like ones).
SAME_WORK = ("Dh-sqlite", "Dh-postgres")
#: The peers run at 100,000 jobs (see the module docstring).
AT_100K = ("A", "D-sqlite", "Dh-sqlite", "Dh-postgres")


def hs_migrate(cfg: BenchConfig, n: int, db_url: str | None) -> float:
    bench, bench_id = make_apps(cfg.workdir, cfg.redis_url, n // EVENTS, EVENTS)
    try:
        seconds, plan = timed_migrate(bench, db_url)
        if len(plan["added"]) != n + 1:  # and the built-in maintenance job
            raise RuntimeError(f"migrate added {len(plan['added'])} jobs, expected {n + 1}")
        return seconds
    finally:
        redis_cleanup(redis.Redis.from_url(cfg.redis_url), bench_id)


def peer_register(cfg: BenchConfig, peer: str, crons_file: Path, run: int, n: int) -> tuple[float, float]:
    """(wall seconds of the process, seconds it spent after its imports)."""
    prefix = f"hsbreg{os.getpid()}{peer.replace('-', '')[:4]}{n}r{run}x"
    conn = redis.Redis.from_url(cfg.redis_url)
    extra: list[str] = []
    bench_id = ""
    if peer.startswith("Dh-"):  # the same apps as hookscheduler's migrate, in a bench of their own (cold)
        bench, bench_id = make_apps(cfg.workdir, cfg.redis_url, n // EVENTS, EVENTS)
        extra = [str(bench / "apps")]

    def timed(where: str) -> tuple[float, float]:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.proc_register", peer, str(crons_file),
                               cfg.redis_url, prefix, where, *extra], env=cli_env(cfg.workdir),
                              capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{peer} registration failed: {proc.stderr.strip()[-800:]}")
        return wall, float(proc.stdout.split()[-1])

    try:
        if peer.endswith("postgres"):
            with pg_database(cfg.pg_dsn, f"reg{peer[0].lower()}") as url:
                return timed(url)
        if peer.endswith("sqlite"):
            return timed(str(cfg.workdir / f"{prefix}.sqlite3"))
        return timed("")
    finally:
        redis_cleanup(conn, prefix)
        conn.zrem("rq:cron_schedulers", f"{prefix}_cron")
        if bench_id:
            redis_cleanup(conn, bench_id)


def run(cfg: BenchConfig) -> list[Measurement]:
    sizes = cfg.pick([1_000, 10_000], [1_000, 10_000, 100_000], [EVENTS])
    out: list[Measurement] = []
    for n in sizes:
        crons_file = cfg.workdir / f"w10crons{n}.json"
        crons_file.write_text(json.dumps(crons_for(n)))
        hs: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        peers = list(AT_100K if n >= 100_000 else PEERS)
        walls: dict[str, list[float]] = {p: [] for p in peers}
        inner: dict[str, list[float]] = {p: [] for p in peers}
        for r in range(cfg.runs):  # interleaved: machine noise hits every scheduler alike
            hs["sqlite"].append(hs_migrate(cfg, n, None))
            with pg_database(cfg.pg_dsn, "w10") as url:
                hs["postgres"].append(hs_migrate(cfg, n, url))
            for peer in peers:
                wall, work = peer_register(cfg, peer, crons_file, r, n)
                walls[peer].append(wall)
                inner[peer].append(work)
        med = {p: statistics.median(walls[p]) for p in peers}
        fastest = min(peers, key=med.__getitem__)
        # D is an emulation (bare SQL, no framework): the fastest real library is reported beside it, and the
        # fastest peer doing the same work (reading the apps' hooks, resolving every method)
        library = min((p for p in peers if not p.startswith("D")), key=med.__getitem__)
        same = min(SAME_WORK, key=med.__getitem__)
        for kind, values in hs.items():
            mine = statistics.median(values)
            out.append(Measurement(W, f"hookscheduler migrate, {kind}, N={fmt_n(n)} ({n // EVENTS} apps)", "s",
                                   values, "<= 2x the fastest peer, same run", mine <= 2 * med[fastest],
                                   f"{mine / med[fastest]:.1f}x the fastest peer ({fastest}, {med[fastest]:.3f} s); "
                                   f"{mine / med[same]:.1f}x the fastest doing the same work ({same}, "
                                   f"{med[same]:.3f} s); {mine / med[library]:.1f}x the fastest library "
                                   f"({library}, {med[library]:.3f} s)"))
        for peer in PEERS:
            if peer not in walls:
                out.append(Measurement(W, f"{peer}, N={fmt_n(n)}", "s", [],
                                       note="not run at this size (see the workload's docstring)"))
                continue
            out.append(Measurement(W, f"{peer}, N={fmt_n(n)}", "s", walls[peer],
                                   note=f"{statistics.median(inner[peer]):.3f} s after its imports"))
    return out


ANALYSIS = """
**Reading it.** Every figure is the wall time of a fresh process, as a deploy runs it: interpreter start and
imports included, the same Python and virtualenv for every row. The note of each peer row gives its time after
its imports. The apps are cold for hookscheduler and Dh alike (a new bench each run: every `hooks.py` and
`tasks.py` compiled or read for the first time).

**Is D the right yardstick?** D reads the cron strings from a JSON file: it loads no `hooks.py` and resolves no
method. Frappe never does that: `bench migrate` imports every installed app's `hooks.py`
(`frappe.get_hooks`), and since Frappe 14 `insert_single_event` calls `frappe.get_attr(event)` on every event
before its existence `SELECT` (an import of the method's module; an unresolvable one is skipped with a
warning; Frappe 13 did not). So D is a floor no Frappe reaches, and Dh is the like-for-like peer: Frappe
14/15's sync on the very apps hookscheduler migrates, minus the framework (no `import frappe`, no document
validation: real Frappe is slower than Dh). The target is still computed against the fastest peer, D
included, as the issue words it; the note gives the ratio to Dh beside it. hookscheduler refuses the whole
migrate on one bad method where Frappe skips it with a warning; that costs nothing extra here.

**What migrate does now, per job**, is what Dh does or less: each app's `hooks.py` imported once, in the import
probe's forked children (two of them from 16 apps on a multi-core host, every other app each), which send the
events back by marshal together with what each method module's source plainly defines (a scan of its top-level
`def`s instead of compiling and running it; anything the scan cannot vouch for is imported by the parent, so a
typo is still refused); the parent checks app k while the children compile the next ones; bare entries without
the options machinery; new rows in one `executemany` (SQLite) or one `COPY` (PostgreSQL); no import of rq,
redis, the web or the metrics, and no psycopg2 (nor OpenSSL) for a SQLite bench.

**Added on 2026-12-07 (commits 623094c, d777ac7, 65e68c5).** A new, empty database gets the current schema from
one script (one request with the version's row on PostgreSQL) instead of every version's steps, which created
three indexes only to drop them, a table twice, read the catalog in between and had peewee build each statement;
the catalogs are compared with the steps' on both databases (`tests/integration/test_schema_fresh.py`). In
process, `ensure_schema` on a new database: SQLite 6.6 -> 2.3 ms (best of 7), PostgreSQL 70 -> 62 ms (the
server's own DDL work, ~30 ms for the 13 statements and the TOAST tables they bring, is the rest, and a new
database's first catalog reads). A cron is parsed by croniter once per process (it was four times: `expand`, the
check's construction, and both again for the first slot). The command line imports with the cyclic collector off
(about 40 collections of objects that all stay): best-of-11 CPU of the migrate command's imports 101 -> 93 ms.
Then (commit 65e68c5) a PostgreSQL site's database is reached while the probe's children compile the hooks
(psycopg2's import and the connection, 30-45 ms here, overlap them instead of following them; an unreachable
server is still reported after the hooks' verdict, and SQLite files are still opened only after it). Together
some 10-20 ms of a 1,000-job migrate (more on PostgreSQL when a core is free for the overlap): interleaved A/B
runs against main on this host (load 3-4, other suites running) could not separate the two at the process level
(CPU medians 324 / 320 ms SQLite, 276 / 254 ms PostgreSQL, noise of the same size). Tried and dropped: writing a
new SQLite file in rollback-journal mode and turning it to WAL at the end (each page written once instead of to
the WAL and again by the checkpoint at close: 1,827 -> 643 writes at 10,000 jobs, but 8 -> 13 fsyncs, no gain in
wall or CPU), and a larger page cache for the insert (no spill at 10,000 jobs to save).

**Where the 2x is not met, and why.** At 1,000 jobs the work is a few tens of milliseconds; the process is
Python's start and the imports: about 85 ms of import time (sum of self times, best of 9) for peewee and the
stdlib modules it imports (~31 ms: `inspect`, `uuid` and `platform`, `socket`, `calendar`, `decimal` are only
peewee's), click (~6-8 ms), the store (~11 ms, 6 of them the seven frozen dataclasses and the protocol of
`store/base.py`), croniter and dateutil (~10 ms, `subprocess` and `random` among them), the configuration
(~6 ms) and `site` (~13 ms, of which the venv's editable-install finder ~10 ms, which every row pays), against
~30 ms for D's whole start-up (Python and sqlite3). Reaching 2x D there would take a `migrate` without peewee,
click and croniter (a second database layer beside the store's, and a cron parser of our own): not done. At
10,000 and 100,000 jobs the critical path is the probe children: per app about 0.6 ms compiling hooks.py, 0.7 ms
scanning tasks.py and ~1 ms creating `__pycache__/` and two `.pyc` files (Python's own cache, which the next
process that imports the app would otherwise write; Dh creates as many and more), two children on two cores
that the parent and, here, other suites share. PostgreSQL rows are judged against D-sqlite too; a cold
PostgreSQL migrate adds psycopg2's import, a connection and the server's DDL on a new database, and it is faster
than D-postgres at every size. The full run of 2026-12-07 12:16 (commit a080d3b, 5 runs, load 3.3 -> 4.0 -> 3.0,
other suites running): SQLite 0.25 s / 0.55 s / 2.94 s at 1,000 / 10,000 / 100,000 jobs = 3.4x / 2.9x / 2.3x
D-sqlite (0.074 / 0.194 / 1.30 s), 2.2x / 1.0x / 0.6x Dh-sqlite; PostgreSQL 0.34 s / 0.68 s / 3.36 s = 4.5x /
3.5x / 2.6x D-sqlite. So every size still misses 2x D-sqlite (by the fixed import cost at 1,000 jobs, by the
children's compiling and file creation above it); against Dh, the peer doing the same work, SQLite is at or under
1x from 10,000 jobs. The previous full run, 06:03 (commit 322f6cb, load 2.3 -> 1.4): SQLite 0.26 / 0.49 / 2.36 s
= 3.4x / 3.6x / 2.9x D-sqlite, PostgreSQL 0.40 / 0.59 / 2.40 s = 5.2x / 4.3x / 2.9x; the two runs' absolute
figures differ with the host's load more than with the commits. A quick run at 12:38 (commit 65e68c5, 3 runs,
load 3.2 -> 1.2): SQLite 0.224 / 0.528 s = 2.3x / 2.7x D-sqlite (0.099 / 0.196 s; D's own runs spread from
0.066 s at 1,000), PostgreSQL 0.403 / 0.669 s = 4.1x / 3.4x.

**On a second machine** (Intel Xeon, 2 cores, load under 1; quick runs, 1,000 and 10,000 jobs; the full run
above stays the table's): at 17:03 (commit 6841b54, 5 runs) SQLite 0.154 / 0.291 s = 3.3x / 2.6x D-sqlite
(0.047 / 0.114 s), PostgreSQL 0.188 / 0.333 s = 4.0x / 2.9x; at 18:08 (commit cd5f29d, 3 runs) SQLite 0.145 /
0.281 s = 3.4x / 2.6x (D-sqlite 0.043 / 0.109 s), PostgreSQL 0.181 / 0.323 s = 4.3x / 3.0x; against Dh-sqlite,
the peer doing the same work, 2.2x and 0.9-1.0x. The same picture as on the AMD host: missed against D, whose
whole process is a JSON read; a fresh Python with this venv's `site` costs 29 ms of D's 43-47 ms here.
"""
