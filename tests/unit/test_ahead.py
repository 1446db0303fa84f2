"""The claim-ahead window and plan (schedule/ahead.py): pure, at chosen instants."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.schedule.ahead import MARGIN, MIN_WINDOW, Candidate, measured, plan, window

NOW = datetime(2026, 1, 5, 10, 59, 59)
SLOT = datetime(2026, 1, 5, 11, 0)


def test_the_window_is_at_least_the_lead_grows_with_the_sites_sharing_a_slot_and_stops_at_the_cap():
    assert window(0.002, 1, 2.0) == MIN_WINDOW
    assert window(0.002, 100, 2.0) == pytest.approx(MARGIN * 0.002 * 100)  # 0.4 s for 100 sites
    assert window(0.002, 1000, 2.0) == 2.0  # capped
    assert window(0.002, 1000, 0) == 0.0  # off
    assert window(0.002, 1, 0.05) == 0.05  # a cap below the lead is the cap


def test_plan_claims_the_sites_whose_window_has_opened_and_says_when_the_next_opens():
    one = [Candidate("a", SLOT, 2.0)]
    assert plan(one, SLOT - timedelta(seconds=0.05), 0.002).claim == one
    far = plan(one, SLOT - timedelta(seconds=1), 0.002)
    assert far.claim == [] and far.wake_at == SLOT - timedelta(seconds=MIN_WINDOW)
    assert plan(one, SLOT, 0.002) == plan([], SLOT, 0.002)  # due now: stepped as usual, not claimed ahead
    # 100 sites on one slot: claimed 0.4 s ahead; a site alone on a later slot keeps the short window
    many = [Candidate(f"s{i}", SLOT, 2.0) for i in range(100)] + [Candidate("late", SLOT + timedelta(seconds=1), 2.0)]
    p = plan(many, SLOT - timedelta(seconds=0.3), 0.002)
    assert [c.name for c in p.claim] == [f"s{i}" for i in range(100)]
    assert p.wake_at == SLOT + timedelta(seconds=1) - timedelta(seconds=MIN_WINDOW)
    assert plan([Candidate("off", SLOT, 0)], SLOT - timedelta(seconds=0.05), 0.002).claim == []
    # within a slot the caller's order (its turn) is kept: processes sharing sites start at different ones
    early = Candidate("early", SLOT - timedelta(seconds=0.01), 2.0)
    turn = [Candidate("b", SLOT, 2.0), Candidate("a", SLOT, 2.0), early]
    assert [c.name for c in plan(turn, SLOT - timedelta(seconds=0.05), 0.002).claim] == ["early", "b", "a"]


def test_the_measured_cost_follows_the_passes():
    cost = 0.005
    for _ in range(30):
        cost = measured(cost, 0.001)
    assert cost == pytest.approx(0.001, rel=0.01)
