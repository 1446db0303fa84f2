"""A real forking worker (`hookscheduler worker`) serving more SQLite sites than its descriptor limit allows it
to hold open: it keeps within its budget (least recently served files closed), so every job runs and is
recorded instead of failing with "Too many open files"."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from hookscheduler.context import open_site
from hookscheduler.ops import manual
from hookscheduler.store.models import ScheduledJobLog
from tests.helpers import env_for
from tests.integration.bgjobs_support import make_bench, site

SITES = 30  # 90 descriptors if each site's file were held open: more than the limit below
NOFILE = 64


def _low_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, hard))


def _statuses(bench: Path, name: str) -> list[str]:
    ctx = open_site(str(bench), name)
    ctx.database()
    try:
        return [r.status for r in ScheduledJobLog.select()]
    finally:
        ctx.close()


def test_a_worker_serving_many_sqlite_sites_stays_within_its_descriptor_limit(bench_factory):
    names = [f"s{i}.example" for i in range(SITES)]
    bench = make_bench(bench_factory, events={"hourly": ["bgapp.tasks.seen"]}, sites={n: {} for n in names})
    for name in names:
        ctx, conn = site(bench, name)
        manual.run_job(ctx, conn, "bgapp.tasks.seen", force=True)
        ctx.close()
    done = subprocess.run([sys.executable, "-m", "hookscheduler", "worker", "--queue", "default", "--burst"],
                          env=env_for(bench), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=240, preexec_fn=_low_nofile)
    assert "Too many open files" not in done.stdout and "unavailable" not in done.stdout, done.stdout[-3000:]
    assert {name: _statuses(bench, name) for name in names} == {name: ["complete"] for name in names}
