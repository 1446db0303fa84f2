"""11. Many sites: one ``hookscheduler schedule`` process serving S sites x 20 jobs, and three sharing them.

A bench of S sites (``msbench``), each with its own SQLite file or its own PostgreSQL database, migrated by one
``migrate`` over all sites. Three phases, each with fresh ``schedule`` processes:

* **idle**: every job yearly. After the first round over all sites, the process's CPU time (``/proc``) over a
  window, and the rounds the loop made in it (changes of a site's last-tick key): CPU % of one core, and CPU
  per round. An idle process wakes once per ``scheduler_tick_interval`` (60 s by default; quick mode runs one
  round at 30 s, which does all the work of a 60 s round, and divides its CPU by 60 s); open file
  descriptors against the process's limit;
* **fire**: job ``fast`` of every site every 5 s (all sites share the slot, as Frappe sites share their hooks):
  delay = RQ ``enqueued_at`` minus the slot over every site's runs, and the file descriptors while firing;
* **shared**: the same with three ``schedule`` processes at once: duplicate runs (two ledger rows for one job
  and slot) must be 0, and every slot must be served.

A fire phase that counts no run at all still reports its rows (no delay measured, the target missed), so a size
too slow to serve a slot within the window shows as that, not as a missing row.

**The deployment case** (``postgres-minute`` in the plan, 1,000 sites by default), labelled as such and measured
against the same targets: one database per site on one PostgreSQL server, job ``fast`` of every site every
minute (Frappe's ``all`` / ``cron * * * * *``), with the setting docs/operations.md recommends for many
databases on one server (``scheduler_claim_ahead`` 60) and the default 60 s tick. One process, no idle phase;
the slots counted begin a minute after the first round (the first slot's claims began at start-up).

The latency targets are relative to RQ's ``CronScheduler`` measured at the start of the workload (workload 4's
runner): median at most its median, p99 at most 2x its max.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

import redis
from croniter import croniter

from hookscheduler.broker.connection import reply_text

from ._hsbench import cli_env, redis_cleanup
from .common import BenchConfig, Measurement
from .msbench import (
    MultiBench,
    fast_cron,
    fd_limit,
    make_multibench,
    open_fds,
    round_cpu,
    start_schedulers,
    stop,
    wait_first_round,
)
from .w4_latency import RQ_CRON_SCRIPT, WARMUP, _enqueued_at, _epoch, _p99, _stop, run_rq_cron

TITLE = "11. Many sites: one schedule process, 10 to 1,000 sites"
W = "11. Many sites"
DEFAULT_TICK = 60.0
#: ``$HOOKSCHEDULER_BENCH_W11``: the sizes to run, e.g. ``postgres:10,100,1000`` or ``sqlite:1000;postgres:1000``
#: (default: both databases at 10, 100 and 1,000 sites); ``$HOOKSCHEDULER_BENCH_W11_IDLE=1``: the idle phase only
#: (no fire, no sharing processes), to measure idle CPU in minutes rather than a quarter of an hour.
PLAN_ENV, IDLE_ENV = "HOOKSCHEDULER_BENCH_W11", "HOOKSCHEDULER_BENCH_W11_IDLE"
#: The deployment case's kind in the plan, and its setting (docs/operations.md, "Many PostgreSQL databases").
MINUTE, MINUTE_SETTINGS = "postgres-minute", {"scheduler_claim_ahead": 60}
KINDS = ("sqlite", "postgres", MINUTE)
#: The resolution of a process's CPU time in ``/proc`` (one clock tick), in ms.
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def plan_from(text: str | None, default: list[tuple[str, int, bool]]) -> list[tuple[str, int, bool]]:
    """The sizes ``$HOOKSCHEDULER_BENCH_W11`` asks for (three sharing processes below 1,000 sites, as by
    default); a bad value is a one-line error."""
    if not text:
        return default
    plan = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        kind, _, counts = part.partition(":")
        if kind not in KINDS or not counts:
            raise ValueError(f"{PLAN_ENV}={text!r}: expected e.g. 'postgres:10,100,1000;sqlite:1000;"
                             f"{MINUTE}:1000'")
        try:
            plan += [(kind, int(n), int(n) < 1000 and kind != MINUTE) for n in counts.split(",")]
        except ValueError:
            raise ValueError(f"{PLAN_ENV}={text!r}: site counts are whole numbers") from None
    return plan


def idle_phase(mb: MultiBench, conn: redis.Redis, tick: float, rounds: int) -> dict[str, float]:
    procs = start_schedulers(mb, conn, 1)
    pid = procs[0].pid
    try:
        started = time.time()
        first = wait_first_round(mb, conn, procs) - started
        cpu, wall = round_cpu(mb, conn, pid, rounds, timeout=(rounds + 2) * (tick + 3 * first) + 30)
        fds, limit = open_fds(pid), fd_limit(pid)
    finally:
        stop(procs)
    return {"cpu_pct": 100 * cpu / wall, "round_ms": 1000 * cpu / rounds, "rounds": rounds,
            "fds": fds, "limit": limit, "first_round_s": first}


def fire_phase(mb: MultiBench, conn: redis.Redis, processes: int, window: float,
               settle: float = 0.0) -> dict[str, Any]:
    """``settle``: seconds after the first round before the slots counted begin (the deployment case)."""
    procs = start_schedulers(mb, conn, processes)
    started = time.time()
    try:
        first = wait_first_round(mb, conn, procs)
        start = first + 0.2 + settle
        time.sleep(start - time.time() + window)
        fds = max(open_fds(p.pid) for p in procs)
        end = time.time()
    finally:
        stop(procs)
    last = end - mb.every  # slots counted: each had a whole period to be served before the stop
    slots = []
    it = croniter(fast_cron(mb.every), datetime.fromtimestamp(start, timezone.utc))
    while (s := it.get_next(float)) <= last:
        slots.append(s)
    delays: list[float] = []
    found = dups = 0
    for site in mb.sites:
        rows = mb.ledger(site, "SELECT rq_job_id, scheduled_for FROM scheduled_job_log WHERE rq_job_id IS NOT NULL "
                               "AND job_name LIKE '%fast'")
        counted = [(jid, _epoch(slot)) for jid, slot in rows if start < _epoch(slot) <= last]
        found += len(counted)
        dups += len(counted) - len({s for _, s in counted})
        enq = _enqueued_at(conn, [jid for jid, _ in counted])
        delays += [(enq[jid] - s) * 1000 for jid, s in counted if jid in enq]
    return {"delays": delays, "expected": len(slots) * len(mb.sites), "found": found, "dups": dups, "fds": fds,
            "first_round_s": first - started}


def rq_cron_same_slot(cfg: BenchConfig, conn: redis.Redis, jobs: int, every: int, seconds: float) -> dict[str, Any]:
    """RQ's ``CronScheduler`` (a subprocess, same Redis) serving ``jobs`` jobs all due at the same slot, every
    ``every`` seconds: the same work as a slot shared by ``jobs`` sites, for a like-for-like comparison.
    Delay = RQ ``enqueued_at`` minus the slot, over every job of every counted slot."""
    queue = f"hsbw11rq{jobs}x{int(time.time() * 1000)}"
    expr = fast_cron(every)
    ids: list[str] = []
    proc = subprocess.Popen([sys.executable, "-c", RQ_CRON_SCRIPT, cfg.redis_url, queue, *([expr] * jobs)],
                            env=cli_env(cfg.workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.time() + WARMUP + jobs / 500  # registering the jobs takes a moment
    time.sleep(start - time.time() + seconds)
    end = time.time()
    _stop(proc)
    try:
        ids = [reply_text(x) for x in conn.lrange(f"rq:queue:{queue}", 0, -1)]
        enq = _enqueued_at(conn, ids)
        last = end - every  # slots counted: each had a whole period to be served before the stop
        delays = []
        for at in enq.values():
            slot = croniter(expr, datetime.fromtimestamp(at, timezone.utc)).get_prev(float)
            if start < slot <= last:
                delays.append((at - slot) * 1000)
        slots = 0
        it = croniter(expr, datetime.fromtimestamp(start, timezone.utc))
        while it.get_next(float) <= last:
            slots += 1
        return {"delays": delays, "expected": slots * jobs}
    finally:
        for i in range(0, len(ids), 500):
            conn.delete(*[f"rq:job:{jid}" for jid in ids[i:i + 500]])
        redis_cleanup(conn, queue)


def one_size(cfg: BenchConfig, conn: redis.Redis, kind: str, count: int, share: bool) -> dict[str, Any]:
    # at 30 s every idle round does all of a 60 s round's work (the sweep is due every 30 s, the heartbeat 5 s)
    tick = cfg.pick(30, int(DEFAULT_TICK), 1)
    mb = make_multibench(cfg.workdir, cfg.redis_url, cfg.pg_dsn, kind, count, tick, every=cfg.pick(5, 5, 2))
    fire_window = cfg.pick(12.0, 30.0, 4.5)
    try:
        out: dict[str, Any] = {"migrate_s": mb.migrate(fast=False)}
        out["idle"] = idle_phase(mb, conn, tick, cfg.pick(1, 2, 1))
        if os.environ.get(IDLE_ENV) == "1":
            return out
        mb.migrate(fast=True)
        # a round over every site must fit in the window a few times over, or no slot would be counted: an idle
        # round skips most sites' databases (the change gate), the first round connects to every one
        fire_window = max(fire_window, 3 * max(out["idle"]["round_ms"] / 1000, out["idle"]["first_round_s"])
                          + 2 * mb.every)
        out["fire"] = fire_phase(mb, conn, 1, fire_window)
        out["rq_same"] = rq_cron_same_slot(cfg, conn, count, mb.every, fire_window)
        if share:
            out["shared"] = fire_phase(mb, conn, 3, fire_window)
        return out
    finally:
        mb.close(conn)


def minute_case(cfg: BenchConfig, conn: redis.Redis, count: int) -> dict[str, Any]:
    """The deployment case (module docstring): every minute, ``scheduler_claim_ahead`` 60, the default tick."""
    every = cfg.pick(60, 60, 2)
    mb = make_multibench(cfg.workdir, cfg.redis_url, cfg.pg_dsn, "postgres", count, int(DEFAULT_TICK), every=every,
                         common=MINUTE_SETTINGS)
    window = cfg.pick(3.3 * every, 5.3 * every, 4.5)
    try:
        out: dict[str, Any] = {"migrate_s": mb.migrate(fast=True)}
        out["fire"] = fire_phase(mb, conn, 1, window, settle=every)
        out["rq_same"] = rq_cron_same_slot(cfg, conn, count, every, cfg.pick(2.3 * every, window, 4.5))
        return out
    finally:
        mb.close(conn)


def run(cfg: BenchConfig) -> list[Measurement]:
    conn = redis.Redis.from_url(cfg.redis_url)
    # the reference's crons fire every 2-5 s: a window of 5 s holds a slot even when its process starts slowly
    # on a loaded machine (2 s once held none); with none at all its figures are NaN, never a crash
    rq = run_rq_cron(cfg, conn, cfg.pick(6.0, 20.0, 5.0))
    rq_med = statistics.median(rq.delays) if rq.delays else float("nan")
    rq_max = max(rq.delays) if rq.delays else float("nan")
    # PostgreSQL: one database per site; a process keeps at most scheduler_db_connections (20) connections
    # open, so 1,000 sites fit a server's max_connections (100, shared with other work) - three sharing
    # processes at 10 and 100 sites.
    plan = [("sqlite", n, True) for n in (10, 100, 1000)] + [("postgres", n, n < 1000) for n in (10, 100, 1000)]
    plan.append((MINUTE, 1000, False))
    plan = cfg.pick(plan, plan, [("sqlite", 2, True), ("postgres", 2, False)])
    plan = plan_from(os.environ.get(PLAN_ENV), plan)
    out: list[Measurement] = []
    growth: dict[str, dict[int, dict[str, Any]]] = {}
    for kind, count, share in plan:
        if kind == MINUTE:
            try:
                out += _minute_rows(count, minute_case(cfg, conn, count), rq_med, rq_max)
            except Exception as exc:
                out.append(Measurement(W, _minute_label(count), "ran to the end", [0.0], "yes", False,
                                       f"{type(exc).__name__}: {str(exc)[-300:]}"))
            continue
        try:
            res = one_size(cfg, conn, kind, count, share)
        except Exception as exc:  # one size failing keeps the other sizes' rows
            out.append(Measurement(W, f"{kind}, {count:,} sites x 20 jobs", "ran to the end", [0.0], "yes", False,
                                   f"{type(exc).__name__}: {str(exc)[-300:]}"))
            continue
        growth.setdefault(kind, {})[count] = res
        out += _rows(kind, count, res, rq_med, rq_max)
    for kind, sizes in growth.items():
        lo, hi = min(sizes), max(sizes)
        a, b = sizes[lo], sizes[hi]
        cost = (a["idle"]["round_ms"], b["idle"]["round_ms"])
        p99 = tuple(_p99(x.get("fire", {}).get("delays") or [0.0]) for x in (a, b))
        out.append(Measurement(W, f"{kind}: growth {lo} -> {hi} sites", "x (CPU per idle round)",
                               [cost[1] / max(cost[0], TICK_MS)],  # /proc counts CPU in clock ticks: 0 is < 1
                               note=f"CPU per idle round {cost[0]:.1f} -> {cost[1]:.1f} ms (resolution {TICK_MS:.0f} "
                                    f"ms, the smaller at least that); p99 fire delay "
                                    f"{p99[0]:.1f} -> {p99[1]:.1f} ms; fds {a['idle']['fds']} -> {b['idle']['fds']}"))
    out.append(Measurement(W, "A RQ CronScheduler (reference, same run)", "median delay, ms", [rq_med],
                           note=f"{len(rq.delays)} runs; max {rq_max:.2f} ms"))
    return out


def _rows(kind: str, count: int, res: dict[str, Any], rq_med: float, rq_max: float) -> list[Measurement]:
    case = f"{kind}, {count:,} sites x 20 jobs"
    idle, fire = res["idle"], res.get("fire", {"delays": [], "fds": 0})
    at_default = idle["round_ms"] / 1000 / DEFAULT_TICK * 100
    rows = [
        Measurement(W, case, "idle CPU, % of a core at a 60 s tick", [at_default], "< 1%", at_default < 1.0,
                    f"CPU {idle['round_ms']:.1f} ms per idle round ({idle['rounds']} rounds measured, "
                    f"{idle['cpu_pct']:.2f}% at the window's tick interval); first round {idle['first_round_s']:.1f} s;"
                    f" migrate of all sites {res['migrate_s']:.1f} s"),
        Measurement(W, case, "open fds (most of idle, firing)", [max(idle["fds"], fire["fds"])],
                    "< the process's limit",
                    max(idle["fds"], fire["fds"]) < idle["limit"],
                    f"idle {idle['fds']}, firing {fire['fds']}; limit {idle['limit']} (a common default is 1024)"),
    ]
    return rows + _fire_rows(case, count, res, rq_med, rq_max)


def _fire_rows(case: str, count: int, res: dict[str, Any], rq_med: float, rq_max: float) -> list[Measurement]:
    rows: list[Measurement] = []
    fire = res.get("fire")
    if fire is None:
        return rows
    d = fire["delays"]
    same = res.get("rq_same", {}).get("delays") or []
    if same:
        s_med, s_p99, s_max = statistics.median(same), _p99(same), max(same)
        rows.append(Measurement(W, f"RQ CronScheduler, {count:,} jobs due at the same slot", "fire delay median, ms",
                                [s_med], note=f"p99 {s_p99:.1f} ms, max {s_max:.1f} ms; {len(same)} runs of "
                                              f"{res['rq_same']['expected']} slots (same run, same work as the "
                                              f"{count:,}-site slot above)"))
    if not d:  # no run within the window: the slots were not served in time, which is a result too
        rows.append(Measurement(W, case, "fire delay median, ms", [float("nan")], "<= RQ cron's median", False,
                                f"no run of {fire['expected']} slots counted in the window ({fire['found']} found): "
                                f"a round over the sites did not serve a slot in time"))
    if d:
        med, p99 = statistics.median(d), _p99(d)
        fair = (f"; vs RQ cron with {count:,} jobs at the slot: median {med / statistics.median(same):.2g}x, p99 "
                f"{p99 / max(same):.2g}x its max" if same else "")
        rows += [
            Measurement(W, case, "fire delay median, ms", [med], "<= RQ cron's median", med <= rq_med,
                        f"{fire['found']} runs of {fire['expected']} slots; RQ cron (6 jobs) median {rq_med:.2f} ms"
                        + fair),
            Measurement(W, case, "fire delay p99, ms", [p99], "<= 2x RQ cron's max", p99 <= 2 * rq_max,
                        f"max {max(d):.1f} ms; RQ cron (6 jobs) max {rq_max:.2f} ms" + fair),
        ]
    if "shared" in res and "idle" in res:
        sh = res["shared"]
        ok = sh["dups"] == 0 and sh["found"] == sh["expected"]
        rows.append(Measurement(W, case, "3 processes: duplicates", [sh["dups"]], "0, every slot served", ok,
                                f"{sh['found']} runs of {sh['expected']} slots; median delay "
                                f"{statistics.median(sh['delays']) if sh['delays'] else float('nan'):.1f} ms"))
    return rows


def _minute_label(count: int) -> str:
    return f"{MINUTE}: postgres, {count:,} sites x 20 jobs, every minute, scheduler_claim_ahead 60 (deployment case)"


def _minute_rows(count: int, res: dict[str, Any], rq_med: float, rq_max: float) -> list[Measurement]:
    case = _minute_label(count)
    fire = res["fire"]
    rows = [Measurement(W, case, "runs counted / expected", [fire["found"]], "every slot served, 0 duplicates",
                        fire["found"] == fire["expected"] and fire["dups"] == 0,
                        f"{fire['found']} runs of {fire['expected']} slots, {fire['dups']} duplicates; first round "
                        f"{fire['first_round_s']:.1f} s; migrate {res['migrate_s']:.1f} s; fds firing {fire['fds']}")]
    return rows + _fire_rows(case, count, res, rq_med, rq_max)


ANALYSIS = """
**Reading it.** One row group per database and site count. "idle CPU" is the CPU one idle round over all
sites costs, divided by the default 60 s tick (an idle process wakes once per tick). The fire delays are
over every site's runs of the shared 5-second slot, so they show how long one round over all sites takes to
reach the last site. The growth rows compare the smallest and the largest site count of each database.

