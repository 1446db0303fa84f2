"""Run scheduling passes at given instants in a separate process (for concurrency and crash tests).

usage: python -m tests.tick_driver BENCH START_ISO STEP_SECONDS COUNT
Prints one JSON line with the totals. HS_RIG_FAILPOINTS makes it die at a chosen point (:mod:`tests.rig`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta

import tests.rig

tests.rig.install()  # before hookscheduler is imported: the failpoints this process was asked for

from hookscheduler.broker.connection import redis_for  # noqa: E402
from hookscheduler.context import open_site  # noqa: E402
from hookscheduler.schedule.claim import run_pass  # noqa: E402


def main() -> None:
    bench, start, step, count = sys.argv[1], datetime.fromisoformat(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    ctx = open_site(bench)
    conn = redis_for(ctx.site)
    start_at = float(os.environ.get("HS_START_AT", "0"))  # a shared start line, so the processes really race
    while time.time() < start_at:
        time.sleep(0.005)
    totals = {"fired": 0, "lost_claims": 0, "resent": 0, "passes": 0}
    for i in range(count):
        r = run_pass(ctx, conn, now=start + timedelta(seconds=step * i))
        totals["fired"] += r.fired
        totals["lost_claims"] += r.lost_claims
        totals["resent"] += r.resent
        totals["passes"] += 1
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
