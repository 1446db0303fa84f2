"""9. Fire latency against the peers, and what the ledger's ``enqueued_at`` records.

Workload 4's set-up (6 jobs due every 2, 3 and 5 s; a real ``hookscheduler schedule`` process; the delay is
the RQ job's ``enqueued_at`` minus the slot), on SQLite and PostgreSQL in every mode, interleaved run by run
with A (RQ 3's ``CronScheduler``) and C (APScheduler 3's ``BlockingScheduler``, SQLAlchemy store on SQLite,
its job function enqueueing to RQ), each a subprocess serving the same expressions on the same Redis. The
targets are relative: hookscheduler's median at most A's median and its p99 at most 2x A's max, in the same
run. B (rq-scheduler) is left out: it polls every ``interval`` seconds (60 by default) with whole-second scores,
so its delay is the polling phase, up to the interval, not a scheduling cost.

**The moment Redis accepted the job.** Separate runs (not counted in the delays above) record, with Redis
``MONITOR``, the server's own time at which it executed each job's enqueue (hookscheduler's enqueue script;
RQ's push of the job id): for hookscheduler on both databases and for A, the delay to that moment (the same
clock for every scheduler, whereas each stamps ``enqueued_at`` at a different point before its pipeline), and
for hookscheduler the ledger row's ``enqueued_at`` and the RQ job's own ``enqueued_at`` against it.
``MONITOR`` slows Redis for every client while it runs, hence the separate runs.

``MONITOR`` stamps a command when the server hands it to its monitors, before running it, so even a stamp taken
by a script's first statement is later than that. The watched runs measure that lag beside the enqueues: all
through the run, a script reading ``TIME`` first, as long a command as the enqueue commands seen; the ledger's
stamp is judged against the accept plus that lag (medians of the same run).
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import redis
from croniter import croniter

from ._hsbench import ledger_rows, pg_database
from .common import BenchConfig, Measurement
from .w4_latency import (
    CRONS,
    RQ_CRON_SCRIPT,
    WARMUP,
    Sample,
    _enqueued_at,
    _epoch,
    _p99,
    run_hookscheduler,
    run_rq_cron,
)

TITLE = "9. Fire latency vs peers"
W = "9. Latency"

APS_SCRIPT = """
import sys
from datetime import timezone
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from benchmarks.peers import aps_jobstore
url, queue, kind, store_url = sys.argv[1:5]
sched = BlockingScheduler(timezone=timezone.utc, jobstores={"default": aps_jobstore(kind, store_url, queue)},
                          job_defaults={"misfire_grace_time": 30, "coalesce": False, "max_instances": 10})
for i, expr in enumerate(sys.argv[5:]):
    f = expr.split()
    trigger = CronTrigger(minute=f[0], hour=f[1], day=f[2], month=f[3], day_of_week=f[4], second=f[5],
                          timezone=timezone.utc)
    sched.add_job("benchmarks.peers:enqueue_rq", trigger, args=(url, queue), id=f"job{i}", replace_existing=True)
