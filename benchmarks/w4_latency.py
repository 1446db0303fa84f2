"""4. Fire latency: how late a slot reaches RQ when ``hookscheduler schedule`` runs as users run it.

A real ``hookscheduler schedule`` process (a subprocess, SQLite and PostgreSQL) serves a bench whose jobs are
due every 2, 3 and 5 seconds (croniter's trailing seconds field: ``* * * * * */2``). For every run it
enqueued, the delay is ``enqueued_at - slot``: ``enqueued_at`` is the RQ job's own timestamp (microseconds,
stamped by the scheduler just before the pipeline that writes the job; same host, same clock), the slot comes
from the run's ledger row (``scheduled_for``). As a cross-check a consumer in this process pops each job off
the queue the moment it lands (``BLPOP``) and notes the arrival time: that includes the Redis round trip and
this process's own wake-up, so it is an upper bound.

RQ 3's ``rq.cron.CronScheduler`` serves the same cron expressions in a subprocess of its own; its slot is the
cron slot at or before the job's ``enqueued_at``.

The jobs use ``overlap="allow"``: no worker runs them here, and with the default ``skip`` every slot after
the first would (rightly) be skipped while the previous run is still queued. The first seconds after the
process starts are a warm-up (imports, first connections) and are not counted.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import redis
from croniter import croniter

from benchmarks._hsbench import cli_env, hookscheduler, ledger_rows, make_bench, pg_database, redis_cleanup
from benchmarks.common import BenchConfig, Measurement
from hookscheduler.broker.connection import reply_text

TITLE = "4. Fire latency"
CRONS = {  # name -> expression (trailing seconds field)
    "every2_a": "* * * * * */2", "every2_b": "* * * * * */2", "every3_a": "* * * * * */3",
    "every3_b": "* * * * * */3", "every5": "* * * * * */5", "every5_b": "1 * * * * */5",
}
WARMUP = 2.0  # seconds after the process started whose slots are not counted
TARGET_MEDIAN_MS = 5.0
TARGET_P99_MS = 50.0


@dataclass
class Sample:
    """Delays (ms) of one run of one scheduler."""

    delays: list[float] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)
    expected: int = 0  # slots the jobs had in the measured window

    def summary(self) -> tuple[float, float, float]:
        return statistics.median(self.delays), _p99(self.delays), max(self.delays)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


class Observer(threading.Thread):
    """Pops job ids off a queue as they arrive and notes when (epoch seconds)."""

    def __init__(self, conn: redis.Redis, queue_key: str) -> None:
        super().__init__(daemon=True)
        self.conn, self.key = conn, queue_key
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            item = self.conn.blpop([self.key], timeout=0.2)
            if item is not None:
                self.seen[reply_text(item[1])] = time.time()


def _hooks() -> str:
    entries: dict[str, list[dict[str, Any]]] = {}
    for name, expr in CRONS.items():
        entries.setdefault(expr, []).append({"method": "lat_app.tasks.noop", "name": name, "overlap": "allow"})
    return f"scheduler_events = {json.dumps({'cron': entries})}\n"


def _epoch(value: Any) -> float:
    """An RQ timestamp (``2026-12-01T00:41:00.123456Z``) or a naive-UTC datetime / ISO text, as epoch secs."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        value = datetime.fromisoformat(value.rstrip("Z"))
    return float(value.replace(tzinfo=timezone.utc).timestamp())


def _expected(start: float, end: float) -> int:
    """How many slots the jobs have in (start, end]."""
    count = 0
    for expr in CRONS.values():
        it = croniter(expr, datetime.fromtimestamp(start, timezone.utc))
        while it.get_next(float) <= end:
            count += 1
    return count


def _ledger_slots(bench: Path, db_url: str | None) -> dict[str, float]:
    """rq_job_id -> slot (epoch) of every queued run in the site's ledger."""
    sql = "SELECT rq_job_id, scheduled_for FROM scheduled_job_log WHERE rq_job_id IS NOT NULL"
    return {row[0]: _epoch(row[1]) for row in ledger_rows(bench, db_url, sql)}


def _enqueued_at(conn: redis.Redis, job_ids: list[str]) -> dict[str, float]:
    with conn.pipeline(transaction=False) as pipe:
        for jid in job_ids:
            pipe.hget(f"rq:job:{jid}", "enqueued_at")
        values = pipe.execute()
    return {jid: _epoch(v) for jid, v in zip(job_ids, values, strict=True) if v}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _watch(proc: subprocess.Popen[bytes], observer: Observer, seconds: float) -> tuple[float, float]:
    """Let ``proc`` schedule for a warm-up plus ``seconds``, stop it and the observer; the measured window
    (epoch seconds) is returned: slots in the warm-up are not counted."""
    start = time.time() + WARMUP
    time.sleep(WARMUP + seconds)
    end = time.time()
    _stop(proc)
    time.sleep(0.3)
    observer.stop.set()
    observer.join()
    return start, end


