"""Named states: the values the tables store and the JSON outputs print.

They are ``StrEnum`` s, so a member *is* its string: it is written to the database and to JSON as is, compares
equal to the string a row holds, and prints as its value. The values never change (operators query them with
SQL); rows read back from the database hold plain strings, which compare equal to the members.
"""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10
    class StrEnum(str, Enum):
        """``enum.StrEnum`` before Python 3.11: a str whose ``str()`` and format are its value."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str(self.value).__format__(spec)


class LedgerStatus(StrEnum):
    """``scheduled_job_log.status``: what became of a slot (or a stretch of slots)."""

    QUEUED = "queued"  # a run claimed (and, once ``enqueued_at`` is set, sent to RQ), not started yet
    STARTED = "started"  # a worker started the run
    COMPLETE = "complete"
    FAILED = "failed"
    MISSED = "missed"  # no scheduler pass served the slot in time, and the catch-up policy did not run it
    SKIPPED = "skipped"  # deliberately not run: job stopped, scheduler inactive, overlap, operator


#: A run that is not over yet: it blocks its job's next slot under ``overlap="skip"``.
ACTIVE_STATUSES: tuple[LedgerStatus, ...] = (LedgerStatus.QUEUED, LedgerStatus.STARTED)
#: Rows that record slots that did not run.
NOT_RUN: tuple[LedgerStatus, ...] = (LedgerStatus.MISSED, LedgerStatus.SKIPPED)
#: The outcomes a worker records for a run it ran.
OUTCOMES: tuple[LedgerStatus, ...] = (LedgerStatus.COMPLETE, LedgerStatus.FAILED)


class Trigger(StrEnum):
    """``scheduled_job_log.trigger``: why a row was written."""

    SCHEDULE = "schedule"  # the slot's own time
    CATCH_UP = "catch-up"  # a missed slot run late
    MANUAL = "manual"  # ``jobs run``
    EVENT = "event"  # ``trigger-scheduler-event``
    BACKFILL = "backfill"  # ``jobs backfill``: a past slot no run served, run on request


#: Triggers of runs that serve a slot; manual and event runs are requests, not slots.
SLOT_TRIGGERS: tuple[Trigger, ...] = (Trigger.SCHEDULE, Trigger.CATCH_UP, Trigger.BACKFILL)
REQUEST_TRIGGERS: tuple[Trigger, ...] = (Trigger.MANUAL, Trigger.EVENT)


class CatchUp(StrEnum):
    """A job's ``catchup`` policy: what to do with slots no pass served in time."""

    ONCE = "once"  # one run covers them all
    SKIP = "skip"  # record them as missed, run none
    ALL = "all"  # run each, up to ``catchup_limit``


class Overlap(StrEnum):
    """A job's ``overlap`` policy: what to do with a slot while the previous run is queued or running."""

    SKIP = "skip"  # record the slot as skipped
    ALLOW = "allow"  # run it anyway


class SchedulerStatus(StrEnum):
    """A site's scheduler, as ``scheduler status`` prints it."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    PAUSED = "paused"


__all__ = ["ACTIVE_STATUSES", "NOT_RUN", "OUTCOMES", "REQUEST_TRIGGERS", "SLOT_TRIGGERS", "CatchUp",
           "LedgerStatus", "Overlap", "SchedulerStatus", "StrEnum", "Trigger"]
