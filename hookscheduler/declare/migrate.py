"""Sync declared jobs into ``scheduled_job_type`` with explicit column ownership (see :mod:`..store.models`).

Hooks own the definition, operators own ``stopped`` (and its note), the runtime owns ``last_execution``,
``next_execution`` and the log. So migrate updates rows *in place* and never resets what it does not own:
moving a job between sections keeps its id, its stop flag, its last run and its history (Frappe deleted and
re-inserted, losing all three).

Rules for ``next_execution`` (the cold-start guarantee): a new job is anchored at the moment it is created and
first fires at its first slot strictly after it, never at once; a job whose schedule changed (frequency, cron)
is re-anchored forward from now, so an edit can neither fire at once nor replay the past; a job that returns
after being removed is treated like a new one. A job removed from hooks is marked ``removed`` and gets no
``next_execution`` (it leaves the pass's index scan); ``--prune`` deletes it and its history.

The plan is computed first, from the specs and the rows, and applied in one transaction per site: an unchanged
re-run writes nothing, ``--dry-run`` writes nothing, and a refused hooks set (:mod:`.hooks`) never reaches
this module. Every deploy runs this over up to tens of thousands of jobs, hence the plain tuples and SQL below.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee as pw

from ..store.database import bind, ensure_schema, migrate_lock, schema_version, write_txn
from ..store.models import ScheduledJobLog, ScheduledJobType, database_proxy, utcnow
from ..timing.calendar import SiteCalendar, next_slot
from .hooks import DEFINITION, JobSpec

SCHEDULE_FIELDS = ("frequency", "cron_format")
#: The columns a plan compares (the hooks-owned definition), plus the row's identity and removal.
PLAN_COLUMNS = ("id", "name", "removed", *DEFINITION)
_PlanRow = namedtuple("_PlanRow", PLAN_COLUMNS)  # type: ignore[misc]  # a row as the plan reads it
PG_CHUNK = 20_000  # rows per INSERT of arrays on PostgreSQL (bounds one statement's parameter size)


@dataclass
class Change:
    name: str
    fields: dict[str, tuple[Any, Any]]  # column -> (old, new)


@dataclass
class Plan:
    """What a migrate does (or would do) to one site."""

    site: str
    added: list[JobSpec] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    schema_steps: int = 0

    @property
    def changes_anything(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.pruned)

    def as_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "added": [s.name for s in self.added],
            "updated": [{"name": c.name, "changes": {k: [_show(o), _show(n)] for k, (o, n) in c.fields.items()}}
                        for c in self.updated],
            "removed": self.removed,
            "pruned": self.pruned,
            "unchanged": len(self.unchanged),
        }


def _show(value: Any) -> Any:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value


def plan_sync(site: str, specs: list[JobSpec], rows: Sequence[Any], prune: bool = False) -> Plan:
    """Pure: compare declared specs with stored rows (model instances, or any rows with the
    :data:`PLAN_COLUMNS` as attributes)."""
    plan = Plan(site=site)
    by_name = {r.name: r for r in rows}
    declared = set()
    for spec in specs:
        declared.add(spec.name)
        row = by_name.get(spec.name)
        if row is None:
            plan.added.append(spec)
            continue
        if not row.removed and _definition(row) == spec[1:10]:  # the every-deploy case, in one comparison
            plan.unchanged.append(spec.name)
            continue
        diff = {k: (getattr(row, k), v) for k, v in spec.definition().items() if getattr(row, k) != v}
        if row.removed:
            diff["removed"] = (True, False)
        if diff:
            plan.updated.append(Change(spec.name, diff))
        else:
            plan.unchanged.append(spec.name)
    for row in rows:
        if row.name in declared:
            continue
        if prune:
            plan.pruned.append(row.name)
        elif not row.removed:
            plan.removed.append(row.name)
    return plan


def _definition(row: Any) -> tuple[Any, ...]:
    """A row's hooks-owned columns in :data:`~.hooks.DEFINITION` order (a plan row: one slice)."""
    if isinstance(row, _PlanRow):
        return row[3:12]  # type: ignore[no-any-return]
    return tuple(getattr(row, k) for k in DEFINITION)


def migrate_site(db: pw.Database, site: str, specs: list[JobSpec], calendar: SiteCalendar, *,
                 now: datetime | None = None, dry_run: bool = False, prune: bool = False) -> Plan:
    """Bring the site's schema and job table in line with ``specs``; returns the plan (applied unless dry_run)."""
    bind(db)
    now = now or utcnow()
    if dry_run:
        rows = _rows() if schema_version(db) else []
        return plan_sync(site, specs, rows, prune)
    steps = ensure_schema(db)
    # Plan from a plain read first: an unchanged re-run (every deploy) then opens no write transaction at all.
    plan = plan_sync(site, specs, _rows(), prune)
    if plan.changes_anything:
        with write_txn(db):
            migrate_lock(db)
            rows = _rows()  # again, under the lock: what we change is what is there now
            plan = plan_sync(site, specs, rows, prune)
            _apply(plan, {r.name: r for r in rows}, calendar, now)
    plan.schema_steps = steps
    return plan


