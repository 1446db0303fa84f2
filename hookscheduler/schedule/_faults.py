"""Failpoints: named places in a pass where a test harness can stop this process, to prove crash safety.

Production installs nothing, and :func:`failpoint` costs one comparison. A harness (``tests/rig``) installs a
hook that SIGKILLs the process at the points it was asked for, exactly as a power cut or the OOM killer would:
no ``finally``, no rollback by Python.
"""

from __future__ import annotations

from collections.abc import Callable

#: The points a pass goes through, in order (see :func:`.claim.run_pass` and :func:`.outbox.send_claimed`).
POINTS = ("before_claim", "after_claim", "after_commit", "after_send")

_hook: Callable[[str], None] | None = None


def install(hook: Callable[[str], None] | None) -> None:
    """Call ``hook(name)`` at every failpoint from now on (None: nothing again)."""
    global _hook
    _hook = hook


def failpoint(name: str) -> None:
    if _hook is not None:
        _hook(name)
