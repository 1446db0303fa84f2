"""The chaos oracle's end-of-run check (tests/chaos/oracle.py, ``held_for_later``): a run claimed under a clock
ahead for a slot after the run's end is held unsent until that slot (I10), so it is waiting, not stuck; any other
run still queued at the end stays stuck."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.chaos.oracle import LogRow, held_for_later

STOP = datetime(2026, 1, 16, 12, 4)
AHEAD = 20 * 3600.0  # the largest clock excursion of the run


def _row(slot: datetime, status: str = "queued", enqueued_at: datetime | None = None) -> LogRow:
    return LogRow(1, 1, "j", slot, "schedule", status, None, 1, slot, slot, "rq1", enqueued_at,
                  slot - timedelta(seconds=100), None, None)


def test_a_run_held_for_a_slot_after_the_end_within_the_excursion_is_waiting():
    assert held_for_later(_row(STOP + timedelta(hours=12)), STOP, AHEAD)


def test_a_run_queued_for_a_slot_before_the_end_is_stuck():
    assert not held_for_later(_row(STOP - timedelta(minutes=1)), STOP, AHEAD)


def test_a_sent_run_or_a_started_one_is_not_held():
    later = STOP + timedelta(hours=1)
    assert not held_for_later(_row(later, enqueued_at=later), STOP, AHEAD)
    assert not held_for_later(_row(later, status="started"), STOP, AHEAD)


def test_no_clock_ahead_no_slot_after_the_end():
    assert not held_for_later(_row(STOP + timedelta(hours=1)), STOP, 0.0)
    assert not held_for_later(_row(STOP + timedelta(hours=21)), STOP, AHEAD)  # beyond the largest excursion
