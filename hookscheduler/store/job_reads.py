"""The job table as operators read it: the read-only queries behind ``jobs list``, name look-ups (with "did you
mean"), events and methods (:mod:`hookscheduler.ops.jobs` and :mod:`hookscheduler.ops.manual` act on what they
return).

Peewee queries on the bound site's models, written once for both dialects, as :mod:`.ledger_reads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .models import ScheduledJobType

J = ScheduledJobType


def by_name(name: str, include_removed: bool = True) -> ScheduledJobType | None:
    """The job called ``name`` (a removed one too, unless ``include_removed`` is false), or None."""
    query = J.select().where(J.name == name)
    if not include_removed:
        query = query.where(J.removed == False)  # noqa: E712
    row: ScheduledJobType | None = query.first()
    return row


def by_method(method: str) -> list[ScheduledJobType]:
    """The jobs (not removed) that run ``method``, by name."""
    return list(J.select().where((J.method == method) & (J.removed == False)).order_by(J.name))  # noqa: E712


def _listed(include_removed: bool, search: str | None) -> Any:
    query = J.select()
    if not include_removed:
        query = query.where(J.removed == False)  # noqa: E712
    if search:
        query = query.where(J.name.contains(search) | J.method.contains(search))
    return query


def page(include_removed: bool = False, search: str | None = None, offset: int = 0,
         limit: int | None = None) -> list[ScheduledJobType]:
    """Jobs by app and name (one page: ``offset``/``limit``), only those whose name or method contains
    ``search`` when given."""
    query = _listed(include_removed, search).order_by(J.app, J.name)
    if limit is not None:
        query = query.offset(offset).limit(limit)
    return list(query)


def count(include_removed: bool = False, search: str | None = None) -> int:
    """How many jobs :func:`page` would list without a page."""
    return int(_listed(include_removed, search).count())


def names_containing(text: str, limit: int) -> list[str]:
    """Up to ``limit`` job names containing ``text``."""
    return [r.name for r in J.select(J.name).where(J.name.contains(text)).limit(limit)]


def names() -> list[str]:
    """Every job's name."""
    return [r.name for r in J.select(J.name)]


def of_frequencies(frequencies: Sequence[str], include_stopped: bool) -> list[ScheduledJobType]:
    """The jobs (not removed) of these frequencies, by name; stopped ones only with ``include_stopped``."""
    query = (J.select().where(J.frequency.in_(list(frequencies)) & (J.removed == False))  # noqa: E712
             .order_by(J.name))
    if not include_stopped:
        query = query.where(J.stopped == False)  # noqa: E712
    return list(query)


def frequency_of(name: str) -> str | None:
    """The frequency (``Hourly``, ``Cron``, ...) of the job called ``name``, None when there is none."""
    value = J.select(J.frequency).where(J.name == name).scalar()
    return str(value) if value is not None else None


def schedules_shown() -> list[tuple[Any, ...]]:
    """``(name, frequency, cron_format, stopped, next_execution)`` of every job not removed: the metrics'
    per-job gauges."""
    query = J.select(J.name, J.frequency, J.cron_format, J.stopped, J.next_execution).where(J.removed == False)  # noqa: E712
    rows: list[tuple[Any, ...]] = list(query.tuples())  # type: ignore[arg-type]
    return rows


def active_count() -> int:
    """How many jobs are declared (not removed)."""
    return int(J.select().where(J.removed == False).count())  # noqa: E712


def active() -> list[ScheduledJobType]:
    """Every job not removed."""
    return list(J.select().where(J.removed == False))  # noqa: E712


def overdue(before: datetime) -> tuple[int, ScheduledJobType | None]:
    """How many running jobs (neither removed nor stopped) have a next slot before ``before``, and the one
    whose slot is the oldest."""
    running = (J.removed == False) & (J.stopped == False) & (J.next_execution < before)  # noqa: E712
    oldest: ScheduledJobType | None = J.select().where(running).order_by(J.next_execution).first()
    return (0, None) if oldest is None else (int(J.select().where(running).count()), oldest)


def queues_in_use() -> set[str]:
    """The queues of the running jobs (neither removed nor stopped)."""
    return {r.queue for r in J.select(J.queue).where((J.removed == False) & (J.stopped == False)).distinct()}  # noqa: E712


__all__ = ["active", "active_count", "by_method", "by_name", "count", "frequency_of", "names", "names_containing",
           "of_frequencies", "overdue", "page", "queues_in_use", "schedules_shown"]