sched.start()
"""
_JOB = re.compile(r"rq:job:(\S+)")
_CALIB = re.compile(r"sched-hscalib:(\d+)")
#: Calibration script: the server's ``TIME`` as its first statement, as hookscheduler's enqueue script reads it.
_TIME_SCRIPT = "local t = redis.call('TIME') return t"


class Monitor(threading.Thread):
    """Redis ``MONITOR``: the server time at which each job naming ``needle`` was accepted: hookscheduler's
    enqueue script (``EVALSHA`` with the job's key), or RQ's push of the job id onto the queue (``RPUSH``)."""

    def __init__(self, url: str, needle: str) -> None:
        super().__init__(daemon=True)
        self.url, self.needle = url, needle
        self.conn = redis.Redis.from_url(url)
        self.accepted: dict[str, float] = {}
        #: the length of each enqueue command as MONITOR printed it (the calibration sends commands this long)
        self.sizes: list[int] = []
        #: calibration scripts (:func:`monitor_lag`): their MONITOR stamp by number
        self.calib: dict[int, float] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with self.conn.monitor() as mon:  # type: ignore[no-untyped-call]
            self.ready.set()
            while not self.stop.is_set():
                cmd: dict[str, Any] = mon.next_command()
                text = str(cmd.get("command", ""))
                if self.needle not in text:
                    continue
                verb = text.split(" ", 1)[0].upper()
                if (calib := _CALIB.search(text)) is not None:
                    self.calib[int(calib.group(1))] = float(cmd["time"])
                    continue
                # hookscheduler's script names every job of the call in its keys
                jobs = _JOB.findall(text) if verb == "EVALSHA" else [text.split()[-1]] if verb == "RPUSH" else []
                if jobs and verb == "EVALSHA":
                    self.sizes.append(len(text))
                for job in jobs:
                    if job not in self.accepted:
                        self.accepted[job] = float(cmd["time"])

    def calibrate(self, every: float = 0.05) -> None:
        """Start measuring MONITOR's own lag in the background, all through the watched run (:meth:`lag`): every
        ``every`` seconds a script whose first statement reads the server's ``TIME`` (as the enqueue script's
        does), sent as a command as long as the median enqueue command seen so far (MONITOR formats a command
        for its clients before the server runs it, so a longer command is stamped earlier before it runs)."""
        self._server: dict[int, float] = {}
        self._calibrating = threading.Event()
        conn = redis.Redis.from_url(self.url)
        script = conn.register_script(_TIME_SCRIPT)
        script(keys=["hscalib-warm"])  # loads it: the measured calls are one EVALSHA each (not watched: no needle)

        def loop() -> None:
            i = 0
            while not self._calibrating.wait(every):
                size = int(statistics.median(self.sizes)) if self.sizes else 200
                key = f"sched-hscalib:{i}"
                sec, usec = script(keys=[key], args=["x" * max(0, size - len(key) - 60)])
                self._server[i] = int(sec) + int(usec) / 1e6
                i += 1

        self._calibrator = threading.Thread(target=loop, daemon=True)
        self._calibrator.start()

    def lag(self) -> list[float]:
        """MONITOR's own lag, in ms, per calibration script of the run: the script's ``TIME`` minus its
        command's MONITOR stamp; what a stamp taken by a script's first statement is at best after that
        command's MONITOR stamp. Stops the calibration."""
        self._calibrating.set()
        self._calibrator.join(timeout=5)
        deadline = time.monotonic() + 5
        while len(self.calib) < len(self._server) and time.monotonic() < deadline:
            time.sleep(0.01)
        return [(self._server[i] - at) * 1000 for i, at in self.calib.items() if i in self._server]

    def finish(self) -> None:
        self.stop.set()
        redis.Redis.from_url(self.url).ping()  # MONITOR sees it: the thread wakes and sees the stop
        self.join(timeout=5)


def accept_check(cfg: BenchConfig, conn: redis.Redis, db_url: str | None, seconds: float) -> dict[str, list[float]]:
    """One ``schedule`` run watched by ``MONITOR``: per run, (ledger ``enqueued_at`` - Redis accept), (RQ's
    ``enqueued_at`` - Redis accept) and (Redis accept - slot), in ms."""
    found: dict[str, list[float]] = {"ledger": [], "rq": [], "accept": []}
    monitors: list[Monitor] = []

    def inspect(bench: Path, bench_id: str) -> None:
        mon = monitors[0]
        found["lag"] = mon.lag()
        mon.finish()
        rows = ledger_rows(bench, db_url, "SELECT rq_job_id, enqueued_at, scheduled_for FROM scheduled_job_log "
                                          "WHERE rq_job_id IS NOT NULL AND enqueued_at IS NOT NULL")
        rq_at = _enqueued_at(conn, [r[0] for r in rows])
        first = min((_epoch(r[2]) for r in rows), default=0.0) + WARMUP  # the process's warm-up: not counted
        for jid, ledger_at, slot in rows:
            if _epoch(slot) < first:
                continue
            if jid in mon.accepted and jid in rq_at:
                found["ledger"].append((_epoch(ledger_at) - mon.accepted[jid]) * 1000)
                found["rq"].append((rq_at[jid] - mon.accepted[jid]) * 1000)
                found["accept"].append((mon.accepted[jid] - _epoch(slot)) * 1000)

    mon = Monitor(cfg.redis_url, "sched-")
    monitors.append(mon)
    mon.start()
    mon.ready.wait(5)
    mon.calibrate()
    run_hookscheduler(cfg, conn, seconds, db_url, inspect=inspect)
    return found