**What changed this session, and what it bought.** Idle: a cycle costs one statement per site and one
Redis round trip for all of them (the clock-excursion check rides on it), the config files are read again
only when their `stat` changed (and a re-read lists the sites folder once, not once per site: 1,000 sites
made a million `stat` calls), and a cycle woken for a slot steps only the sites that have something due or
whose tick interval has passed. 1,000 SQLite sites went from 11 s of CPU per idle round (18% of a core) to
about 70 ms (0.12%), **under the 1% target**. Descriptors: a SQLite site holds three (file, WAL, shared
memory); the loop keeps at most a third of its descriptor limit (less a reserve) open, least recently used
closed first. PostgreSQL: a process keeps at most `scheduler_db_connections` (20) connections open, so 1,000
sites (one database each) fit a server's `max_connections` of 100, and `migrate` over them holds one at a
time. Several processes: 0 duplicates and every slot served at every size.

**Idle PostgreSQL sites (the change gate).** A process holds at most `scheduler_db_connections` (20)
connections, so an idle round over 1,000 PostgreSQL sites reconnected 980 of them to run each one's probe:
1,350 ms of CPU per round (2.25% of a core at a 60 s tick; idle phase only, same machine, 2026-12-07 05:40).
Now one statement per cycle and server reads every database's count of rows written (`pg_stat_database`), and
a site whose count has not moved since its last probe skips it and needs no connection
(`hookscheduler/schedule/gate.py`): 40 ms per round at 1,000 sites (0.07%), 10 ms at 100 (was 140), at the
10 ms resolution of `/proc`'s CPU time at 10 sites. Each site is still probed for real every 8-10 minutes
(about 1,000 reconnections per 10 minutes at 1,000 sites: 0.2% of a core on average, not in a single
measured round), and always after a write to its database.

