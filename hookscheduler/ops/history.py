"""Queries on the Scheduled Job Log: a job's run history, and the slots that did not run (and why).

The log is the slot ledger (DESIGN §4): one row per slot or stretch of slots the scheduler decided about. So
"did it run last night?" is a query on ``scheduled_for``, and "what did we miss?" is the rows whose status is
``missed`` or ``skipped`` plus the runs that covered several slots at once (a coalesced catch-up).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..states import ACTIVE_STATUSES, NOT_RUN, OUTCOMES, REQUEST_TRIGGERS, LedgerStatus, Trigger
from ..store.models import ScheduledJobLog
from .jobs import get_job

#: The log columns every listing emits, in this order (DESIGN §4 names).
LOG_COLUMNS = (
    "id", "job_name", "scheduled_for", "trigger", "status", "reason", "slots", "first_slot", "last_slot", "queue",
    "rq_job_id", "enqueued_at", "started_at", "finished_at", "duration", "worker", "traceback", "created_at",
)

RAN: tuple[LedgerStatus, ...] = (*ACTIVE_STATUSES, *OUTCOMES)


def log_dict(row: ScheduledJobLog) -> dict[str, Any]:
    """One log row as the JSON listings show it (column names as keys, times as naive UTC)."""
    out = {c: getattr(row, c) for c in LOG_COLUMNS}
    out["error"] = error_summary(row.traceback)
    return out


def error_summary(traceback: str | None) -> str | None:
    """The line a person reads first in a traceback: its last non-empty line (``RuntimeError: ...``)."""
    if not traceback:
        return None
    lines = [ln.strip() for ln in traceback.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else None


def history(job: str | None = None, status: str | None = None, since: datetime | None = None,
            limit: int = 50, until: datetime | None = None) -> list[dict[str, Any]]:
    """Log rows newest first (by slot), optionally of one job (which must exist), one status, a time window."""
    query = ScheduledJobLog.select()
    if job is not None:
        query = query.where(ScheduledJobLog.job == get_job(job).id)
    if status is not None:
        query = query.where(ScheduledJobLog.status == status)
    if since is not None:
        query = query.where(ScheduledJobLog.scheduled_for >= since)
    if until is not None:
        query = query.where(ScheduledJobLog.scheduled_for <= until)
    query = query.order_by(ScheduledJobLog.scheduled_for.desc(), ScheduledJobLog.id.desc()).limit(limit)
    return [log_dict(r) for r in query]


@dataclass
class MissedGroup:
    """The slots of one job that did not run on time: not run at all, or coalesced into a later run."""

    job_name: str
    missed_slots: int = 0  # slots no scheduler pass served on time and that never ran
    skipped_slots: int = 0  # slots deliberately not run (stopped, paused, overlap, operator)
    caught_up_slots: int = 0  # slots that ran late, in catch-up runs (one run may cover several)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"job_name": self.job_name, "missed_slots": self.missed_slots, "skipped_slots": self.skipped_slots,
                "caught_up_slots": self.caught_up_slots, "entries": self.entries}


def outcome(row: dict[str, Any]) -> str:
    """What became of the slots of a ``missed`` / ``skipped`` / catch-up row, in words."""
    if row["status"] in NOT_RUN:
        return "not run"
    what = "run" if row["slots"] <= 1 else f"one run for {row['slots']} slots"
    return f"{what}, {row['status']} (rq {row['rq_job_id'] or '-'})"


def missed(since: datetime | None = None, job: str | None = None, limit: int = 1000) -> list[MissedGroup]:
    """Every missed or skipped slot and every catch-up run (rows with more than one slot, or trigger
    ``catch-up``), grouped per job, newest first inside a group, groups by job name. Manual and event runs
    are left out: they are requests, not slots."""
    # manual and event runs are requests, not slots: a skipped one is in `jobs history`, not here
    query = ScheduledJobLog.select().where(
        (ScheduledJobLog.status.in_(NOT_RUN) | (ScheduledJobLog.slots > 1)
         | (ScheduledJobLog.trigger == Trigger.CATCH_UP))
        & ScheduledJobLog.trigger.not_in(REQUEST_TRIGGERS))
    if job is not None:
        query = query.where(ScheduledJobLog.job == get_job(job).id)
    if since is not None:
        # a row may cover a stretch: keep it when its latest slot is in the window
        query = query.where(ScheduledJobLog.scheduled_for >= since)
    rows = query.order_by(ScheduledJobLog.scheduled_for.desc(), ScheduledJobLog.id.desc()).limit(limit)
    return group_missed(log_dict(r) for r in rows)


def group_missed(rows: Iterable[dict[str, Any]]) -> list[MissedGroup]:
    """Pure: fold log dicts into per-job groups with slot counts."""
    groups: dict[str, MissedGroup] = {}
    for row in rows:
        group = groups.setdefault(row["job_name"], MissedGroup(row["job_name"]))
        slots = int(row["slots"] or 1)
        if row["status"] == LedgerStatus.MISSED:
            group.missed_slots += slots
        elif row["status"] == LedgerStatus.SKIPPED:
            group.skipped_slots += slots
        else:
            # a catch-up run covers its missed slots plus, possibly, the on-time one
            group.caught_up_slots += slots
        group.entries.append(dict(row, outcome=outcome(row)))
    return [groups[name] for name in sorted(groups)]


__all__ = ["LOG_COLUMNS", "MissedGroup", "error_summary", "group_missed", "history", "log_dict", "missed"]