def run_hookscheduler(cfg: BenchConfig, conn: redis.Redis, seconds: float, db_url: str | None,
                      inspect: Callable[[Path, str], None] | None = None) -> Sample:
    """One run of ``hookscheduler schedule``; ``inspect(bench, bench_id)`` (workload 9's check of the ledger's
    ``enqueued_at``) runs after the process stopped, before the bench's Redis keys are deleted."""
    bench, bench_id = make_bench(cfg.workdir, "lat", cfg.redis_url, {"lat_app": _hooks()})
    try:
        hookscheduler(bench, "migrate", db_url=db_url)
        observer = Observer(conn, f"rq:queue:{bench_id}:default")
        observer.start()
        proc = subprocess.Popen([sys.executable, "-m", "hookscheduler", "schedule"], env=cli_env(bench, db_url),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        start, end = _watch(proc, observer, seconds)
        if proc.returncode not in (0, -signal.SIGTERM):
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"hookscheduler schedule exited {proc.returncode}: {err}")
        slots = {jid: s for jid, s in _ledger_slots(bench, db_url).items() if start < s <= end}
        enq = _enqueued_at(conn, list(slots))
        sample = Sample(expected=_expected(start, end))
        for jid, slot in slots.items():
            if jid in enq:
                sample.delays.append((enq[jid] - slot) * 1000)
            if jid in observer.seen:
                sample.observed.append((observer.seen[jid] - slot) * 1000)
        if inspect is not None:
            inspect(bench, bench_id)
        return sample
    finally:
        redis_cleanup(conn, bench_id)


RQ_CRON_SCRIPT = """
import sys, redis
from rq.cron import CronScheduler
conn = redis.Redis.from_url(sys.argv[1])
cron = CronScheduler(connection=conn, logging_level="WARNING")
for i, expr in enumerate(sys.argv[3:]):
    cron.register(print, queue_name=sys.argv[2], cron=expr, name=f"job{i}")
cron.start()
"""


