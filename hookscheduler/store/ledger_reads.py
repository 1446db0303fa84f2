"""The ledger as operators read it: the read-only queries behind ``jobs history``, ``jobs missed``, the
dashboard's timelines and the metrics counter's scan (:mod:`hookscheduler.ops.history` words and groups what
they return).

They are peewee queries on the bound site's models, unlike the pass's plain SQL (:mod:`._sql`): none is on a
hot path, and each is written once for both dialects. Which index serves each is decided here: the trouble
index's literal predicate (:data:`~.database.TROUBLE`), the ``(job_id, scheduled_for)`` range, the primary key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import peewee as pw

from ..states import ACTIVE_STATUSES, NOT_RUN, REQUEST_TRIGGERS, LedgerStatus, Trigger
from .database import TROUBLE
from .models import ScheduledJobLog, ScheduledJobType

L = ScheduledJobLog
#: Statuses the trouble index holds every row of (its predicate is implied by them).
_TROUBLE_STATUSES: tuple[LedgerStatus, ...] = (*NOT_RUN, LedgerStatus.FAILED)


def _listing(job_id: int | None, status: str | None, since: datetime | None,
             until: datetime | None) -> pw.ModelSelect[ScheduledJobLog]:
    """The rows a listing filters on: one job, one status, a slot window, each when given."""
    query = L.select()
    if job_id is not None:
        query = query.where(L.job == job_id)
    if status is not None:
        query = query.where(L.status == status)
        if job_id is None and status in _TROUBLE_STATUSES:
            query = query.where(pw.SQL(TROUBLE))  # implied by the status: lets the trouble index serve it
    if since is not None:
        query = query.where(L.scheduled_for >= since)
    if until is not None:
        query = query.where(L.scheduled_for <= until)
    return query


def newest_rows(job_id: int | None = None, status: str | None = None, since: datetime | None = None,
                until: datetime | None = None, limit: int = 50, offset: int = 0) -> list[ScheduledJobLog]:
    """Ledger rows newest first (by slot, then id), of one job, one status and a slot window when given."""
    query = _listing(job_id, status, since, until).order_by(L.scheduled_for.desc(), L.id.desc()).limit(limit)
    if offset:
        query = query.offset(offset)
    return list(query)


def newest_rows_paged(job_id: int | None = None, status: str | None = None, since: datetime | None = None,
                      limit: int = 50, page: int = 1000) -> Iterator[list[ScheduledJobLog]]:
    """What :func:`newest_rows` returns, ``page`` rows at a time, so that a listing of 100,000 rows holds one
    page, not all of them. Each page starts where the last ended, by key (slot, then id: the order and the
    ``(scheduled_for, id)`` / ``(job_id, scheduled_for)`` indexes), not by offset, which would read every
    skipped row again. A row written meanwhile above the last row read is not listed: the listing is the
    ledger from its first page down."""
    left = limit
    after: tuple[datetime, int] | None = None
    while left > 0:
        query = _listing(job_id, status, since, None)
        if after is not None:  # the first conjunct bounds the index range; the second breaks ties on the slot
            query = query.where((L.scheduled_for <= after[0])
                                & ((L.scheduled_for < after[0]) | (L.id < after[1])))
        rows = list(query.order_by(L.scheduled_for.desc(), L.id.desc()).limit(min(page, left)))
        if not rows:
            return
        yield rows
        left -= len(rows)
        if len(rows) < page:
            return
        after = (rows[-1].scheduled_for, rows[-1].id)


def row_by_id(row_id: int) -> ScheduledJobLog | None:
    """One ledger row, None when it is gone (pruned) or never was."""
    row: ScheduledJobLog | None = L.get_or_none(L.id == row_id)
    return row


def row_of_run(rq_job_id: str) -> ScheduledJobLog | None:
    """The ledger row of the run sent under ``rq_job_id``, or None."""
    row: ScheduledJobLog | None = L.get_or_none(L.rq_job_id == rq_job_id)
    return row


def latest_in_window(job_id: int, since: datetime, until: datetime, columns: Sequence[str],
                     limit: int) -> list[dict[str, Any]]:
    """The latest ``limit`` rows of one job whose slot lies in ``[since, until)``, oldest first, only
    ``columns``: read from the ``(job_id, scheduled_for)`` index range, so the cost is the rows returned."""
    window = (L.job == job_id) & (L.scheduled_for >= since) & (L.scheduled_for < until)
    query = (L.select(*[getattr(L, c) for c in columns]).where(window)
             .order_by(L.scheduled_for.desc(), L.id.desc()).limit(limit))
    return [{c: getattr(r, c) for c in columns} for r in reversed(list(query))]


def rows_from_id(first_id: int, columns: Sequence[str], limit: int) -> list[tuple[Any, ...]]:
    """Rows with ``id >= first_id`` in id order (the primary key's range), as tuples of ``columns``."""
    query = L.select(*[getattr(L, c) for c in columns]).where(L.id >= first_id).order_by(L.id).limit(limit)
    rows: list[tuple[Any, ...]] = list(query.tuples())  # type: ignore[arg-type]
    return rows


def rows_by_ids(ids: Sequence[int], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows with these ids (those still there), as tuples of ``columns``, a thousand ids per statement."""
    fields = [getattr(L, c) for c in columns]
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(ids), 1000):
        rows += list(L.select(*fields).where(L.id.in_(list(ids[i:i + 1000]))).tuples())  # type: ignore[arg-type]
    return rows


def max_id() -> int | None:
    """The highest ledger id (the primary key's last entry), None when the ledger is empty."""
    value = L.select(pw.fn.MAX(L.id)).scalar()
    return int(value) if value is not None else None


def newest_runs_of(job_ids: Sequence[int]) -> dict[int, ScheduledJobLog]:
    """The newest run of each job that has one (missed and skipped slots are not runs): the run of its latest
    slot, the last created of those on a tie, as ``jobs history NAME`` lists them first. Two statements per
    thousand jobs: the run's id, per job one probe of ``(job_id, scheduled_for)`` from its end that stops at the
    first run and one equality lookup of that slot's runs (the tie-break, without sorting the job's rows), then
    those rows by primary key; whatever the jobs' history, it reads about one row per job."""
    found: dict[int, ScheduledJobLog] = {}
    ids = list(dict.fromkeys(job_ids))
    for i in range(0, len(ids), 1000):
        run, tie = L.alias("run"), L.alias("tie")
        # the latest slot with a run: the index walked from the job's end, stopping at the first run (ordering
        # by the slot alone, which the index holds, so that no database sorts the job's rows to break ties) ...
        slot = (tie.select(tie.scheduled_for).where((tie.job == ScheduledJobType.id) & tie.status.not_in(NOT_RUN))
                .order_by(tie.scheduled_for.desc()).limit(1))
        # ... then the last created run of that slot: an equality lookup of the same index
        newest = run.select(pw.fn.MAX(run.id)).where(
            (run.job == ScheduledJobType.id) & (run.scheduled_for == slot) & run.status.not_in(NOT_RUN))
        per_job: list[tuple[Any]] = list(ScheduledJobType.select(newest)  # type: ignore[arg-type]
                                         .where(ScheduledJobType.id.in_(ids[i:i + 1000])).tuples())
        run_ids = [int(row[0]) for row in per_job if row[0] is not None]
        if run_ids:
            found.update((log.job_id, log) for log in L.select().where(L.id.in_(run_ids)))
    return found


def active_rows_of(job_id: int) -> list[ScheduledJobLog]:
    """The job's ``queued`` and ``started`` rows (its active runs), oldest first."""
    return list(L.select().where((L.job == job_id) & L.status.in_(ACTIVE_STATUSES)).order_by(L.id))


def rows_near(job_id: int, lo: datetime, hi: datetime, limit: int = 500) -> list[ScheduledJobLog]:
    """Up to ``limit`` rows of the job covering a slot in ``[lo, hi]`` (``first_slot .. last_slot``), or
    stamped with a slot inside it, in slot order."""
    covering = ((L.first_slot <= hi) & (L.last_slot >= lo)) | L.scheduled_for.between(lo, hi)
    return list(L.select().where((L.job == job_id) & covering).order_by(L.scheduled_for, L.id).limit(limit))


def oldest_kept_slot() -> datetime | None:
    """The slot of the first row still kept, by primary key (pruning deletes the oldest rows): a one-row index
    read, where the earliest slot of the whole ledger would be a scan of it."""
    oldest = L.select(L.scheduled_for).order_by(L.id).first()
    return oldest.scheduled_for if oldest else None


def failures_since(since: datetime, top: int) -> tuple[int, list[tuple[str, int]]]:
    """How many runs failed (finished) since ``since``, and the ``top`` jobs with most of them, with their
    counts (most first, then by name). Both read the trouble index (failed rows are in it; its literal predicate,
    implied by the status, lets SQLite use it), not the whole ledger. Not bounded by slot: a run may end long
    after its slot (a backfill of old slots, a run that waited in its queue), and it still counts."""
    failed = pw.SQL(TROUBLE) & (L.status == LedgerStatus.FAILED) & (L.finished_at >= since)
    n = pw.fn.COUNT(L.id)
    most: list[tuple[Any, Any]] = list(L.select(L.job_name, n.alias("n")).where(failed).group_by(L.job_name)  # type: ignore[arg-type]
                                       .order_by(n.desc(), L.job_name).limit(top).tuples())
    return int(L.select().where(failed).count()), [(str(name), int(count)) for name, count in most]


def _not_run_on_time(query: Any, job_id: int | None, since: datetime | None) -> Any:
    # the literal predicate of the trouble index (implied by the condition after it) lets that index serve this
    query = query.where(pw.SQL(TROUBLE) & (
        (L.status.in_(NOT_RUN) | (L.slots > 1) | (L.trigger == Trigger.CATCH_UP)) & L.trigger.not_in(REQUEST_TRIGGERS)))
    if job_id is not None:
        query = query.where(L.job == job_id)
    if since is not None:
        query = query.where(L.scheduled_for >= since)
    return query


def slots_not_run_on_time(job_id: int | None = None, since: datetime | None = None,
                          limit: int = 1000) -> list[ScheduledJobLog]:
    """Rows of missed or skipped slots and of catch-up runs (trigger ``catch-up``, or a run covering more than
    one slot), newest first; runs on request (manual, event) are left out: they are requests, not slots.
    ``since``: the row's latest slot is in the window (a row may cover a stretch)."""
    query = _not_run_on_time(L.select(), job_id, since)
    return list(query.order_by(L.scheduled_for.desc(), L.id.desc()).limit(limit))


def slots_not_run_totals(job_id: int | None = None,
                         since: datetime | None = None) -> list[tuple[str, str, int, int]]:
    """What :func:`slots_not_run_on_time` selects, counted over the whole window whatever its limit: per job
    name and status, the number of rows and the slots they cover (a row's ``slots``, at least 1), one
    grouped query read from the trouble index."""
    slots = pw.Case(None, [(L.slots < 1, 1)], L.slots)
    query = _not_run_on_time(
        L.select(L.job_name, L.status, pw.fn.COUNT(L.id), pw.fn.SUM(slots)), job_id, since
    ).group_by(L.job_name, L.status)
    found: list[tuple[Any, Any, Any, Any]] = list(query.tuples())  # type: ignore[arg-type]
    return [(str(name), str(status), int(rows), int(covered)) for name, status, rows, covered in found]


def count_rows(status: str, since: datetime | None = None) -> int:
    """How many ledger rows have this status (and a slot at or after ``since``): the trouble index's count for
    the statuses it holds."""
    query = L.select().where(L.status == status)
    if status in _TROUBLE_STATUSES:
        query = query.where(pw.SQL(TROUBLE))
    if since is not None:
        query = query.where(L.scheduled_for >= since)
    return int(query.count())


__all__ = ["active_rows_of", "count_rows", "failures_since", "latest_in_window", "max_id", "newest_rows",
           "newest_rows_paged", "newest_runs_of", "oldest_kept_slot", "row_by_id", "row_of_run", "rows_by_ids",
           "rows_from_id", "rows_near", "slots_not_run_on_time", "slots_not_run_totals"]
