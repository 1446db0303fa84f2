"""The chaos run: a real bench, real ``schedule`` and ``worker`` processes, a simulated week, seeded faults.

Time: every process reads the simulated clock from ``<run>/clock.json`` (``HS_RIG_CLOCK``, see
:mod:`tests.rig`); the harness publishes it, steps it backwards for the NTP fault, and records every
fault and every stop/pause toggle on the same simulated timeline, for the oracle.

Processes are started in their own session so that a fault hits the whole process group (a worker and its work
horse die together, as in a container kill). A supervisor restarts any process that exits on its own (a worker
that lost Redis, say), as systemd would, and counts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg2

from tests.rig.simclock import SimSpec, write_spec

from . import bench as chaos_bench
from .services import PrivatePostgres, PrivateRedis

REPO = Path(__file__).resolve().parents[2]
START = datetime(2025, 12, 26, 12, 0, tzinfo=timezone.utc)  # a Friday: a weekend, New Year, month and year turn
#: Simulated seconds a skewed worker's clock runs behind the schedulers' (the skew fault).
SKEW = 600.0


@dataclass
class Config:
    db: str = "postgres"  # or "sqlite"
    seed: int = 1
    schedulers: int = 3
    workers: int = 3
    sim_days: float = 7.5
    rate: float = 6000.0  # simulated seconds per real second
    tick: int = 600  # scheduler_tick_interval (simulated seconds)
    fault_gap: float = 2.0  # mean real seconds between faults
    settle: float = 8.0  # real seconds without faults at the end
    workdir: Path | None = None
    keep: bool = False
    light: bool = False  # the light catalog (bounded run)
    without: frozenset[str] = frozenset()  # fault kinds left out (--without)


@dataclass
class Fault:
    kind: str
    start: datetime  # simulated, naive UTC
    end: datetime
    detail: str = ""


@dataclass
class Toggle:
    """A job stopped, or the scheduler paused, over [start, end] (simulated)."""

    kind: str  # "stop" | "pause"
    job: str | None
    start: datetime
    end: datetime


@dataclass
class Proc:
    role: str
    index: int
    popen: subprocess.Popen[bytes] | None = None
    down: bool = False  # deliberately not running (a fault is in progress)
    restarts: int = 0


@dataclass
class RunRecord:
    """Everything the oracle needs besides the database and the task output."""

    config: Config
    bench: Path
    out_file: Path
    db_url: str | None
    migrated_at: datetime
    stopped_at: datetime  # when the schedulers were stopped (simulated)
    faults: list[Fault] = field(default_factory=list)
    toggles: list[Toggle] = field(default_factory=list)
    crash_restarts: Counter[str] = field(default_factory=Counter)
    max_back_step: float = 0.0
    real_seconds: float = 0.0
    final_resent: int = 0
    first_next: dict[str, datetime] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)  # run ids still in a queue list at the end (a backlog)
    # when the workers were stopped (simulated): the clock runs on while they drain the queues, so the daily
    # maintenance job may run, and thin the ledger, as late as this
    workers_stopped_at: datetime | None = None


class Harness:
    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.work = config.workdir or Path(f"/tmp/hs-chaos-{uuid.uuid4().hex[:8]}")
        self.work.mkdir(parents=True, exist_ok=True)
        self.clock_file = self.work / "clock.json"
        self.skew_file = self.work / "clock-skewed.json"
        self.out_file = self.work / "out.jsonl"
        self.redis = PrivateRedis(self.work)
        self.pg = PrivatePostgres(self.work) if config.db == "postgres" else None
        self.procs: list[Proc] = []
        self.lock = threading.RLock()
        self.stop_supervisor = threading.Event()
        self.faults: list[Fault] = []
        self.toggles: list[Toggle] = []
        self.crashes: Counter[str] = Counter()
        self.max_back = 0.0
        self.max_ahead = 0.0
        self.bench: Path | None = None
        self.spec = SimSpec(START.timestamp(), time.time(), config.rate)

    # --- time ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.spec.at(time.time()), timezone.utc).replace(tzinfo=None)

    def publish_clock(self, sim: datetime, rate: float) -> None:
        self.spec = SimSpec(sim.replace(tzinfo=timezone.utc).timestamp(), time.time(), rate)
        write_spec(str(self.clock_file), self.spec)
        # the clock of a process that runs behind the others (the skew fault): the same timeline, SKEW earlier
        write_spec(str(self.skew_file), SimSpec(self.spec.sim - SKEW, self.spec.real, rate))

    # --- processes ----------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        assert self.bench is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCHEDULER_")}
        env.update({"HOOKSCHEDULER_BENCH": str(self.bench), "HS_RIG_CLOCK": str(self.clock_file),
                    "HS_CHAOS_OUT": str(self.out_file), "PYTHONPATH": str(REPO)})
        return env

    def _spawn(self, proc: Proc, **extra_env: str) -> None:
        args = ["schedule", "-v"] if proc.role == "scheduler" else ["worker", "--quiet"]
        log = open(self.work / f"{proc.role}{proc.index}.log", "ab")  # noqa: SIM115
        proc.popen = subprocess.Popen([sys.executable, "-m", "tests.rig", *args], env={**self.env(), **extra_env},
                                      cwd=str(self.bench), stdout=log, stderr=log, start_new_session=True)
        log.close()

    def start_processes(self) -> None:
        for i in range(self.cfg.schedulers):
            self.procs.append(Proc("scheduler", i))
        for i in range(self.cfg.workers):
            self.procs.append(Proc("worker", i))
        for p in self.procs:
            self._spawn(p)

    def supervise(self) -> None:
        while not self.stop_supervisor.wait(0.1):
            with self.lock:
                for p in self.procs:
                    if p.down or p.popen is None or p.popen.poll() is None:
                        continue
                    self.crashes[p.role] += 1
                    p.restarts += 1
                    self._spawn(p)

    def _signal(self, p: Proc, sig: int) -> None:
        assert p.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.popen.pid, sig)

    def _kill(self, p: Proc) -> None:
        self._signal(p, signal.SIGKILL)
        assert p.popen is not None
        p.popen.wait()

    def terminate(self, role: str, timeout: float = 20.0) -> None:
        with self.lock:
            targets = [p for p in self.procs if p.role == role]
            for p in targets:
                p.down = True
                self._signal(p, signal.SIGCONT)
                self._signal(p, signal.SIGTERM)
        deadline = time.time() + timeout
        for p in targets:
            assert p.popen is not None
            try:
                p.popen.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self._kill(p)

    # --- faults -------------------------------------------------------------------------------
    def _pick(self, role: str) -> Proc:
        return self.rng.choice([p for p in self.procs if p.role == role])

    def fault_kinds(self) -> list[str]:
        kinds = ["kill_scheduler", "stop_scheduler", "kill_worker", "stop_worker", "redis_restart", "db_lock",
                 "clock_back", "stop_job", "pause_scheduler"]
        if not self.cfg.light:  # the long form: the faults that exposed a double run, a silenced site, abandoned runs
            kinds += ["redis_wipe", "worker_no_ledger", "clock_ahead", "skew_worker"]
        if self.pg is not None:
            kinds.append("pg_restart")
        unknown = self.cfg.without - set(kinds)
        if unknown:
            raise SystemExit(f"--without: unknown fault kind(s) {', '.join(sorted(unknown))}; "
                             f"kinds: {', '.join(kinds)}")
        return [k for k in kinds if k not in self.cfg.without]

    def inject(self, kind: str) -> None:
        rng = self.rng
        start = self.now()
        detail = ""
        if kind in ("kill_scheduler", "kill_worker"):
            with self.lock:
                p = self._pick(kind.split("_")[1])
                p.down = True
                self._kill(p)
            time.sleep(rng.uniform(0.1, 1.5))
            with self.lock:
                self._spawn(p)
                p.down = False
            detail = f"{p.role}{p.index}"
        elif kind in ("stop_scheduler", "stop_worker"):
            with self.lock:
                p = self._pick(kind.split("_")[1])
                p.down = True
                self._signal(p, signal.SIGSTOP)
            time.sleep(rng.uniform(0.2, 2.0))
            with self.lock:
                self._signal(p, signal.SIGCONT)
                p.down = False
            detail = f"{p.role}{p.index}"
        elif kind == "redis_restart":
            self.redis.stop(save=True)
            time.sleep(rng.uniform(0.1, 1.0))
            self.redis.start()
        elif kind == "redis_wipe":  # a restart without persistence: queues, jobs and marks are gone
            self.redis.stop(save=False)
            with contextlib.suppress(FileNotFoundError):
                (self.redis.dir / "dump.rdb").unlink()
            time.sleep(rng.uniform(0.1, 1.0))
            self.redis.start()
        elif kind in ("worker_no_ledger", "skew_worker"):
            # a worker that cannot write the ledger (its database unreachable), or whose clock runs SKEW behind
            # the schedulers': it runs for a while in place of a healthy one
            bad = {"HS_RIG_CLOCK": str(self.skew_file)} if kind == "skew_worker" else {
                "HOOKSCHEDULER_DB_URL": ("postgresql://postgres@127.0.0.1:1/nowhere" if self.pg is not None
                                         else f"sqlite:///{self.work / 'no-such-folder' / 'ledger.sqlite3'}")}
            with self.lock:
                p = self._pick("worker")
                p.down = True
                self._kill(p)
                self._spawn(p, **bad)
            time.sleep(rng.uniform(0.5, 3.0))
            with self.lock:
                self._kill(p)
                self._spawn(p)
                p.down = False
            detail = f"{p.role}{p.index}"
        elif kind == "clock_ahead":  # one excursion: a day ahead for a moment, then back where it was
            ahead = rng.uniform(3600, 86400)
            self.publish_clock(self.now() + timedelta(seconds=ahead), self.spec.rate)
            time.sleep(rng.uniform(0.1, 0.5))
            self.publish_clock(self.now() - timedelta(seconds=ahead), self.spec.rate)
            self.max_ahead = max(self.max_ahead, ahead)
            detail = f"{ahead:.0f}s"
        elif kind == "pg_restart":
            assert self.pg is not None
            self.pg.restart()
        elif kind == "db_lock":
            hold = rng.uniform(2, 5) * self.cfg.tick / self.spec.rate + 0.3  # longer than a tick
            tables = rng.choice(["scheduled_job_type", "scheduled_job_log", "scheduled_job_type, scheduled_job_log"])
            self._hold_lock(tables, hold)
            detail = f"{tables} for {hold:.2f}s"
        elif kind == "clock_back":
            back = rng.uniform(120, 600)
            self.max_back = max(self.max_back, back)
            self.publish_clock(self.now() - timedelta(seconds=back), self.spec.rate)
            detail = f"{back:.0f}s"
        elif kind == "stop_job":
            job = rng.choice(self.job_names)
            self._set_stopped(job, True)
            t0 = self.now()
            time.sleep(rng.uniform(0.2, 2.5))
            self._set_stopped(job, False)
            self.toggles.append(Toggle("stop", job, t0, self.now()))
            detail = job
        elif kind == "pause_scheduler":
            assert self.bench is not None
            conf = {"db_url": self.pg.url} if self.pg else {}
            chaos_bench.write_site_config(self.bench, {**conf, "pause_scheduler": True})
            t0 = self.now()
            time.sleep(rng.uniform(0.2, 2.0))
            chaos_bench.write_site_config(self.bench, conf)
            self.toggles.append(Toggle("pause", None, t0, self.now()))
        self.faults.append(Fault(kind, start, self.now(), detail))

    def _db(self) -> Any:
        if self.pg is not None:
            conn = self.pg.connect()
            return conn
        assert self.bench is not None
        return sqlite3.connect(self.bench / "sites" / chaos_bench.SITE / "scheduler.sqlite3", timeout=30,
                               isolation_level=None)

    def _hold_lock(self, tables: str, seconds: float) -> None:
        conn = self._db()
        try:
            if self.pg is not None:
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
                        time.sleep(seconds)
                except psycopg2.Error:  # e.g. chosen as a deadlock victim: the lock fault ends early
                    pass
                conn.rollback()
            else:
                conn.execute("BEGIN EXCLUSIVE")
                time.sleep(seconds)
                conn.execute("ROLLBACK")
        finally:
            conn.close()

    def _set_stopped(self, job: str, stopped: bool) -> None:
        for _ in range(100):  # the database may be restarting: an operator retries too
            try:
                conn = self._db()
                try:
                    if self.pg is not None:
                        with conn.cursor() as cur:
                            cur.execute("UPDATE scheduled_job_type SET stopped = %s WHERE name = %s", (stopped, job))
                        conn.commit()
                    else:
                        conn.execute("UPDATE scheduled_job_type SET stopped = ? WHERE name = ?", (int(stopped), job))
                    return
                finally:
                    conn.close()
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"could not set stopped={stopped} on {job}")

    # --- the run ------------------------------------------------------------------------------
    def setup(self) -> None:
        self.redis.start()
        if self.pg is not None:
            self.pg.init()
        bench_id = f"chaos{uuid.uuid4().hex[:6]}"
        self.bench = chaos_bench.make_bench(self.work, redis_url=self.redis.url,
                                            db_url=self.pg.url if self.pg else None, bench_id=bench_id,
                                            tick=self.cfg.tick, light=self.cfg.light)
        self.publish_clock(START.replace(tzinfo=None), 1.0)  # migrate at a fixed, known moment
        subprocess.run([sys.executable, "-m", "tests.rig", "migrate"], env=self.env(), cwd=str(self.bench),
                       check=True, capture_output=True, timeout=120)
        self.migrated_at = START.replace(tzinfo=None)
        self.job_names = [d.name for d in chaos_bench.declarations(self.cfg.light)]
        self.first_next = self._first_next()

    def _first_next(self) -> dict[str, datetime]:
        conn = self._db()
        try:
            if self.pg is not None:
                with conn.cursor() as cur:
                    cur.execute("SELECT name, next_execution FROM scheduled_job_type")
                    rows = cur.fetchall()
            else:
                rows = conn.execute("SELECT name, next_execution FROM scheduled_job_type").fetchall()
        finally:
            conn.close()
        return {name: nxt if isinstance(nxt, datetime) else datetime.fromisoformat(nxt) for name, nxt in rows if nxt}

    def run(self) -> RunRecord:
        t_real = time.time()
        self.setup()
        cfg = self.cfg
        self.start_processes()
        time.sleep(1.5)  # interpreters start; the simulated clock waits for them
        self.publish_clock(self.migrated_at + timedelta(seconds=1), cfg.rate)
        supervisor = threading.Thread(target=self.supervise, daemon=True)
        supervisor.start()
        end_faults = self.migrated_at + timedelta(days=cfg.sim_days) - timedelta(seconds=cfg.settle * cfg.rate)
        try:
            while self.now() < end_faults:
                time.sleep(self.rng.expovariate(1.0 / cfg.fault_gap))
                if self.now() >= end_faults:
                    break
                self.inject(self.rng.choice(self.fault_kinds()))
            while self.now() < self.migrated_at + timedelta(days=cfg.sim_days):
                time.sleep(0.1)
            self.terminate("scheduler")
            stopped_at = self.now()
            self.drain()
            self.stop_supervisor.set()
            supervisor.join()
            self.terminate("worker")
            workers_stopped_at = self.now()
            resent = self.final_reconcile(stopped_at)
            waiting = self.waiting_ids()
        except BaseException:
            self.stop_supervisor.set()
            with self.lock:
                for p in self.procs:
                    p.down = True
                    if p.popen is not None and p.popen.poll() is None:
                        self._signal(p, signal.SIGCONT)
                        self._kill(p)
            raise
        record = RunRecord(cfg, self.bench or Path(), self.out_file, self.pg.url if self.pg else None,
                           self.migrated_at, stopped_at, self.faults, self.toggles, self.crashes, self.max_back,
                           time.time() - t_real, resent, self.first_next, waiting, workers_stopped_at)
        self.dump(record)
        return record

    def waiting_ids(self) -> set[str]:
        """Runs still waiting in a queue once the workers stopped: not over, so not stuck (a backlog the
        workers of a busy machine did not get through; the long queue is served last)."""
        client = self.redis.client()
        return {v.decode() for key in client.scan_iter(match="rq:queue:*") for v in client.lrange(key, 0, -1)}

    def drain(self, timeout: float = 45.0) -> None:
        """Let the workers finish what is queued or running (the schedulers are stopped)."""
        client = self.redis.client()
        deadline = time.time() + timeout
        while time.time() < deadline:
            busy = 0
            for key in client.scan_iter(match="rq:queue:*"):
                busy += int(client.llen(key))
            for key in client.scan_iter(match="rq:wip:*"):
                busy += int(client.zcard(key))
            if not busy:
                return
            time.sleep(0.2)

    def final_reconcile(self, stopped_at: datetime) -> int:
        """The sweep a live scheduler would run next (every 30 s), once more after everything stopped, at a
        moment past every timeout: the ledger takes RQ's outcomes and judges dead runs. Runs Redis lost are
        re-sent and drained by a burst worker."""
        later = stopped_at + timedelta(hours=2)
        self.publish_clock(later, 1.0)
        code = ("import sys, json, tests.rig; tests.rig.install(); from hookscheduler.context import open_site; "
                "from hookscheduler.broker.connection import redis_for; from hookscheduler.store.models import utcnow; "
                "from hookscheduler.schedule.outbox import resend_outbox; "
                "from hookscheduler.schedule.reconcile import reconcile_active; "
                "ctx = open_site(None, sys.argv[1]); conn = redis_for(ctx.site); ctx.database(); "
                "n = len(resend_outbox(ctx, conn, utcnow()).ids); s = reconcile_active(ctx, conn, utcnow()); "
                "print(json.dumps([n, s]))")
        total = 0
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", code, chaos_bench.SITE], env=self.env(), cwd=str(self.bench),
                                 check=True, capture_output=True, text=True, timeout=120)
            resent, _settled = json.loads(out.stdout.strip().splitlines()[-1])
            total += resent
            if not resent:
                break
            subprocess.run([sys.executable, "-m", "tests.rig", "worker", "--burst", "--quiet"], env=self.env(),
                           cwd=str(self.bench), check=True, capture_output=True, timeout=300)
        return total

    def dump(self, record: RunRecord) -> None:
        """The run's timeline next to its logs (kept with --keep), for post-mortems."""
        data = {"faults": [vars(f) for f in record.faults], "toggles": [vars(t) for t in record.toggles],
                "stopped_at": record.stopped_at, "migrated_at": record.migrated_at}
        (self.work / "timeline.json").write_text(json.dumps(data, indent=1, default=str))

    def cleanup(self) -> None:
        self.stop_supervisor.set()
        for p in self.procs:
            if p.popen is not None and p.popen.poll() is None:
                self._signal(p, signal.SIGCONT)
                self._kill(p)
        self.redis.stop(save=False)
        if self.pg is not None:
            self.pg.destroy()
        if not self.cfg.keep:
            subprocess.run(["rm", "-rf", str(self.work)], check=False)
