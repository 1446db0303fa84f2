"""A tick process for workload 3: waits for a shared start line, runs passes at given instants, prints JSON.

usage: python -m benchmarks.proc_tick BENCH NOW_ISO PASSES START_AT
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta

from hookscheduler.broker.connection import redis_for
from hookscheduler.context import open_site
from hookscheduler.schedule.claim import run_pass


def main() -> None:
    bench, now, passes, start_at = sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3]), \
        float(sys.argv[4])
    ctx = open_site(bench)
    conn = redis_for(ctx.site)
    ctx.database()
    conn.ping()
    while time.time() < start_at:  # every process connected and waiting: they really race
        time.sleep(0.001)
    out = []
    for i in range(passes):
        t0 = time.perf_counter()
        r = run_pass(ctx, conn, now=now + timedelta(seconds=i))
        out.append({"ms": (time.perf_counter() - t0) * 1000, "fired": r.fired, "due": r.due,
                    "lost": r.lost_claims, "error": r.send_error})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
