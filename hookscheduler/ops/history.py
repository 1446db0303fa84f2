"""Queries on the Scheduled Job Log: a job's run history, and the slots that did not run (and why).

The log is the slot ledger: one row per slot or stretch of slots the scheduler decided about. So
"did it run last night?" is a query on ``scheduled_for``, and "what did we miss?" is the rows whose status is
``missed`` or ``skipped`` plus the runs that covered several slots at once (a coalesced catch-up).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..exceptions import JobNotFound
from ..states import ACTIVE_STATUSES, NOT_RUN, OUTCOMES, LedgerStatus
from ..store import ledger_reads
from ..store.models import ScheduledJobLog
from .jobs import get_job

#: The log columns every listing emits, in this order: the table's own column names, a stable JSON contract.
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
            limit: int = 50, until: datetime | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Log rows newest first (by slot), optionally of one job (which must exist), one status, a time window."""
    job_id = get_job(job).id if job is not None else None
    return [log_dict(r) for r in ledger_reads.newest_rows(job_id, status, since, until, limit, offset)]


def iter_history(job: str | None = None, status: str | None = None, since: datetime | None = None,
                 limit: int = 50) -> Iterator[dict[str, Any]]:
    """:func:`history`'s rows one at a time, read a page at a time: a listing of 100,000 rows with their
    tracebacks must not hold them all (``jobs history --limit 100000``). An unknown job raises
    :class:`JobNotFound` at the call, before any row."""
    job_id = get_job(job).id if job is not None else None
    return _rows(ledger_reads.newest_rows_paged(job_id, status, since, limit))


def _rows(pages: Iterable[list[ScheduledJobLog]]) -> Iterator[dict[str, Any]]:
    for page in pages:
        yield from (log_dict(r) for r in page)


def log_row(row_id: int) -> dict[str, Any]:
    """One ledger row by id (the target of a timeline cell's link); JobNotFound when it is gone (pruned)."""
    row = ledger_reads.row_by_id(row_id)
    if row is None:
        raise JobNotFound(f"log row {row_id} not found (pruned after log_retention_days, or never written)")
    return log_dict(row)


#: The narrow columns of a timeline cell: no traceback, so a strip of thousands of slots reads little.
CELL_COLUMNS = ("id", "scheduled_for", "trigger", "status", "reason", "slots", "first_slot", "last_slot",
                "enqueued_at", "started_at", "finished_at", "duration")


def slot_cells(job: str, since: datetime, until: datetime, limit: int = 5000) -> list[dict[str, Any]]:
    """The latest ``limit`` ledger rows of one job whose slot lies in ``[since, until)``, oldest first, narrow
    columns only: the cells of a slot timeline. Reads the ``(job_id, scheduled_for)`` index range, so its cost is the
    rows shown, not the size of the ledger."""
    return ledger_reads.latest_in_window(get_job(job).id, since, until, CELL_COLUMNS, limit)


def cell_kind(cell: dict[str, Any], late_after: float) -> str:
    """Pure: what a timeline cell shows: ``complete`` / ``failed`` / ``missed`` / ``skipped`` / ``late`` (a run
    sent more than ``late_after`` seconds after its slot, or a catch-up run) / ``running`` (queued or started)."""
    status = str(cell["status"])
    if status in ("missed", "skipped"):
        return status
    if status in ("queued", "started"):
        return "running"
    late = cell["trigger"] == "catch-up" or int(cell["slots"] or 1) > 1 or (
        cell["enqueued_at"] is not None and (cell["enqueued_at"] - cell["scheduled_for"]).total_seconds() > late_after)
    if status == "failed":
        return "failed"
    return "late" if late else "complete"


#: Ledger columns the metrics counter reads, in order.
SCAN_COLUMNS = ("id", "job_name", "status", "trigger", "reason", "slots", "scheduled_for", "enqueued_at",
                "finished_at", "duration", "created_at")


def ledger_after(first_id: int, limit: int) -> list[tuple[Any, ...]]:
    """Ledger rows with ``id >= first_id`` in id order (the primary key's range), as tuples of
    :data:`SCAN_COLUMNS`: how :mod:`hookscheduler.metrics` follows the ledger without reading it twice."""
    return ledger_reads.rows_from_id(first_id, SCAN_COLUMNS, limit)


_REASON_PREFIXES = (("job stopped", "stopped"), ("scheduler inactive", "scheduler_inactive"),
                    ("scheduler disabled", "scheduler_inactive"), ("previous run", "overlap"),
                    ("no scheduler pass", "no_scheduler"))
_REASON_WORDS = (("catchup_limit", "catchup_limit"), ("passed while the scheduler was inactive", "scheduler_inactive"),
                 ("(jobs skip-next)", "skip_next"), ("(purge-jobs", "purged"),
                 ("(rq-jobs cancel)", "canceled"), ("(rq-jobs delete)", "deleted"),
                 ("run not enqueued: previous run", "overlap"))


def ledger_max_id() -> int | None:
    """The highest ledger id (the primary key's last entry), None when the ledger is empty."""
    return ledger_reads.max_id()


