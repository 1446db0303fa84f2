"""The test rig: what a test harness plugs into hookscheduler's seams, in its own processes.

Production code reads no test switch. A harness that wants a process on a simulated clock, or dying at a
failpoint, starts it through this package, which reads its own environment variables and installs the rigging
before the rest of hookscheduler is imported:

* ``HS_RIG_CLOCK=<path or inline JSON>``: a :class:`~tests.rig.simclock.SimClock`, given to
  :func:`hookscheduler.timing.clock.install`;
* ``HS_RIG_FAILPOINTS=before_claim,after_send``: the process SIGKILLs itself at those points of a pass, exactly
  as a power cut or the OOM killer would (no ``finally``, no rollback by Python), through
  :func:`hookscheduler.schedule._faults.install`.

``python -m tests.rig <hookscheduler arguments>`` is the ``hookscheduler`` command with the rig installed; a
Python snippet calls :func:`install` first.
"""

from __future__ import annotations

import os
import signal

CLOCK_ENV = "HS_RIG_CLOCK"
FAILPOINTS_ENV = "HS_RIG_FAILPOINTS"


def install() -> None:
    """Install what this process's environment asks for (nothing when it asks for nothing)."""
    value = os.environ.get(CLOCK_ENV, "").strip()
    if value:
        from hookscheduler.timing import clock

        from .simclock import SimClock

        clock.install(SimClock(value))
    points = frozenset(p.strip() for p in os.environ.get(FAILPOINTS_ENV, "").split(",") if p.strip())
    if points:
        from hookscheduler.schedule import _faults

        unknown = points - set(_faults.POINTS)
        if unknown:
            raise SystemExit(f"{FAILPOINTS_ENV}: unknown failpoint(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(_faults.POINTS)}")
        _faults.install(lambda name: _die(name, points))


def _die(name: str, points: frozenset[str]) -> None:
    if name in points:
        os.kill(os.getpid(), signal.SIGKILL)
