"""The bounded chaos run (part of the default ``python -m pytest``): a simulated week on PostgreSQL with 3
schedulers and 3 workers, and a day and a half on SQLite with 2 of each, under seeded faults, checked by an
independent oracle. See README.md here for the long run and what the figures mean."""

from __future__ import annotations

import os

import pytest

from .harness import Config, Harness
from .oracle import check

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(420)]

SEED = int(os.environ.get("HS_CHAOS_SEED", "20261201"))
RATE = 6000.0  # simulated seconds per real second: a week in 101 s
TICK = 3600
NOISE = 2.0  # real seconds of scheduling noise tolerated on a shared 2-core machine (other suites run too)


@pytest.mark.parametrize(("db", "days", "procs"), [("postgres", 7.5, 3), ("sqlite", 1.5, 2)])
def test_chaos_bounded(db: str, days: float, procs: int, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = Config(db=db, seed=SEED, schedulers=procs, workers=procs, sim_days=days, rate=RATE, tick=TICK,
                 fault_gap=1.5, settle=6.0, light=True)
    harness = Harness(cfg)
    try:
        record = harness.run()
        report = check(record)
    finally:
        harness.cleanup()
    with capsys.disabled():
        print(f"\n[chaos {db}, seed {SEED}]\n{report.text()}")
    assert report.duplicates == 0, report.text()
    assert report.unexplained_missing == 0, report.text()
    assert report.stuck == 0, report.text()
    assert not report.anomalies, report.text()
    assert report.slots_checked > (500 if db == "postgres" else 100)
    assert sum(report.faults.values()) >= (15 if db == "postgres" else 3), report.faults
    # back on time within one tick after every fault (plus two seconds of real-time noise on a busy machine)
    assert report.worst_after_recovery <= TICK + NOISE * RATE, report.text()
