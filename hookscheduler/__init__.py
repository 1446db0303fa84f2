"""hookscheduler: Frappe-style ``scheduler_events`` for any Python app, on Redis + RQ, exactly once per slot.

Public API (DESIGN §7) is exported here; see the README for the guarantees.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .runner import JobContext, job_context

__all__ = ["JobContext", "__version__", "job_context"]