def run_rq_cron(cfg: BenchConfig, conn: redis.Redis, seconds: float, script: str = RQ_CRON_SCRIPT,
                options: tuple[str, ...] = (), queue: str | None = None) -> Sample:
    """The same cron expressions through RQ 3's CronScheduler (a subprocess, same Redis); another scheduler
    that enqueues the cron expressions to RQ with ``script`` (argv: Redis URL, queue, ``options``, crons)."""
    queue = queue or f"hsblatrq{int(time.time() * 1000)}"
    observer = Observer(conn, f"rq:queue:{queue}")
    observer.start()
    proc = subprocess.Popen([sys.executable, "-c", script, cfg.redis_url, queue, *options, *CRONS.values()],
                            env=cli_env(cfg.workdir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start, end = _watch(proc, observer, seconds)
    try:
        enq = _enqueued_at(conn, list(observer.seen))
        sample = Sample(expected=_expected(start, end))
        exprs = sorted(set(CRONS.values()))
        for jid, at in enq.items():
            when = datetime.fromtimestamp(at, timezone.utc).replace(tzinfo=None)
            # the slot this job serves: the latest slot of any expression at or before its enqueue
            slot = max(croniter(e, when + timedelta(microseconds=1)).get_prev(float) for e in exprs)
            if not start < slot <= end:
                continue
            sample.delays.append((at - slot) * 1000)
            sample.observed.append((observer.seen[jid] - slot) * 1000)
        return sample
    finally:
        redis_cleanup(conn, queue)


def _rows(case: str, samples: list[Sample], compare: list[Sample] | None) -> list[Measurement]:
    medians = [s.summary()[0] for s in samples]
    p99s = [s.summary()[1] for s in samples]
    maxes = [s.summary()[2] for s in samples]
    fired = sum(len(s.delays) for s in samples)
    expected = sum(s.expected for s in samples)
    observed = [statistics.median(s.observed) for s in samples if s.observed]
    note = f"{fired} runs enqueued of {expected} slots"
    if observed:
        note += f"; seen in the queue (BLPOP) median {statistics.median(observed):.2f} ms"
    if compare:
        rq_med = statistics.median(s.summary()[0] for s in compare)
        note += f"; RQ CronScheduler median {rq_med:.2f} ms in the same run"
    is_rq = compare is None and case.startswith("RQ")
    return [
        Measurement(TITLE, case, "median delay, ms", medians,
                    "" if is_rq else f"<= {TARGET_MEDIAN_MS:g} ms",
                    None if is_rq else statistics.median(medians) <= TARGET_MEDIAN_MS, note),
        Measurement(TITLE, case, "p99 delay, ms", p99s, "" if is_rq else f"<= {TARGET_P99_MS:g} ms",
                    None if is_rq else statistics.median(p99s) <= TARGET_P99_MS),
        Measurement(TITLE, case, "max delay, ms", maxes),
    ]


def run(cfg: BenchConfig) -> list[Measurement]:
    seconds = max(6.0, (20.0 if cfg.quick else 150.0) / max(cfg.runs, 1))
    conn = redis.Redis.from_url(cfg.redis_url)
    sqlite: list[Sample] = []
    pg: list[Sample] = []
    rq: list[Sample] = []
    for _ in range(cfg.runs):  # interleaved, so that machine noise hits every scheduler alike
        sqlite.append(run_hookscheduler(cfg, conn, seconds, None))
        if not cfg.quick:
            with pg_database(cfg.pg_dsn, "lat") as url:
                pg.append(run_hookscheduler(cfg, conn, seconds, url))
        rq.append(run_rq_cron(cfg, conn, seconds))
    window = f"{len(CRONS)} jobs every 2-5 s, {seconds:.0f} s x {cfg.runs} runs"
    out = _rows(f"hookscheduler schedule, sqlite, {window}", sqlite, rq)
    if pg:
        out += _rows(f"hookscheduler schedule, postgres, {window}", pg, rq)
    out += _rows(f"RQ CronScheduler, {window}", rq, None)
    return out


ANALYSIS = """
**Reading it.** Each run has about 56 slots, so its p99 is its slowest slot. RQ's `CronScheduler` ran in the
same runs, interleaved with hookscheduler's, on the same Redis.

**Met on a quiet machine, missed under load.** The run above (this session's machine, load average below 1)
meets both targets: median 0.95 ms on SQLite and 2.6 ms on PostgreSQL, p99 1.6 and 3.6 ms (RQ's own cron:
median 1.7 ms, p99 3.1 ms, in the same runs). The previous session's machine measured 1.5 / 4.0 ms quiet, and
an earlier full run at load 5-15 (other engineers' suites) missed the median: 6.6 ms on SQLite and 20 ms on
PostgreSQL, p99 18 and 34 ms. Why it is sensitive to load: hookscheduler does its exactly-once
work *before* it writes to Redis: a probe statement, a write transaction (SQLite `BEGIN IMMEDIATE`; PostgreSQL
`SELECT ... FOR UPDATE SKIP LOCKED`), the compare-and-set claim, the slot's log row and the commit. Only then
does it enqueue (see `hookscheduler/schedule/claim.py`). RQ's cron compares an in-memory time and enqueues. We timed
each step with wrappers around the tick's functions on SQLite at load average ~7. Times are from the slot:

- the pass starts 0.07 ms after the slot;
- probe at +0.4 ms;
- `BEGIN IMMEDIATE` and the due rows at +1.7 ms;
- decisions, claim and log rows at +4.0 ms;
- commit at +4.1 ms;
- the job stamped `enqueued_at` at +4.2 ms;
- in Redis at +9.7 ms (Redis was also busy with other engineers' benchmarks).

On a quiet machine the pass is about 1-2 ms of CPU. At this load each millisecond of CPU takes several
milliseconds of wall time. On PostgreSQL the same pass makes 5-6 round trips to a server that is short of CPU
too, which gives a 20 ms median.

**What the loop changes did.** Profiled first with pyinstrument and step timers. The loop now wakes 100 ms
before a slot, re-reads the config and runs the sweep that must come before a pass (`Scheduler.work_ahead`).
It then waits for the slot itself and stays awake (spins) for the last 3 ms, because at load 7 a process
that sleeps up to the slot gets CPU back about 2 ms late. Before this change the pass started 1.1 ms after
the slot (0.9 ms of it re-reading config files), or 2 ms under load. It now starts 0.07 ms after. The p99
target (50 ms) is met.

**What would widen the margin.**

1. On a busy host, give the scheduler CPU priority (`nice -n -5`, or systemd `CPUWeight=`): what remains
   is about 1-2 ms of CPU in the pass, which the quiet run above confirms.
2. Taking the database off the slot's path: **done since** (claim ahead, release at the slot:
   `hookscheduler/schedule/ahead.py`). The loop now claims the slot (claim and ledger rows, committed) at least
   100 ms before it and only sends at the slot; a stop or pause set inside that window applies from the next
   slot (docs/policies.md, "Claimed ahead"), and I10 (docs/exactly-once.md) keeps every other sender off the
   held runs until the slot. Quick run at b845402, load ~2-3: SQLite median 0.109 ms, p99 0.150 ms
   (RQ's cron in the same runs: 2.47 and 9.11 ms); before it (c50afe6, same session, load ~2-4): 6.68 and
   11.7 ms against RQ's 2.25 and 18.4 ms. What this delay now measures is the release alone (the RQ job's
   `enqueued_at` is stamped as the send's hashes are built); the "Redis accept" rows of workload 9 put the
   arrival in Redis on the server's clock.
"""
