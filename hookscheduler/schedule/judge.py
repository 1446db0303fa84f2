"""Is a job's previous run still going? The ledger's view checked against RQ's, as a pure judgement.

Every disagreement between the two has a rule, so no run blocks its job for ever (Frappe asks RQ alone, and a
run whose worker died wedges its job until RQ's cleanup). The rules, as a table: docs/exactly-once.md, I6.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..states import LedgerStatus

ABANDON_GRACE = 60  # seconds past a run's timeout after which a "started" run is declared abandoned


@dataclass(frozen=True)
class Verdict:
    """``active``: still blocks its job; otherwise the ledger row becomes ``status`` with ``reason``."""

    active: bool
    status: str | None = None
    reason: str | None = None
    resend: bool = False
    blocking_reason: str | None = None


def _fmt(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "?"


#: RQ's own statuses (not the ledger's) of a job that has ended.
RQ_OVER = ("finished", "failed", "stopped", "canceled")


def judge(*, db_status: str, enqueued_at: datetime | None, started_at: datetime | None,
          rq_status: str | None, timeout: int, now: datetime, rq_job_id: str | None = None,
          refused_at: datetime | None = None, outcome: str | None = None, alive: bool | None = None) -> Verdict:
    """The verdict on one ledger row whose status is ``queued`` or ``started``.

    ``refused_at``: when a later delivery of the run was refused; ``outcome``: the run's outcome as its worker
    left it in Redis (``complete`` / ``failed``) when the ledger could not be written. ``alive``: whether the RQ
    worker that runs it still keeps its key in Redis (a TTL Redis times, renewed by the worker's heartbeat),
    None when that is not known. A run whose worker is alive is never declared abandoned by comparing
    ``started_at`` (the worker's clock) with ``now`` (this host's): a scheduler whose clock is ahead would
    abandon runs still going and defeat ``overlap=skip``; the worker enforces the timeout on its own clock."""
    if refused_at is not None and rq_status in RQ_OVER:
        if outcome is not None:
            return Verdict(False, outcome, f"{outcome} (outcome taken from Redis: the worker could not record it, "
                                           "and a second delivery was refused)")
        # RQ's outcome is the refused delivery's: the run itself started, at the latest, when it was refused
        rq_status, db_status, started_at = None, LedgerStatus.STARTED, started_at or refused_at
    overdue = started_at is not None and now > started_at + timedelta(seconds=timeout + ABANDON_GRACE)
    abandoned = Verdict(False, LedgerStatus.FAILED,
                        f"abandoned: still running {timeout}+{ABANDON_GRACE} s after it started at "
                        f"{_fmt(started_at)} (worker died or hung)")
    if rq_status in ("queued", "deferred", "scheduled"):
        return Verdict(True, blocking_reason=f"previous run {rq_job_id or ''} still queued "
                                             f"(since {_fmt(enqueued_at)})".replace("  ", " "))
    if rq_status == "started" or (rq_status is None and db_status == LedgerStatus.STARTED):
        if alive is False and rq_status == "started":
            return Verdict(False, LedgerStatus.FAILED, f"abandoned: its worker is gone from Redis (it died; the run "
                                                       f"started at {_fmt(started_at)})")
        if overdue and not (alive and rq_status == "started"):
            return abandoned
        return Verdict(True, blocking_reason=f"previous run {rq_job_id or ''} still running "
                                             f"(since {_fmt(started_at)})".replace("  ", " "))
    if rq_status == "finished":
        return Verdict(False, LedgerStatus.COMPLETE, "completed (outcome taken from RQ: the worker did not record it)")
    if rq_status in RQ_OVER:
        return Verdict(False, LedgerStatus.FAILED,
                       f"{rq_status} in RQ (outcome taken from RQ: the worker did not record it)")
    if rq_status is None and db_status == LedgerStatus.QUEUED:
        if enqueued_at is None:
            return Verdict(True, blocking_reason="previous run claimed and about to be sent")
        return Verdict(True, resend=True,
                       blocking_reason="previous run was lost from Redis before it started; re-sent")
    # an unknown RQ status: be conservative for a while, then stop blocking
    if overdue:
        return abandoned
    return Verdict(True, blocking_reason=f"previous run in RQ state {rq_status!r}")