def rq_accept(cfg: BenchConfig, conn: redis.Redis, seconds: float) -> list[float]:
    """One RQ ``CronScheduler`` run watched by ``MONITOR``: (Redis accept - slot) of each job, in ms."""
    queue = f"hsblatrqm{int(time.time() * 1000)}"
    mon = Monitor(cfg.redis_url, f"rq:queue:{queue}")
    mon.start()
    mon.ready.wait(5)
    try:
        run_rq_cron(cfg, conn, seconds, RQ_CRON_SCRIPT, queue=queue)
    finally:
        mon.finish()
    exprs = sorted(set(CRONS.values()))
    first = min(mon.accepted.values(), default=0.0) + WARMUP
    out = []
    for at in mon.accepted.values():
        when = datetime.fromtimestamp(at, timezone.utc) + timedelta(microseconds=1)
        slot = max(croniter(e, when).get_prev(float) for e in exprs)
        if slot >= first:
            out.append((at - slot) * 1000)
    return out


def _accept_rows(accept: dict[str, list[float]], found: dict[str, dict[str, list[float]]]) -> list[Measurement]:
    """Delays measured to the moment Redis accepted each job (``MONITOR``), the same clock for every scheduler."""
    out = []
    rq = accept["rq"]
    for name, values in [("hookscheduler sqlite", found["sqlite"]["accept"]),
                         ("hookscheduler postgres", found["postgres"]["accept"]), ("A RQ CronScheduler", rq)]:
        if not values:
            out.append(Measurement(W, f"{name}: Redis accept - slot (MONITOR run)", "ms", [], "", False, "no runs"))
            continue
        med, p99 = statistics.median(values), _p99(values)
        ref = f"; A's median {statistics.median(rq):.2f} ms, max {max(rq):.2f} ms" if rq and name[0] != "A" else ""
        out += [Measurement(W, f"{name}: Redis accept - slot (MONITOR run)", "median, ms", [med],
                            note=f"{len(values)} runs{ref}"),
                Measurement(W, f"{name}: Redis accept - slot (MONITOR run)", "p99, ms", [p99],
                            note=f"max {max(values):.2f} ms")]
    return out


def _rows(case: str, samples: list[Sample], rq: list[Sample] | None) -> list[Measurement]:
    med = [statistics.median(s.delays) for s in samples]
    p99 = [s.summary()[1] for s in samples]
    top = [max(s.delays) for s in samples]
    fired, expected = sum(len(s.delays) for s in samples), sum(s.expected for s in samples)
    if rq is None:
        return [Measurement(W, case, "median delay, ms", med, note=f"{fired} runs of {expected} slots"),
                Measurement(W, case, "p99 delay, ms", p99), Measurement(W, case, "max delay, ms", top)]
    rq_med = statistics.median(statistics.median(s.delays) for s in rq)
    rq_max = statistics.median(max(s.delays) for s in rq)
    return [
        Measurement(W, case, "median delay, ms", med, "<= A's median, same run", statistics.median(med) <= rq_med,
                    f"{fired} runs of {expected} slots; A's median {rq_med:.2f} ms"),
        Measurement(W, case, "p99 delay, ms", p99, "<= 2x A's max, same run", statistics.median(p99) <= 2 * rq_max,
                    f"A's max {rq_max:.2f} ms (median over runs)"),
        Measurement(W, case, "max delay, ms", top),
    ]


