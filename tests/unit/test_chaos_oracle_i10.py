"""The chaos oracle's I10 check (tests/chaos/oracle.py, ``sent_early``): a scheduled run that reached Redis
before its slot is an anomaly, unless a clock fault or a worker's own stamp explains the early time."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.chaos.harness import Fault
from tests.chaos.oracle import LogRow, sent_early

SLOT = datetime(2025, 12, 27, 12, 0)
RATE = 6000.0


def _row(enqueued_at: datetime | None, started_at: datetime | None = None) -> LogRow:
    return LogRow(1, 1, "j", SLOT, "schedule", "complete", None, 1, SLOT, SLOT, "rq1", enqueued_at,
                  SLOT - timedelta(seconds=300), None, started_at)


def test_a_run_in_redis_before_its_slot_is_caught():
    assert sent_early(_row(SLOT - timedelta(seconds=1)), [], RATE)
    assert not sent_early(_row(SLOT), [], RATE) and not sent_early(_row(SLOT + timedelta(seconds=5)), [], RATE)
    assert not sent_early(_row(None), [], RATE)


def test_what_the_clock_faults_and_a_workers_stamp_explain_is_not():
    early = SLOT - timedelta(seconds=400)
    assert not sent_early(_row(early, started_at=early), [], RATE)  # stamped by a (skewed) worker at its start
    back = Fault("clock_back", SLOT + timedelta(seconds=10), SLOT - timedelta(seconds=500), "510s")
    assert not sent_early(_row(early), [back], RATE)  # sent at its slot, stamped on the clock stepped back
    ahead = Fault("clock_ahead", early - timedelta(seconds=100), early + timedelta(seconds=600), "7200s")
    assert not sent_early(_row(early), [ahead], RATE)  # decided under a clock ahead: early by design
    unrelated = Fault("clock_back", SLOT + timedelta(days=1), SLOT + timedelta(days=1, seconds=-300), "300s")
    assert sent_early(_row(early), [unrelated], RATE)