**Fire latency across many sites.** Every site has its own database, so a slot shared by all sites costs one
claim transaction per site. What the loop now does about it: the sites with a slot due are stepped first;
their committed runs are sent to Redis together, one round trip for a batch of 1, 2, 4, ... up to 32 sites
(the first due site's runs go at once), instead of one round trip per site, which was most of a site's time
on this loaded machine (an in-process cycle over 100 SQLite sites sharing a slot went from 11.8 to 3-4 ms per
site). What it does not do: run several sites' claims at once inside one process (a thread pool); several
`schedule` processes do share a slot's sites (the "3 processes" row). Since then the loop claims the slot ahead
(`hookscheduler/schedule/ahead.py`): every site's claim is committed before the slot, the window growing with the
measured pass cost times the sites sharing it (at most `scheduler_claim_ahead`, 2 s), and the held runs of every
site go in one round trip at the slot. Quick runs, PostgreSQL, one process: at b845402, 10 sites median 10.9 ms,
p99 72.8 ms, 100 sites median 13.0 ms (was 960 ms), p99 1,149 ms (the first slot, claimed with a per-pass cost
guessed at 5 ms before any was measured: part of its sites were claimed at the slot); at ab3785a (guess 20 ms,
each process claiming in its own turn): 10 sites median and p99 2.47 ms (RQ cron with 10 jobs at the slot, same
run: 8.17, max 10.9 ms), 100 sites median and p99 0.741 ms (RQ cron with 100 jobs: 39.5, max 78.2 ms). Three
processes over 100 sites did not improve: median 781 ms before, 743 ms at b845402, 1,252 ms at ab3785a (10
sites: 0.1 ms). The processes that did not hold a site's runs woke at its slot for them and re-sent them; since
ea278a9 they wake a second after it (`OWED_GRACE`). At ea278a9: one process, 10 sites median 0.204 ms, p99
0.212 ms, 100 sites 0.593 ms (RQ cron with 100 jobs: 42.6, max 82.2 ms); three processes over 100 sites
1,024 ms. That was the measurement's start, not the steady state: the window began 0.2 s after the sites' last
ticks all existed, and those came from the fastest of the three processes, while the other two were still in
their first cycle (each steps and connects to every site, about 2 s for 100 PostgreSQL sites here; a site is
claimed ahead only once its process has stepped it). The window now begins once every process has also written
its heartbeat, which it does at the end of its own first cycle (`msbench.wait_first_round`). With that, at
7e31ec6 (lead's run, quick): three processes over 100 PostgreSQL sites, median 0.3 ms, 0 duplicates, every slot
served; one process, 100 sites, median and p99 0.496 ms (RQ cron, 6 jobs: median 2.30 ms, max 4.11 ms).
A start of three processes over 100 PostgreSQL sites still costs about 2 s before every site is claimed ahead.
The issue's target compares with RQ cron serving
6 jobs, a slot of a few jobs; the row "RQ CronScheduler, N jobs due at the same slot" is the like-for-like
reference (one job per site, all due at the same slot, same run), and the notes give both ratios. PostgreSQL
past the connection budget pays a reconnection per site and slot (a fresh backend: connect, first statements
planned again), tens of milliseconds each on this machine.

**PostgreSQL at 1,000 sites (2026-12-07, 12:07-12:30 UTC, quick, one process, load average 2.4-3.7 on the
2-core VM shared with other runs; `/work/coord/bench/w11pg-before` at 6784a6c, `w11pg-after` with the loop change
5d05530 and the lazy prepares ea2f490).** Where a slot's time went, measured in-process over 20 PostgreSQL sites
whose connections were closed before each visit (3 rounds, medians): the claim ahead cost 40 ms a site (connect
8, the probe's PREPARE and EXECUTE 7.5, the due rows 2.3, the claim and ledger rows 2.6, the commit's WAL flush
4.7, the rest Python), and the release then reopened every site again to mark its runs sent: 20 ms more (connect
11, the mark 10). And every tick interval each site was stepped once more, a third connection. So 1,000 sites cost
about 60 s of connections per slot; before the change the 5-second row counted no run at all in its window
(`w11pg-before`: no fire rows). Now a site past the budget is visited once per slot: the release marks sent only
the sites still connected and the others at their next visit, before its pass (`Scheduler._mark_owed`; a run
is in Redis at its slot either way, and a pass of another process meanwhile re-sends it, which RQ stores once);
a claim ahead counts as the site's step (its last tick, a due sweep completed), so the tick interval adds no
visit; a statement is prepared at its second use on a connection, not its first. In-process: the release 0.2 ms a
site (was 20), one visit 28-30 ms (connect 7, the first statement on the fresh backend 6, whichever it is, the
probe 5, the due rows 2, the claim 2, the commit 2).

What that gives, and the arithmetic of what it cannot: **a slot every 5 s shared by 1,000 PostgreSQL sites is
beyond one process holding 20 connections on this machine**, whatever the loop does: 980 sites reconnect each
slot, connecting alone takes 980 x 7 ms = 7 s, a whole visit 980 x 28 ms = 27 s, against 5 s. Measured
(`w11pg-after`, a 98 s window): 2,000 runs of the 19,000 slots-and-sites counted, median 23.6 s, p99 41.9 s
(target missed; RQ cron with 1,000 jobs at the same slot, same run: median 598 ms, max 1,804 ms). Several
`schedule` processes share the sites (not measured at 1,000), as would a larger `scheduler_db_connections` within
the server's `max_connections`. **The deployment case** (the row "postgres-minute": the same 1,000 databases,
the job every minute as Frappe's `all` / `cron * * * * *`, `scheduler_claim_ahead` 60 as docs/operations.md now
recommends, the default 60 s tick; the slots counted begin a minute after the first round): every slot served, 0
duplicates, 2,000 runs of 2,000; fire delay median 13.7 ms, p99 16.4 ms. **Still missed against the issue's
target** (RQ cron with 6 jobs, same run: median 1.96 ms, max 5.35 ms; so at most 1.96 and 10.7 ms); against RQ
cron serving 1,000 jobs at the same slot (median 422 ms, max 752 ms) it is 0.03x. Those 14 ms are no longer
PostgreSQL's: every site's claim is committed tens of seconds before the slot, and the release writes 1,000 RQ
jobs in one round trip, whose payloads `send.send_runs` builds in Python before the pipeline leaves, then four
script calls of 250 runs, each stamping its runs as it starts (the payloads are built at the claim since
1404ff1: below). The first round after a start takes 30-60 s at 1,000
PostgreSQL sites (it steps and connects to every site), so a restart misses the slots of its first minute.


**The run of 13:22** (quick, commit f637761, load ~1, AMD EPYC machine). Idle: under 1% of a core at every size
(1,000 SQLite sites 0.47%, 1,000 PostgreSQL sites 0.10%); descriptors far below the limit; three processes: 0
duplicates, every slot served. Fire latency against RQ cron serving 6 jobs (median 1.90 ms, max 6.60 ms): met at
10 sites on both databases and at 100 PostgreSQL sites (median 0.60 ms, p99 0.73 ms); missed at 100 SQLite sites
(median 3.97 ms), 1,000 SQLite sites (37.4 / 38.0 ms), 1,000 PostgreSQL sites at a 5 s cadence (13.3 s / 23.5 s)
and the deployment case (median 4.48 ms, p99 4.51 ms). Those figures read RQ's `enqueued_at`, which was then a time
Python took *before* building the payloads of the release: they understated when Redis had the jobs, by the build
(19-32 ms for 1,000 runs, measured in the scheduler process at 14:31).

**The release path (commits 1404ff1, a51b2d4).** A slot 1,000 SQLite sites share, timed inside the scheduler
process: the cycle began at the slot, then 14-24 ms went to comparing each held site's database URL with its
config's (the SQLite path built again for every site), 19-32 ms to building the payloads (pickling and
compressing each run's data), and the work done just before the slot (every site's sweep due at once) ran up to
24 ms past it; the window was sized from the pass alone, not the whole visit, so in one slot 170 sites were still
unclaimed at the slot. Now: RQ's `enqueued_at` is the enqueue script's own `TIME` (the ledger's stamp, to the
microsecond); the payloads are built while the runs are held; a site's URL is cached; the work before a slot
stops at it; the window covers the whole visit. What is left at 1,000 sites, in process: 5-7 ms from the slot to
the first script call (joining 1,000 prebuilt payloads, redis-py packing the call), then Redis itself writing
1,000 RQ job hashes (EXISTS, a 25-field HSET and an RPUSH each), about 3-4 ms per call of 250 runs, each call's
runs stamped as it begins. **So a median at or under RQ cron's 6-job median (2-2.4 ms) is beyond any scheduler that
writes 1,000 RQ jobs into this Redis at one instant**: the median run waits behind some 500 others' writes. RQ's
own cron, doing that work, is the row "RQ CronScheduler, 1,000 jobs due at the same slot" (median 296 ms).

