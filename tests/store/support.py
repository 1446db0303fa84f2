"""What the store's contract and read tests share: the instant they start at, and a job row made directly."""

from __future__ import annotations

from datetime import datetime

from hookscheduler.store.models import ScheduledJobType

T0 = datetime(2026, 1, 5, 10, 0)


def make_job(name: str, next_execution: datetime | None = T0, **kw) -> ScheduledJobType:
    """A ``scheduled_job_type`` row (hourly on the default queue unless ``kw`` says otherwise)."""
    values = {
        "app": "app1",
        "method": f"app1.tasks.{name}",
        "frequency": "Hourly",
        "queue": "default",
        "timeout": 300,
        "next_execution": next_execution,
        **kw,
    }
    return ScheduledJobType.create(name=name, **values)