def reason_kind(status: str, reason: str | None) -> str:
    """Pure: a missed or skipped row's reason as a short, fixed word (a metric label must not carry free
    text): ``stopped``, ``scheduler_inactive``, ``overlap``, ``no_scheduler``, ``catchup_limit``,
    ``skip_next``, ``purged``, ``canceled``, ``deleted``, or ``other``."""
    text = reason or ""
    for prefix, kind in _REASON_PREFIXES:
        if text.startswith(prefix):
            return kind
    for needle, kind in _REASON_WORDS:
        if needle in text:
            return kind
    return "no_scheduler" if status == "missed" else "other"


@dataclass
class MissedGroup:
    """The slots of one job that did not run on time: not run at all, or coalesced into a later run. The counts
    cover the whole window; ``entries`` are the job's rows among the newest shown, so they may be fewer than
    ``rows``."""

    job_name: str
    missed_slots: int = 0  # slots no scheduler pass served on time and that never ran
    skipped_slots: int = 0  # slots deliberately not run (stopped, paused, overlap, operator)
    caught_up_slots: int = 0  # slots that ran late, in catch-up runs (one run may cover several)
    caught_up_runs: int = 0  # the catch-up runs that covered them
    rows: int = 0  # ledger rows of the job in the window (missed, skipped and catch-up rows)
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        """Some of the job's rows in the window are not among ``entries``."""
        return len(self.entries) < self.rows

    def as_dict(self) -> dict[str, Any]:
        return {"job_name": self.job_name, "missed_slots": self.missed_slots, "skipped_slots": self.skipped_slots,
                "caught_up_slots": self.caught_up_slots, "caught_up_runs": self.caught_up_runs,
                "total": self.rows, "truncated": self.truncated, "entries": self.entries}


@dataclass
class MissedReport:
    """Per-job totals over the whole window, and the newest ``limit`` rows of it (``shown`` of ``total``)."""

    groups: list[MissedGroup]
    total: int  # rows in the window
    shown: int  # rows among the groups' entries
    limit: int

    @property
    def truncated(self) -> bool:
        return self.shown < self.total


def outcome(row: dict[str, Any]) -> str:
    """What became of the slots of a ``missed`` / ``skipped`` / catch-up row, in words."""
    if row["status"] in NOT_RUN:
        return "not run"
    what = "run" if row["slots"] <= 1 else f"one run for {row['slots']} slots"
    return f"{what}, {row['status']} (rq {row['rq_job_id'] or '-'})"


def missed(since: datetime | None = None, job: str | None = None, limit: int = 1000) -> MissedReport:
    """Every missed or skipped slot and every catch-up run (rows with more than one slot, or trigger
    ``catch-up``), grouped per job, groups by job name: each job's counts over the whole window (one grouped
    query), and the newest ``limit`` rows of the window as the groups' entries, newest first. Manual and event
    runs are left out: they are requests, not slots."""
    job_id = get_job(job).id if job is not None else None
    rows = [log_dict(r) for r in ledger_reads.slots_not_run_on_time(job_id, since, limit)]
    groups = _with_entries(rows)  # the counts are the window's, not the shown rows'
    for name, status, count, slots in ledger_reads.slots_not_run_totals(job_id, since):
        _count(groups.setdefault(name, MissedGroup(name)), status, count, slots)
    total = sum(g.rows for g in groups.values())
    return MissedReport([groups[name] for name in sorted(groups)], max(total, len(rows)), len(rows), limit)


def group_missed(rows: Iterable[dict[str, Any]]) -> list[MissedGroup]:
    """Pure: fold log dicts into per-job groups with slot counts."""
    rows = list(rows)
    groups = _with_entries(rows)
    for row in rows:
        _count(groups[row["job_name"]], row["status"], 1, int(row["slots"] or 1))
    return [groups[name] for name in sorted(groups)]


def _with_entries(rows: list[dict[str, Any]]) -> dict[str, MissedGroup]:
    """Per-job groups holding the rows as entries, with nothing counted yet."""
    groups: dict[str, MissedGroup] = {}
    for row in rows:
        groups.setdefault(row["job_name"], MissedGroup(row["job_name"])).entries.append(
            dict(row, outcome=outcome(row)))
    return groups


def _count(group: MissedGroup, status: str, rows: int, slots: int) -> None:
    """Add ``rows`` ledger rows of ``status`` covering ``slots`` slots to the job's counts."""
    group.rows += rows
    if status == LedgerStatus.MISSED:
        group.missed_slots += slots
    elif status == LedgerStatus.SKIPPED:
        group.skipped_slots += slots
    else:  # a catch-up run covers its missed slots plus, possibly, the on-time one
        group.caught_up_slots += slots
        group.caught_up_runs += rows


def failed_count(since: datetime | None = None) -> int:
    """How many failed runs have a slot at or after ``since`` (what ``history(status="failed")`` pages through)."""
    return ledger_reads.count_rows(LedgerStatus.FAILED, since)


__all__ = [
    "CELL_COLUMNS", "LOG_COLUMNS", "SCAN_COLUMNS", "MissedGroup", "MissedReport", "cell_kind", "error_summary",
    "failed_count", "group_missed", "history", "ledger_after", "ledger_max_id", "log_dict", "log_row", "missed",
    "reason_kind", "slot_cells",
]
