"""A bench of many sites for workload 11: S sites x 20 jobs, SQLite file or PostgreSQL database per site, one
app; real ``hookscheduler migrate`` and ``schedule`` processes, watched from outside (``/proc`` for CPU and
file descriptors, the sites' ledgers and RQ for what they fired).

Jobs: 19 yearly jobs (never due in a run) and one job ``fast``, also yearly while the idle cost is measured,
then every 5 seconds (2 in smoke mode) for the latency and sharing phases.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from hookscheduler.broker.keys import heartbeat_key, last_tick_key

from ._hsbench import cli_env, ledger_rows, make_bench, redis_cleanup
from .tickbench import admin_dsn, create_pg_database, drop_pg_database

JOBS = 20


def fast_cron(every: int) -> str:
    """Every ``every`` seconds (croniter's trailing seconds field)."""
    return f"* * * * * */{every}"


def hooks_source(fast: bool, every: int = 5) -> str:
    crons: dict[str, list[dict[str, Any]]] = {}
    for i in range(JOBS):
        expr = fast_cron(every) if (fast and i == 0) else f"{i} 0 1 1 *"
        crons.setdefault(expr, []).append({"method": "ms_app.tasks.noop", "name": "fast" if i == 0 else f"job{i:02d}",
                                           "overlap": "allow"})
    return f"scheduler_events = {json.dumps({'cron': crons})}\n"


@dataclass
class MultiBench:
    """S sites on one bench; ``pg_names`` are the per-site PostgreSQL databases (empty on SQLite)."""

    path: Path
    bench_id: str
    sites: list[str]
    kind: str
    pg_dsn: str
    every: int = 5  # seconds between the fast job's slots
    pg_names: list[str] = field(default_factory=list)

    def site_db(self, site: str) -> str | None:
        if self.kind != "postgres":
            return None
        return admin_dsn(self.pg_dsn, self.pg_names[self.sites.index(site)])

    def migrate(self, fast: bool) -> float:
        """Write the hooks (``fast`` job yearly or every 5 s) and run ``migrate`` over every site; seconds."""
        hooks = self.path / "apps" / "ms_app" / "hooks.py"
        hooks.write_text(hooks_source(fast, self.every))
        os.utime(hooks, (time.time() + 2, time.time() + 2))
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "hookscheduler", "migrate"], env=cli_env(self.path),
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"migrate over {len(self.sites)} sites failed: {proc.stderr.strip()[-600:]}")
        return time.perf_counter() - started

    def ledger(self, site: str, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "postgres":
            return ledger_rows(self.path, self.site_db(site), sql)
        import sqlite3

        conn = sqlite3.connect(self.path / "sites" / site / "scheduler.sqlite3")
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()

    def close(self, conn: redis.Redis) -> None:
        redis_cleanup(conn, self.bench_id)
        for name in self.pg_names:
            drop_pg_database(self.pg_dsn, name)


def make_multibench(workdir: Path, redis_url: str, pg_dsn: str, kind: str, count: int,
                    tick_interval: int, every: int = 5, common: dict[str, Any] | None = None) -> MultiBench:
    """``common``: more settings for every site (``common_site_config.json``)."""
    bench, bench_id = make_bench(workdir, f"ms{kind[:2]}{count}", redis_url, {"ms_app": hooks_source(False)},
                                 common={"scheduler_tick_interval": tick_interval, **(common or {})})
    mb = MultiBench(bench, bench_id, [f"site{i:04d}" for i in range(count)], kind, pg_dsn, every)
    for i, site in enumerate(mb.sites):
        conf: dict[str, Any] = {}
        if kind == "postgres":
            name = f"hs_bench_{os.getpid()}_ms{count}_{i}"
            create_pg_database(pg_dsn, name)
            mb.pg_names.append(name)
            conf["db_url"] = admin_dsn(pg_dsn, name)
        (bench / "sites" / site).mkdir()
        (bench / "sites" / site / "site_config.json").write_text(json.dumps(conf))
    return mb


# --- watching a process ---------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return -1


def start_schedulers(mb: MultiBench, conn: redis.Redis, count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` fresh ``schedule`` processes; the sites' last-tick keys are deleted first, so that
    :func:`wait_first_round` sees these processes' first round, not an earlier phase's."""
    keys = [last_tick_key(mb.bench_id, s) for s in mb.sites]
    for i in range(0, len(keys), 500):
        conn.delete(*keys[i:i + 500])
    procs = []
    for i in range(count):
        log = (mb.path / f"schedule{i}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "hookscheduler", "schedule"], env=cli_env(mb.path),
                                      stdout=subprocess.DEVNULL, stderr=log))
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_first_round(mb: MultiBench, conn: redis.Redis, procs: list[subprocess.Popen[bytes]],
                     timeout: float = 300.0) -> float:
    """Wait until every site has a last-tick key (a first round over all sites is done) and every process has
    announced itself (its heartbeat is written at the end of its own first cycle: with several processes, the
    sites' keys come from the fastest one, while the others may still be in a first round that steps, and
    connects to, every site); returns when."""
    keys = [last_tick_key(mb.bench_id, s) for s in mb.sites]
    keys += [heartbeat_key(mb.bench_id, f"{socket.gethostname()}:{p.pid}") for p in procs]
    give_up = time.time() + timeout
    while time.time() < give_up:
        if all(p.poll() is None for p in procs) and sum(conn.exists(*keys[i:i + 500])
                                                       for i in range(0, len(keys), 500)) == len(keys):
            return time.time()
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"schedule exited: {(mb.path / 'schedule0.log').read_text()[-600:]}")
        time.sleep(0.05)
    raise RuntimeError(f"no first round over {len(mb.sites)} sites within {timeout:.0f} s")


def round_cpu(mb: MultiBench, conn: redis.Redis, pid: int, rounds: int, timeout: float) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the process over exactly ``rounds`` periods of its loop, from the end of
    one round to the end of a later one (the moments the last site's last-tick key changes)."""
    key = last_tick_key(mb.bench_id, mb.sites[-1])
    give_up = time.time() + timeout
    last = conn.get(key)

    def next_change() -> None:
        nonlocal last
        while time.time() < give_up:
            time.sleep(0.01)
            value = conn.get(key)
            if value != last:
                last = value
                return
        raise RuntimeError(f"the loop over {len(mb.sites)} sites made no round within {timeout:.0f} s")

    next_change()
    cpu0, t0 = cpu_seconds(pid), time.time()
    for _ in range(rounds):
        next_change()
    return cpu_seconds(pid) - cpu0, time.time() - t0
