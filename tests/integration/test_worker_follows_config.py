"""A real forking worker (`hookscheduler worker`) across a ``set-config db_url`` + ``migrate``: its horses record
runs in the new database, and the worker itself lets go of the old SQLite file it held open for them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hookscheduler.config import update_site_config
from hookscheduler.context import open_site
from hookscheduler.ops import manual
from hookscheduler.store.models import ScheduledJobLog
from tests.integration.bgjobs_support import T0, make_bench, site, spawn, wait_for
from tests.integration.opcli_support import migrated


def _held(pid: int) -> set[str]:
    """The files process ``pid`` has open (its descriptors' targets)."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            pass
    return out


def _statuses(bench: Path) -> list[str]:
    ctx = open_site(str(bench))
    ctx.database()
    try:
        return [r.status for r in ScheduledJobLog.select().order_by(ScheduledJobLog.id)]
    finally:
        ctx.close()


def test_a_forking_worker_moves_to_the_new_database_and_lets_go_of_the_old_file(bench_factory):
    bench = make_bench(bench_factory, events={"hourly": ["bgapp.tasks.seen"]})
    ctx, conn = site(bench)
    old_file = str(Path(ctx.database().database).resolve())
    worker = spawn(bench, "worker", "--queue", "default")
    try:
        manual.run_job(ctx, conn, "bgapp.tasks.seen", force=True)
        wait_for(lambda: _statuses(bench) == ["complete"], 60, "the first run", worker)
        # after its first fork the worker holds the site's file open for its horses (warm.keep_open)
        wait_for(lambda: old_file in _held(worker.pid), 30, "the worker to hold the database open", worker)
        ctx.close()
        new_file = bench / "sites" / "default" / "moved.sqlite3"
        update_site_config(ctx.site, {"db_url": f"sqlite:///{new_file}"})
        moved, conn = migrated(bench, T0)
        manual.run_job(moved, conn, "bgapp.tasks.seen", force=True)
        moved.close()
        wait_for(lambda: _statuses(bench) == ["complete"], 60, "the run in the new database", worker)
        wait_for(lambda: old_file not in _held(worker.pid), 30, "the worker to let go of the old file", worker)
        assert str(new_file.resolve()) in _held(worker.pid)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    update_site_config(open_site(str(bench)).site, {"db_url": f"sqlite:///{old_file}"})
    assert _statuses(bench) == ["complete"]  # the old database got nothing more
