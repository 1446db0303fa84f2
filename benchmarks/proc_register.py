"""One peer's registration of N cron jobs, in a process of its own (workload 10 times the whole process).

usage: python -m benchmarks.proc_register PEER CRONS_JSON REDIS_URL PREFIX [WHERE [APPS_DIR]]

PEER is A (RQ's ``CronScheduler``: ``register`` each job, then ``register_birth``, which saves them all in its
hash), B (rq-scheduler: ``cron`` per job), C-sqlite / C-postgres / C-redis (APScheduler 3: start the scheduler
on its persistent store, ``add_job`` per job), D-sqlite / D-postgres (the Frappe emulation's ``sync_jobs`` given
the cron strings) or Dh-sqlite / Dh-postgres (Frappe 14/15's ``sync_jobs`` over the apps in APPS_DIR: every
hooks.py imported, every method resolved by importing its module, as ``frappe.get_attr`` does).
WHERE is the SQLite file or the PostgreSQL DSN. Prints the seconds spent after the imports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    peer, crons_file, redis_url, prefix = sys.argv[1:5]
    where = sys.argv[5] if len(sys.argv) > 5 else ""
    crons: list[str] = json.loads(Path(crons_file).read_text())
    from .peers import (
        FrappeEmulation,
        job_kwargs,
        manual_scheduler,
        noop,
        register_aps,
        register_rq_scheduler,
        rq_scheduler_class,
        sqlalchemy_url,
    )

    conn: Any = None
    if peer in ("A", "B"):
        import redis

        conn = redis.Redis.from_url(redis_url)
    t0 = time.perf_counter()
    if peer == "A":
        from rq.cron import CronScheduler

        cron = CronScheduler(conn, name=f"{prefix}_cron", logging_level="WARNING")
        for i, expr in enumerate(crons):
            cron.register(noop, f"{prefix}:default", kwargs=job_kwargs(i), cron=expr, job_timeout=300,
                          name=f"{prefix}_job_{i:06d}")
        cron.register_birth()
    elif peer == "B":
        register_rq_scheduler(rq_scheduler_class(prefix)(connection=conn), prefix, crons)
    elif peer.startswith("C-"):
        from .peers import aps_jobstore

        kind = peer[2:]
        url = redis_url if kind == "redis" else sqlalchemy_url(kind, where)
        sched = manual_scheduler(aps_jobstore(kind, url, prefix))
        sched.start()
        register_aps(sched, crons, redis_url, f"{prefix}:default")
        sched.shutdown(wait=False)
    elif peer.startswith("D-"):
        emulation = FrappeEmulation(peer[2:], where, redis_url, prefix)
        emulation.create()
        emulation.register(crons)
    elif peer.startswith("Dh-"):
        apps_dir = sys.argv[6]
        emulation = FrappeEmulation(peer[3:], where, redis_url, prefix)
        emulation.create()
        emulation.register_hooks(apps_dir, sorted(p.name for p in Path(apps_dir).iterdir() if p.is_dir()))
    else:
        raise SystemExit(f"unknown peer {peer!r}")
    print(time.perf_counter() - t0)


if __name__ == "__main__":
    main()
