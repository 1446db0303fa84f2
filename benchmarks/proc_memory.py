"""The tick loop for workload 7, in a process of its own: ``Scheduler.cycle()`` (what ``hookscheduler schedule``
runs forever: config refresh, sweeps, the pass, heartbeat) ``STEPS`` times on a simulated clock that advances
one second per step, so due slots come and go as in production. Prints JSON: RSS samples and step times.

usage: python -m benchmarks.proc_memory BENCH START_ISO STEPS SAMPLES
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from datetime import datetime, timedelta

from hookscheduler.schedule.loop import Scheduler


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    bench, start, steps, samples = sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4])
    logging.basicConfig(level=logging.WARNING)
    clock = [start]
    sched = Scheduler(bench=bench, now_fn=lambda: clock[0])
    every = max(steps // samples, 1)
    rss: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for i in range(steps):
        sched.cycle()
        clock[0] += timedelta(seconds=1)
        if i % every == 0 or i == steps - 1:
            gc.collect()
            rss.append((i + 1, rss_mb()))
    elapsed = time.perf_counter() - t0
    print(json.dumps({"rss": rss, "ms_per_step": elapsed * 1000 / steps, "end": clock[0].isoformat()}))


if __name__ == "__main__":
    main()
