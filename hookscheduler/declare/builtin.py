"""hookscheduler's own scheduled jobs, synced by every ``migrate`` like an app's ``scheduler_events``.

They are declared here rather than in a ``hooks.py`` so that they exist on every site whatever apps are
installed; operators see, stop and inspect them like any other job (``jobs list``, ``jobs disable``).
"""

from __future__ import annotations

from collections.abc import Mapping

from .hooks import JobSpec

APP = "hookscheduler"

#: (method, frequency): the daily maintenance slot is spread over the first hour per site (see frequencies).
BUILTIN_JOBS: tuple[tuple[str, str], ...] = (
    ("hookscheduler.retention.prune_logs", "Daily Maintenance"),
)


def builtin_specs(queues: Mapping[str, int]) -> list[JobSpec]:
    """The built-in jobs as specs, on the ``long`` queue with its timeout (as Frappe's maintenance jobs)."""
    return [
        JobSpec(name=method, app=APP, method=method, frequency=frequency, cron_format="", queue="long",
                timeout=int(queues.get("long", 1500)), source=f"{APP}: built-in job {method}")
        for method, frequency in BUILTIN_JOBS
    ]