def run(cfg: BenchConfig) -> list[Measurement]:
    seconds = cfg.pick(max(6.0, 20.0 / cfg.runs), max(6.0, 150.0 / cfg.runs), 2.0)
    conn = redis.Redis.from_url(cfg.redis_url)
    hs: dict[str, list[Sample]] = {"sqlite": [], "postgres": []}
    rq: list[Sample] = []
    aps: list[Sample] = []
    for r in range(cfg.runs):  # interleaved, so that machine noise hits every scheduler alike
        hs["sqlite"].append(run_hookscheduler(cfg, conn, seconds, None))
        with pg_database(cfg.pg_dsn, "lat9") as url:
            hs["postgres"].append(run_hookscheduler(cfg, conn, seconds, url))
        rq.append(run_rq_cron(cfg, conn, seconds, RQ_CRON_SCRIPT))
        store = f"sqlite:///{cfg.workdir / f'w9aps{r}.sqlite3'}"
        aps.append(run_rq_cron(cfg, conn, seconds, APS_SCRIPT, ("sqlite", store)))
    window = f"{len(CRONS)} jobs every 2-5 s, {seconds:.0f} s x {cfg.runs} runs"
    out: list[Measurement] = []
    for kind in ("sqlite", "postgres"):
        out += _rows(f"hookscheduler schedule, {kind}, {window}", hs[kind], rq)
    out += _rows(f"A RQ CronScheduler, {window}", rq, None)
    out += _rows(f"C APScheduler 3 (SQLAlchemy store on SQLite), {window}", aps, None)
    # one longer run each: MONITOR slows Redis, so it is not interleaved (smoke: long enough for a 5 s cron to fire)
    watched = cfg.pick(15.0, 30.0, 6.0)
    checks = {"sqlite": accept_check(cfg, conn, None, watched)}
    with pg_database(cfg.pg_dsn, "acc9") as url:
        checks["postgres"] = accept_check(cfg, conn, url, watched)
    out += _accept_rows({"rq": rq_accept(cfg, conn, watched)}, checks)
    for kind, found in checks.items():
        ledger, rqs = found["ledger"], found["rq"]
        if not ledger:
            out.append(Measurement(W, f"{kind}: ledger enqueued_at vs Redis accept", "ms", [], "", False,
                                   "MONITOR saw no enqueue"))
            continue
        out.append(Measurement(
            W, f"{kind}: ledger enqueued_at - Redis accept (MONITOR), per run", "ms", ledger,
            note=f"{len(ledger)} runs; RQ job's enqueued_at - accept: median {statistics.median(rqs):.2f} ms, "
                 f"min {min(rqs):.2f} ms (RQ's stamp is the enqueue script's TIME, as the ledger's)"))
        lag = found.get("lag") or []
        if not lag:
            out.append(Measurement(W, f"{kind}: MONITOR's own lag", "ms", [], "", False, "no calibration reply"))
            continue
        out.append(Measurement(W, f"{kind}: MONITOR's own lag (a script's first TIME - its MONITOR stamp)", "ms",
                               lag, note=f"{len(lag)} scripts all through the run, commands as long as the "
                                         "median enqueue command; same monitor"))
        gap = statistics.median(ledger) - statistics.median(lag)
        out.append(Measurement(
            W, f"{kind}: ledger enqueued_at - Redis accept, less MONITOR's lag (medians)", "ms", [gap],
            "= 0 (within 0.1 ms)", abs(gap) <= 0.1,
            f"ledger - MONITOR stamp median {statistics.median(ledger):.3f} ms; MONITOR's lag median "
            f"{statistics.median(lag):.3f} ms"))
    return out