def _rows() -> list[Any]:
    """Every row's :data:`PLAN_COLUMNS` as named tuples, oldest first: a stable order, so the plan reads the
    same on SQLite and PostgreSQL. Only the compared columns, and no model instances: building 10,000 of them,
    with their timestamps, costs seconds."""
    columns = [getattr(ScheduledJobType, c) for c in PLAN_COLUMNS]
    sql, params = ScheduledJobType.select(*columns).order_by(ScheduledJobType.id).sql()
    cursor: Any = ScheduledJobType._meta.database.execute_sql(sql, params)
    return [_PlanRow._make(row) for row in cursor.fetchall()]  # ``removed`` stays 0/1 on SQLite: only truthiness


_INSERT_COLUMNS = ("name", "app", "method", "frequency", "cron_format", "queue", "timeout", "catchup", "catchup_limit",
                   "overlap", "next_execution")
_PG_TYPES = ("text", "text", "text", "text", "text", "text", "integer", "text", "integer", "text", "timestamp")
_STAMP = re.compile(r"[0-9T :.+-]+")  # what datetime.isoformat() writes: safe inside a SQL literal


def insert_jobs(db: pw.Database, specs: Iterable[JobSpec], first_slot: Callable[[str, str], datetime | None],
                now: datetime) -> None:
    """New rows for ``specs``, first firing at ``first_slot(frequency, cron_format)``, created ``now``, as
    plain SQL: one statement of arrays on PostgreSQL, one prepared ``executemany`` on SQLite. Building the same
    INSERT through peewee's query builder spent most of a cold migrate (about 0.13 ms per row) in formatting
    parameters; then converting each row's datetimes to text, and binding the columns every new row has
    alike (not stopped, not removed, created and modified now), cost about as much as SQLite's inserting."""
    slots: dict[tuple[str, str], Any] = {}  # one first slot per schedule, computed (and formatted) once
    pg = isinstance(db, pw.PostgresqlDatabase)

    def slot(frequency: str, cron_format: str) -> Any:
        key = (frequency, cron_format)
        if key not in slots:
            when = first_slot(frequency, cron_format)
            slots[key] = when if pg or when is None else when.isoformat(sep=" ")
        return slots[key]

    rows = [(s.name, s.app, s.method, s.frequency, s.cron_format, s.queue, s.timeout, s.catchup, s.catchup_limit,
             s.overlap, slot(s.frequency, s.cron_format)) for s in specs]
    if not rows:
        return
    cols = ", ".join(_INSERT_COLUMNS) + ", stopped, removed, created_at, modified_at"
    if pg:
        arrays = ", ".join(f"%s::{t}[]" for t in _PG_TYPES)
        for i in range(0, len(rows), PG_CHUNK):
            part = rows[i:i + PG_CHUNK]
            params = [now, now, *(list(col) for col in zip(*part, strict=True))]
            db.execute_sql(f"INSERT INTO scheduled_job_type ({cols}) SELECT *, false, false, %s::timestamp, "  # type: ignore[no-untyped-call]
                           f"%s::timestamp FROM unnest({arrays})", params)
        return
    stamp = now.isoformat(sep=" ")
    if not _STAMP.fullmatch(stamp):
        raise ValueError(f"unexpected timestamp text {stamp!r}")
    db.cursor().executemany(  # type: ignore[no-untyped-call]
        f"INSERT INTO scheduled_job_type ({cols}) VALUES ({', '.join('?' * len(_INSERT_COLUMNS))}, 0, 0, "
        f"'{stamp}', '{stamp}')", rows)


def _apply(plan: Plan, rows: dict[str, Any], calendar: SiteCalendar, now: datetime) -> None:
    first: dict[tuple[str, str], datetime | None] = {}  # (frequency, cron) -> first slot after now

    def first_slot(frequency: str, cron_format: str) -> datetime | None:
        key = (frequency, cron_format)
        if key not in first:
            first[key] = next_slot(frequency, cron_format, now, calendar)
        return first[key]

    specs = {s.name: s for s in plan.added}  # one row per name, as the unique index wants
    insert_jobs(database_proxy.obj, specs.values(), first_slot, now)
    for change in plan.updated:
        row = rows[change.name]
        values: dict[str, Any] = {k: new for k, (_, new) in change.fields.items()}
        if "removed" in values:
            values["removed_at"] = None
        if "removed" in values or any(k in change.fields for k in SCHEDULE_FIELDS):
            frequency = values.get("frequency", row.frequency)
            cron_format = values.get("cron_format", row.cron_format)
            values["next_execution"] = first_slot(frequency, cron_format)
        values["modified_at"] = now
        ScheduledJobType.update(values).where(ScheduledJobType.id == row.id).execute()
    if plan.removed:
        (ScheduledJobType.update(removed=True, removed_at=now, next_execution=None, modified_at=now)
         .where(ScheduledJobType.name.in_(plan.removed)).execute())
    if plan.pruned:
        ids = [rows[n].id for n in plan.pruned]
        ScheduledJobLog.delete().where(ScheduledJobLog.job.in_(ids)).execute()
        ScheduledJobType.delete().where(ScheduledJobType.id.in_(ids)).execute()
