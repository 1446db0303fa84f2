"""Operator actions and queries on Scheduled Job Types (the library behind ``hookscheduler jobs ...``)."""

from __future__ import annotations

import getpass
import socket
from datetime import datetime
from typing import Any

import peewee as pw

from .db import write_txn
from .exceptions import JobNotFound
from .models import ScheduledJobLog, ScheduledJobType, utcnow

JOB_COLUMNS = (
    "name", "app", "method", "frequency", "cron_format", "queue", "timeout", "catchup", "catchup_limit", "overlap",
    "stopped", "stopped_note", "stopped_by", "stopped_at", "removed", "removed_at", "last_execution",
    "next_execution", "created_at", "modified_at",
)


def actor() -> str:
    """Who is acting, for the audit columns: ``user@host``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def get_job(name: str, include_removed: bool = True) -> ScheduledJobType:
    query = ScheduledJobType.select().where(ScheduledJobType.name == name)
    if not include_removed:
        query = query.where(ScheduledJobType.removed == False)  # noqa: E712
    row: ScheduledJobType | None = query.first()
    if row is None:
        close = [r.name for r in ScheduledJobType.select(ScheduledJobType.name)
                 .where(ScheduledJobType.name.contains(name.rsplit(".", 1)[-1])).limit(3)]
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `hookscheduler jobs list --all`"
        raise JobNotFound(f"job {name!r} not found{hint}")
    return row


def list_jobs(include_removed: bool = False) -> list[dict[str, Any]]:
    """Every job with its columns plus the status and time of its latest log row."""
    query = ScheduledJobType.select().order_by(ScheduledJobType.app, ScheduledJobType.name)
    if not include_removed:
        query = query.where(ScheduledJobType.removed == False)  # noqa: E712
    rows = list(query)
    latest = _latest_logs([r.id for r in rows])
    out = []
    for row in rows:
        item = {c: getattr(row, c) for c in JOB_COLUMNS}
        log = latest.get(row.id)
        item["last_status"] = log.status if log else None
        item["last_log_at"] = (log.finished_at or log.started_at or log.scheduled_for) if log else None
        out.append(item)
    return out


def _latest_logs(job_ids: list[int]) -> dict[int, ScheduledJobLog]:
    if not job_ids:
        return {}
    # The newest run of each listed job, in one query (skipped/missed slots are not runs).
    newest = (ScheduledJobLog.select(pw.fn.MAX(ScheduledJobLog.id))
              .where(ScheduledJobLog.job.in_(job_ids) & ScheduledJobLog.status.not_in(["skipped", "missed"]))
              .group_by(ScheduledJobLog.job))
    return {log.job_id: log for log in ScheduledJobLog.select().where(ScheduledJobLog.id.in_(newest))}


def set_stopped(db: pw.Database, name: str, stopped: bool, note: str | None = None, who: str | None = None,
                now: datetime | None = None) -> ScheduledJobType:
    """The operator's toggle. Honoured by the next tick; re-enabling never causes a burst, because slots that
    passed while stopped were logged as skipped and ``next_execution`` kept moving forward."""
    now = now or utcnow()
    with write_txn(db):
        row = get_job(name)
        values: dict[str, Any] = {"stopped": stopped, "modified_at": now}
        # The audit columns record the latest toggle either way (who stopped it, or who re-enabled it).
        values.update(stopped_note=note, stopped_by=who or actor(), stopped_at=now)
        ScheduledJobType.update(values).where(ScheduledJobType.id == row.id).execute()
    return get_job(name)