**Redis's own time per run, measured (2026-12-07 17:27, Intel Xeon host, `INFO commandstats`).** 1,000 runs
prebuilt and sent by the enqueue script in 4 calls: 7.6-8.2 us of server time per run (7.6-8.2 ms in all,
10.3-10.6 ms of wall for the send); the same 18-field hashes written with plain EXISTS / HSET / RPUSH in one
pipeline: 3.2-3.4 us per run of command time, but 32-47 ms of wall (3,000 commands to parse, dispatch and answer).
So the script is the cheaper way to put 1,000 jobs into Redis, and even with nothing else in the way (no Python
between the slot and the send) the median run of 1,000 waits about 4 ms behind the writes of the 500 before it,
more than RQ cron's 6-job median. What the release could still save is its part before the first call (about
3 ms here: finding each held run's database, grouping, joining the prebuilt payloads, redis-py packing 550 KB),
by packing the whole call before the slot; and pushing each queue's ids with one RPUSH per call instead of one
per run would take about 1 us a run off the script. Neither brings the median under RQ cron's, so neither is done.

**The run recorded above** (quick, 2026-12-07 15:13, commit 7a22a10, load ~0.5, AMD EPYC machine), with the
honest stamp. Idle under 1% of a core at every size (1,000 SQLite sites 0.23%, 1,000 PostgreSQL sites 0.10%);
descriptors far below the limit; three processes: 0 duplicates, every slot served, at every size run. Fire
latency against RQ cron serving 6 jobs (median 2.35 ms, max 4.42 ms): **met at 10 and 100 sites on both
databases** (SQLite 0.71 / 1.76 ms median, PostgreSQL 0.77 / 1.44 ms; p99 at most 1.8 ms; 100 SQLite sites was a
miss at 3.97 ms before); missed at 1,000 SQLite sites (median 10.3 ms, p99 15.8 ms: 0.035x RQ cron with 1,000 jobs
at the slot, 296 ms), 1,000 PostgreSQL sites at a 5 s cadence (9.3 s / 17.3 s, 3,000 of 9,000 slots served in the
window: the round over 980 reconnecting sites is longer than the cadence, as above) and the deployment case (every
minute, `scheduler_claim_ahead` 60: every slot served, 0 duplicates, median 14.0 ms, p99 21.1 ms; RQ cron with
1,000 jobs at the slot, same run: 234 ms). The deployment case, timed in process the same way (15:45-15:47, three
slots): the release began at the slot, its first call left 6-7 ms after it, and the runs were stamped 9.7-21.4 ms
after it, 4 ms a call."""