ANALYSIS = """
**Reading it.** Delays are the RQ job's `enqueued_at` minus the slot, for hookscheduler (real `schedule`
process), A and C, interleaved run by run. A and C stamp `enqueued_at` inside RQ's `enqueue` call, so their
figure covers the whole scheduling path; hookscheduler's RQ job `enqueued_at` is the enqueue script's own `TIME`
(since 1404ff1; before, a time Python took as it built the job hashes, just before the send's pipeline, 0.8 ms
early in the run of 13:14), the ledger's stamp: the "Redis accept - slot" rows put every scheduler on the clock of
the Redis server. The last two rows compare the ledger's `enqueued_at` with the time Redis executed each
run's enqueue script: positive means the ledger's time is later.

**Targets (this session's runs).** On a quieter run SQLite met both and PostgreSQL met the p99 and missed the
median (about 5 ms against A's 2.6 ms, 1.9x). The run after this session's pass changes, at load ~5: SQLite
median 4.82 ms against A's 4.65 (a miss by 4%), p99 met; PostgreSQL median 11.9 ms (2.6x A's) and p99 17.0
against 2x A's max 16.7 (both missed). Between the slot and the
send a PostgreSQL pass is five round trips (probe; BEGIN; select with lock; claim and ledger rows, one
statement since this session; COMMIT), and the commit waits for the WAL to reach the disk (an fsync, 0.4-2.5 ms
on this VM, measured with single-row inserts at `synchronous_commit` on and off); SQLite's statements are
0.05-0.13 ms and its commit does not fsync in WAL mode. Done this session: claim and ledger insert as one
statement, the values as array literals rather than arrays psycopg2 adapts value by value, one script call for
the runs of a pass, and no `SCRIPT EXISTS` round trip before it; earlier: the active-run check folded into the
due-row selection, the pass's statements prepared once per connection, a cron string's validity cached per
process. What would close the rest on PostgreSQL: committing the claim without waiting for the flush
(`synchronous_commit = off` for the pass's transaction) would remove the largest piece, but a server crash
could then lose a claim whose run was already sent, and the slot would be decided again (at worst as part of a
later catch-up run): a durability trade for the maintainers to decide, not done; skipping the probe when the
loop wakes for a slot it already knows is due (the loop's side).

**Claim ahead, release at the slot (since).** The loop now commits a slot's claim and ledger rows before the
slot (at least 0.1 s ahead, more when many sites share it; `hookscheduler/schedule/ahead.py`) and only sends
at the slot, so the commit and its fsync left the path: no durability traded, the claim is committed as before,
just earlier (I10 in docs/exactly-once.md keeps the held runs from being sent early by anyone). Quick runs,
same session: before (c50afe6, load ~2-4) SQLite median 3.22 ms and PostgreSQL 4.90 ms against A's 3.10 ms
(1.04x and 1.58x, both missed); after (b845402, load ~2-3) SQLite 0.106 ms and PostgreSQL 0.105 ms against A's 1.92 ms
(0.06x and 0.05x), p99 0.146 and 0.128 ms against 2x A's max 10.5 ms. On Redis's clock (the MONITOR run, one
run each): SQLite 1.22 ms and PostgreSQL 2.24 ms after the slot against A's 2.93 ms (median), PostgreSQL's p99
16.3 ms against A's max 10.3 ms (one run of 26 slots: its slowest).

**The ledger's `enqueued_at`** is the moment Redis accepted the run: the enqueue script reads the server's
`TIME` as it begins, one call per up to 250 runs, and that is what each run's ledger row records (kept inside
the local round-trip window, so a Redis host with a wrong clock cannot stamp a run before its claim). Earlier
this session the send's pipeline ended with one `TIME` after the last enqueue script (median 0.18-0.26 ms after
each run's accept); before that the ledger stamped a local time taken after the reply (0.9-1.1 ms late).
What is left is below the script: `MONITOR` stamps a command when Redis feeds it to its monitors, before
running it, and formatting the command for them takes part of the gap; a script that only reads `TIME` runs
0.1 ms after its `MONITOR` stamp on this machine at load 5-7 (measured with a script that reads `TIME` at its
start and end). No later stamp than the script's first statement is taken.

**The instrument's own lag, measured (since d9c9ae6).** The watched runs now measure that lag beside the
enqueues, all through the run: a script whose first statement reads `TIME`, sent as a command as long as the
enqueue commands (`MONITOR` formats a command for its clients before the server runs it), 20 a second. The
ledger's stamp is judged against the accept plus that lag, medians of the same run. Quick run of 2026-12-07
13:14 (commit f637761, load ~1): ledger - `MONITOR` stamp median 0.332 ms (SQLite) and 0.334 ms (PostgreSQL),
the lag of a bare `TIME` script 0.358 and 0.340 ms: -0.026 and -0.006 ms, **within 0.1 ms on both**. The same
run met every latency target with claim ahead: median 0.224 ms (SQLite) and 0.122 ms (PostgreSQL) against A's
2.50 ms, p99 0.275 and 0.135 ms against 2x A's max (8.63 ms); on Redis's clock 1.0 and 0.95 ms after the slot
against A's 3.0 ms.

**The run recorded above** (quick, 2026-12-07 15:10, commit 7a22a10, load ~0.7): the RQ job's `enqueued_at` is
now the enqueue script's `TIME` (it was a Python stamp 0.8 ms before the accept): RQ's stamp - the `MONITOR`
accept median 0.21 ms (SQLite) and 0.17 ms (PostgreSQL), the same as the ledger's, which is within 0.011 and
-0.019 ms of the accept once `MONITOR`'s own lag is taken off (target 0.1 ms, met). With that honest stamp, fire
delay median 0.58 ms (SQLite) and 0.67 ms (PostgreSQL) against A's 2.20 ms, p99 0.67 and 0.74 ms against 2x A's
max (5.22 ms): **met on both**; on Redis's clock 0.59 and 0.65 ms after the slot against A's 2.67 ms.

**The run recorded above is from a second machine** (quick, 2026-12-07 18:07, Intel Xeon, load ~0.6, commit
cd5f29d, the session's last code): fire delay median 0.69 ms (SQLite) and 0.66 ms (PostgreSQL) against A's
2.72 ms, p99 0.79 and 0.95 ms against 2x A's max (12.4 ms); the ledger's stamp within 0.009 and 0.004 ms of the
accept once `MONITOR`'s lag (0.13 ms here) is taken off: **every target met on both databases**.
"""
