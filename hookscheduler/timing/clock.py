"""The scheduler's "now": the wall clock, unless a test harness installed another source of time.

Every timestamp the scheduler and the worker write comes from :func:`utcnow` (``models.utcnow`` is this
function), every sleep of the loop goes through :func:`real_seconds`, and every RQ job timeout through
:func:`rq_timeout`; so one switch covers them all. In production nothing is installed: :func:`utcnow` *is* the
plain wall-clock function and the other two are the identity. No indirection, nothing to measure, and no
environment variable read.

A harness that runs processes on a simulated clock (the chaos run: several processes, whose clocks it steps
at once, forward or back) calls :func:`install` in each of them before it imports the rest of hookscheduler
(``tests/rig``): modules bind these functions when they are imported.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Protocol


class TimeSource(Protocol):
    """Another source of time: now, and how long in real seconds a span of its seconds lasts."""

    def utcnow(self) -> datetime:
        """Naive UTC now."""
        ...

    def real_seconds(self, sim_seconds: float) -> float:
        """Real seconds to sleep for a span of this source's seconds."""
        ...

    def rq_timeout(self, sim_seconds: int) -> int:
        """The RQ job timeout (whole real seconds, at least 1) for a job's ``timeout``."""
        ...


#: The installed source (None: the wall clock).
SIM: TimeSource | None = None


def wall_utcnow() -> datetime:
    """Naive UTC now from the system clock: the storage format of every timestamp column."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utcnow() -> datetime:
    """Naive UTC now from the system clock (the same body as :func:`wall_utcnow`: no extra call)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def real_seconds(sim_seconds: float) -> float:
    """Real seconds for a span of scheduler seconds (the identity on the wall clock)."""
    return sim_seconds


def rq_timeout(sim_seconds: int) -> int:
    """The RQ job timeout for a job's ``timeout`` (the identity on the wall clock)."""
    return sim_seconds


def install(source: TimeSource) -> None:
    """Make ``source`` this process's clock. Only a test harness does this, first thing: a module imported
    before would keep the wall clock it bound, so that is refused rather than half done."""
    global SIM, utcnow, real_seconds, rq_timeout
    early = sorted(name for name in sys.modules if name.startswith("hookscheduler.")
                   and name not in {"hookscheduler.timing", "hookscheduler.timing.clock"})
    if early:
        raise RuntimeError(f"install the clock before importing the rest of hookscheduler (already imported: "
                           f"{', '.join(early[:5])})")
    SIM = source
    utcnow = source.utcnow  # type: ignore[assignment]
    real_seconds = source.real_seconds  # type: ignore[assignment]
    rq_timeout = source.rq_timeout  # type: ignore[assignment]
