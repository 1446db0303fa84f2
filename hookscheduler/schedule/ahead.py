"""Claim ahead, release at the slot: which sites the ``schedule`` loop claims before their slot, and how far.

A pass commits its claim and its ledger rows before it sends anything (I2, I3 of :mod:`.claim`), and on
PostgreSQL a commit waits for the write-ahead log to reach the disk: 0.4-2.5 ms on the path from a slot to its
send, per site, so the last of a hundred sites sharing a slot was served hundreds of milliseconds late. The loop
therefore runs a site's pass *as of* its next slot S a moment before S (:meth:`.step.SiteStep.claim_ahead`):
the slot is decided, claimed and committed before S, and its runs are held in memory; the first cycle at or
after S *releases* them first thing, every site's held runs in one round trip to Redis, then marks them sent.

What keeps this safe is I10, nothing is sent before its slot (:mod:`.outbox`): the held runs are committed
outbox rows, which no pass of any process sends before S, so a process killed while holding loses nothing
(another process's pass, or its own after a restart, sends them at S or later, never before).

The *window*, how long before S a slot is claimed, is measured in real time (what a site's visit costs: its pass and
the rest of the claim) and converted to the scheduler's clock (:func:`clock_seconds`: the same on the wall clock,
faster on the chaos run's simulated one). It is at least :data:`MIN_WINDOW`, and grows with the measured cost of a
visit times the number of sites sharing the slot (times :data:`MARGIN`), up to the site's ``scheduler_claim_ahead``
(a setting; 0: claiming ahead off). What it costs in meaning (docs/policies.md, "Claimed ahead"): a slot is decided
up to the window before its time, so a pause, a disable or an edit made inside the window takes effect from the next
slot, and a "skip if still running" check is made at the claim.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..timing import clock

#: The shortest window (real seconds): the loop woke this early for a slot before it claimed ahead, so a slot
#: shared by few sites is claimed as early as the loop already woke for it.
MIN_WINDOW = 0.1
#: The window covers this many times the measured cost of the passes due at a slot: passes vary (a connection
#: to reopen, a batch of catch-up slots), and a pass that ends after the slot costs the slot its lead.
MARGIN = 2.0
#: The cost of a pass (real seconds) assumed before any was measured: on the high side (a PostgreSQL pass that
#: reconnects past the connection budget costs tens of ms on a loaded host), so that the first slot many sites
#: share is not claimed too late; one site's window stays the minimum (2 x 0.02 s < 0.1 s).
FIRST_COST = 0.02
#: How much each measured pass moves the running cost (an exponential average).
WEIGHT = 0.3
#: Real seconds after the slot of a run another process claimed ahead and has not sent (its outbox row) at which
#: a process that does not hold it wakes to send it: the holder releases it at the slot, and a process waking at
#: the slot itself would only re-send it alongside (RQ stores it once, I4), extra work right at the slot for every
#: site and process. A holder killed before the slot has its runs sent this much after it.
OWED_GRACE = 1.0


@dataclass(frozen=True)
class Candidate:
    """A site that could be claimed ahead: its name, its next slot and its ``scheduler_claim_ahead``."""

    name: str
    slot: datetime
    cap: float


@dataclass(frozen=True)
class Plan:
    """What to claim ahead at ``now``: the sites (earliest slot first), and the next instant at which another
    site's slot comes within its window (None: none will; the loop sleeps until then at most)."""

    claim: list[Candidate]
    wake_at: datetime | None


def window(cost: float, sites: int, cap: float) -> float:
    """The window (real seconds) for a slot ``sites`` sites share, each pass costing ``cost``: at least
    :data:`MIN_WINDOW`, :data:`MARGIN` times their passes' cost, at most ``cap`` (0: claiming ahead off)."""
    if cap <= 0:
        return 0.0
    return min(cap, max(MIN_WINDOW, MARGIN * cost * sites))


def clock_seconds(real: float) -> float:
    """``real`` seconds as seconds of the scheduler's clock: the same on the wall clock; on a simulated clock
    (:mod:`hookscheduler.timing.clock`) as many of its seconds as pass in that real time."""
    if clock.SIM is None:
        return real
    unit = 1e-3  # small: the simulated clock caps long sleeps, not short ones
    per = clock.real_seconds(unit)
    return real * unit / per if per > 0 else real


def plan(candidates: Sequence[Candidate], now: datetime, cost: float) -> Plan:
    """The sites whose slot is within its window at ``now`` (a slot at or before ``now`` is no candidate: the
    cycle steps it as usual), and when the next one will be. Pure: the loop gives the candidates, the measured
    cost of a pass and ``now``, whatever clock that is."""
    sharing = Counter(c.slot for c in candidates)
    claim: list[Candidate] = []
    wake_at: datetime | None = None
    for c in candidates:
        if c.slot <= now:
            continue
        w = window(cost, sharing[c.slot], c.cap)
        if w <= 0:
            continue
        opens = c.slot - timedelta(seconds=clock_seconds(w))
        if opens <= now:
            claim.append(c)
        elif wake_at is None or opens < wake_at:
            wake_at = opens
    claim.sort(key=lambda c: c.slot)  # stable: the caller's order (its turn) within a slot
    return Plan(claim, wake_at)


def owed_wake(owed: datetime | None, earliest: datetime | None) -> datetime | None:
    """A site's next wake-up: its jobs' ``earliest`` slot, or :data:`OWED_GRACE` after the slot of a run claimed
    ahead and not yet sent (``owed``), if that is sooner."""
    if owed is None:
        return earliest
    at = owed + timedelta(seconds=clock_seconds(OWED_GRACE))
    return at if earliest is None or at < earliest else earliest


def measured(previous: float, seconds: float) -> float:
    """The running cost of a pass after one more took ``seconds`` (real)."""
    return (1 - WEIGHT) * previous + WEIGHT * seconds


__all__ = ["FIRST_COST", "MARGIN", "MIN_WINDOW", "OWED_GRACE", "Candidate", "Plan", "clock_seconds", "measured",
           "owed_wake", "plan", "window"]
