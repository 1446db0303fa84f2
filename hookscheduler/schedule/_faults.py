"""Failpoints: named places where a test can make this process die, to prove crash safety.

``HOOKSCHEDULER_FAILPOINTS=after_claim`` (a comma-separated list) makes the process SIGKILL itself when it
reaches that point, exactly as a power cut or the OOM killer would: no ``finally``, no rollback by Python.
Unset (always, in production), :func:`failpoint` costs one set lookup.
"""

from __future__ import annotations

import os
import signal

_ACTIVE = frozenset(p.strip() for p in os.environ.get("HOOKSCHEDULER_FAILPOINTS", "").split(",") if p.strip())

#: The points a pass goes through, in order (see :func:`.claim.run_pass`).
TICK_POINTS = ("before_claim", "after_claim", "after_commit", "after_send")


def failpoint(name: str) -> None:
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
