"""The chaos bench: three apps, a few hundred jobs of every frequency, and tasks that record what ran.

Every task appends one JSON line to ``$HS_CHAOS_OUT`` (``O_APPEND``: atomic for a short line, and independent
of the database and of Redis, which the run breaks on purpose): the job, the slot and the RQ job id it served.
That file is what the oracle trusts about what actually ran. Some tasks misbehave on some slots, chosen by a
hash of (job, slot), so every process agrees and a replay behaves the same: ``flaky`` raises, ``hang`` sleeps
far past its timeout (the worker's timeout kills it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIME_ZONE = "Asia/Kolkata"  # +05:30, no DST: the oracle's cron maths stays simple, the offset is not whole hours
NORMAL_TIMEOUT = 1800  # simulated seconds
HANG_TIMEOUT = 600
SITE = "chaos.local"

TASKS = '''
import hashlib, json, os, time


def _record(kind):
    from hookscheduler import job_context
    ctx = job_context()
    line = json.dumps({"job": ctx.job_name, "slot": ctx.slot.isoformat() if ctx.slot else None,
                       "trigger": ctx.trigger, "rq": ctx.rq_job_id, "kind": kind, "pid": os.getpid(),
                       "real": time.time()}) + "\\n"
    fd = os.open(os.environ["HS_CHAOS_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return ctx


def _roll(ctx, salt):
    return int(hashlib.sha1(f"{ctx.job_name}|{ctx.slot}|{salt}".encode()).hexdigest()[:8], 16)


def ok():
    _record("ok")
    time.sleep(0.005)


def slow():
    _record("ok")
    time.sleep(0.05)


def flaky():
    ctx = _record("ok")
    if _roll(ctx, "raise") % 4 == 0:
        _record("raised")
        raise RuntimeError("flaky: failed on purpose")


def hang():
    ctx = _record("ok")
    if _roll(ctx, "hang") % 5 == 0:
        _record("hung")
        time.sleep(3600)  # far past its timeout: the worker kills it
'''

# (section, cron or None, count in the full catalog, count in the light one, method, options). The light
# catalog (the bounded CI run) keeps every frequency and a few hundred jobs, but few runs per simulated day.
CATALOG: list[tuple[str, str | None, int, int, str, dict[str, Any]]] = [
    ("all", None, 1, 1, "ok", {}),
    ("all", None, 1, 1, "slow", {"overlap": "allow"}),
    ("hourly", None, 1, 0, "ok", {}),
    ("hourly", None, 1, 1, "flaky", {"catchup": "all", "catchup_limit": 3}),
    ("hourly_long", None, 1, 1, "slow", {}),
    ("hourly_maintenance", None, 1, 1, "ok", {}),
    ("daily", None, 20, 5, "ok", {}),
    ("daily", None, 3, 2, "flaky", {"catchup": "skip"}),
    ("daily_long", None, 10, 3, "ok", {}),
    ("daily_maintenance", None, 3, 2, "ok", {}),
    ("weekly", None, 20, 40, "ok", {}),
    ("weekly_long", None, 10, 20, "ok", {}),
    ("monthly", None, 20, 40, "ok", {}),
    ("monthly_long", None, 10, 20, "ok", {}),
    ("yearly", None, 8, 12, "ok", {}),
    ("annual", None, 8, 12, "ok", {}),
    ("cron", "*/30 * * * *", 1, 0, "ok", {}),
    ("cron", "*/30 6-9 * * *", 0, 1, "ok", {}),
    ("cron", "15 */2 * * *", 2, 1, "flaky", {}),
    ("cron", "40 */3 * * *", 2, 1, "hang", {"timeout": HANG_TIMEOUT}),
    ("cron", "0 */6 * * *", 4, 2, "ok", {"catchup": "all", "catchup_limit": 5}),
    ("cron", "45 3 * * *", 20, 4, "ok", {}),
    ("cron", "30 9 * * 1-5", 15, 4, "ok", {}),
    ("cron", "0 12 1,15 * *", 10, 20, "ok", {}),
    ("cron", "*/20 8-18 * * *", 1, 0, "ok", {"catchup": "skip"}),
    ("cron", "*/20 8-9 * * *", 0, 1, "ok", {"catchup": "skip"}),
    ("cron", "0 */4 * * * 30", 1, 1, "ok", {}),
    ("cron", "5 23 * * 6,0", 10, 20, "ok", {}),
    ("cron_long", "0 2 * * *", 10, 3, "ok", {}),
    ("cron_long", "20 */3 * * *", 2, 1, "slow", {"overlap": "allow"}),
]
APPS = ("billing", "crm", "ops")


@dataclass(frozen=True)
class JobDecl:
    app: str
    section: str
    cron: str | None
    name: str
    method: str
    options: dict[str, Any]


def declarations(light: bool = False) -> list[JobDecl]:
    """The catalog spread round-robin over the apps, each job with a unique name."""
    out: list[JobDecl] = []
    n = 0
    for section, cron, full, small, method, options in CATALOG:
        for i in range(small if light else full):
            app = APPS[n % len(APPS)]
            n += 1
            tag = (cron or "").replace(" ", "_").replace("*", "x").replace("/", "e").replace(",", "c")
            name = f"{app}.{section}.{method}.{tag}.{i}".replace("..", ".")
            opts = {"timeout": NORMAL_TIMEOUT, **options}
            out.append(JobDecl(app, section, cron, name, f"{app}.tasks.{method}", opts))
    return out


def hooks_source(app: str, decls: list[JobDecl]) -> str:
    events: dict[str, Any] = {}
    for d in decls:
        if d.app != app:
            continue
        entry = {"method": d.method, "name": d.name, **d.options}
        if d.cron is None:
            events.setdefault(d.section, []).append(entry)
        else:
            events.setdefault(d.section, {}).setdefault(d.cron, []).append(entry)
    return f"scheduler_events = {json.dumps(events, indent=1)}\n"


def make_bench(root: Path, *, redis_url: str, db_url: str | None, bench_id: str, tick: int,
               light: bool = False) -> Path:
    """Write the bench folder; ``db_url`` None: the site's own SQLite file."""
    bench = root / "bench"
    decls = declarations(light)
    for app in APPS:
        pkg = bench / "apps" / app
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "tasks.py").write_text(TASKS)
        (pkg / "hooks.py").write_text(hooks_source(app, decls))
    sites = bench / "sites"
    (sites / SITE).mkdir(parents=True)
    (sites / "apps.txt").write_text("\n".join(APPS) + "\n")
    common = {"redis_queue": redis_url, "bench_id": bench_id, "time_zone": TIME_ZONE,
              "scheduler_tick_interval": tick}
    (sites / "common_site_config.json").write_text(json.dumps(common))
    write_site_config(bench, {"db_url": db_url} if db_url else {})
    return bench


def write_site_config(bench: Path, conf: dict[str, Any]) -> None:
    """Atomically (the loop re-reads it every step)."""
    path = bench / "sites" / SITE / "site_config.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(conf))
    tmp.replace(path)
