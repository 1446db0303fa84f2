"""hookscheduler: Frappe-style ``scheduler_events`` for any Python app, on Redis + RQ, exactly once per slot.

Public API (DESIGN §7) is exported here; see the README for the guarantees.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .enqueue import (
    enqueue,
    enqueue_batches,
    enqueue_doc,
    get_job,
    get_job_status,
    init,
    is_job_enqueued,
)
from .exceptions import QueueNotFound
from .runner import JobContext, job_context

__all__ = [
    "JobContext",
    "QueueNotFound",
    "__version__",
    "enqueue",
    "enqueue_batches",
    "enqueue_doc",
    "get_job",
    "get_job_status",
    "init",
    "is_job_enqueued",
    "job_context",
]
