"""What the two stores share: the statements both dialects spell alike, written once; each store overrides the
few a dialect needs to spell (or plan) differently.

The statements are plain SQL with parameters rather than peewee queries: the pass and the worker's run
transitions are the hot paths, and a work horse freshly forked from its worker would copy many pages of the
parent's memory to build a query; plain SQL costs a fraction of that. They use only the columns and values the
models define, in the storage format peewee uses (naive UTC; ISO text on SQLite).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import peewee as pw

from ..states import SLOT_TRIGGERS, LedgerStatus, Trigger
from ..timing.frequencies import fires_within_hour
from .base import (
    JOB_ABSENT,
    JOB_PRESENT,
    JOB_REMOVED,
    LEDGER_COLUMNS,
    ActiveRun,
    ClaimRequest,
    DueRow,
    LateClaim,
    LatestRow,
    LedgerValues,
    Outcome,
    Probe,
    Run,
    parse_dt,
)
from .database import write_txn
from .models import ScheduledJobType
from .values import flag, flag_or_raw

#: The pass's one statement. It also reads ``schema_version`` beside the state keys it reads anyway (one more
#: lookup in the same primary-key index, no round trip): a running scheduler notices at its next pass that a
#: ``migrate`` by another hookscheduler (or an operator) left the schema that is not its own, and stops serving
#: the site until it is again (:func:`hookscheduler.schedule.claim.run_pass`).
PROBE = (
    "SELECT (SELECT next_execution FROM scheduled_job_type WHERE next_execution IS NOT NULL "
    "AND removed = {false} ORDER BY next_execution LIMIT 1), "
    "(SELECT MIN(scheduled_for) FROM scheduled_job_log WHERE status = 'queued' AND enqueued_at IS NULL), "
    "(SELECT value FROM scheduler_state WHERE key = 'scheduler_enabled'), "
    "(SELECT value FROM scheduler_state WHERE key = 'pause_until'), "
    "(SELECT reason FROM scheduler_inactivity WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1), "
    "(SELECT ended_at FROM scheduler_inactivity ORDER BY id DESC LIMIT 1), "
    "EXISTS (SELECT 1 FROM scheduled_job_log WHERE status IN ('queued', 'started')), "
    "EXISTS (SELECT 1 FROM scheduled_job_type WHERE next_execution IS NULL AND removed = {false}), "
    "(SELECT value FROM scheduler_state WHERE key = 'schema_version')"
)
DUE_COLUMNS = (
    "id, name, method, frequency, cron_format, queue, timeout, catchup, catchup_limit, overlap, "
    "stopped, next_execution, stopped_until"
)
#: Whether a due row's job has a queued or started run, answered from the active-runs partial index in the
#: statement that selects (and on PostgreSQL locks) the row: a pass reads the active runs (and asks RQ about
#: them) only for jobs that have some, instead of one more statement for every batch.
_HAS_ACTIVE = (
    "EXISTS (SELECT 1 FROM scheduled_job_log l WHERE l.job_id = scheduled_job_type.id "
    "AND l.status IN ('queued', 'started'))"
)
#: I9: the latest slot a ledger row of a due row's job stands for, at or after the row's ``next_execution``
#: (NULL: none, the usual answer). A row of a slot trigger stands for ``first_slot .. last_slot`` and its
#: ``scheduled_for`` is its last slot, so the ``(job_id, scheduled_for)`` index finds it; runs on request stand
#: for no slot. The pass never decides again a slot at or before it (:func:`hookscheduler.schedule.claim`).
DECIDED_TRIGGERS = "('schedule', 'catch-up', 'backfill')"
_DECIDED = (
    "(SELECT MAX(COALESCE(l.last_slot, l.scheduled_for)) FROM scheduled_job_log l "
    "WHERE l.job_id = scheduled_job_type.id AND l.scheduled_for >= scheduled_job_type.next_execution "
    f"AND l.trigger IN {DECIDED_TRIGGERS})"
)
#: An on-time claim never sent (I11 in hookscheduler/schedule/outbox.py): a run the sweep put back for a
#: re-send has a reason, a catch-up or a run on request another trigger.
_LATE_CLAIM = ("l.status = 'queued' AND l.enqueued_at IS NULL AND l.trigger = 'schedule' AND l.reason IS NULL")
_ACTIVE_COLUMNS = "id, job_id, status, rq_job_id, enqueued_at, started_at, finished_at"
_START = (
    "UPDATE scheduled_job_log SET status = 'started', started_at = {p}, worker = {p}, modified_at = {p}, "
    "enqueued_at = COALESCE(enqueued_at, {p}) WHERE rq_job_id = {p} AND status = 'queued'"
)
_LAST_EXECUTION = (
    "UPDATE scheduled_job_type SET last_execution = {p} "
    "WHERE name = {p} AND (last_execution IS NULL OR last_execution < {p})"
)
FINISH = (
    "UPDATE scheduled_job_log SET status = {p}, finished_at = {p}, modified_at = {p}, "
    "duration = COALESCE({p}, duration), traceback = COALESCE({p}, traceback), "
    "reason = CASE WHEN {p} IS NOT NULL THEN {p} WHEN status = 'failed' AND {p} = 'complete' THEN {p} "
    "ELSE reason END WHERE rq_job_id = {p}"
)


#: The audit columns of a stop (:meth:`SqlStore.write_stop`).
_STOP_COLUMNS = frozenset({"stopped_note", "stopped_by", "stopped_at", "stopped_until"})


def _job_column(name: str) -> str:
    """A column of ``scheduled_job_type`` by its field name, refused when the table has no such column (names
    are spliced into statements)."""
    field = ScheduledJobType._meta.fields.get(name)  # type: ignore[attr-defined]
    if field is None:
        raise ValueError(f"scheduled_job_type has no column {name!r}")
    return str(field.column_name)


def _dt_or_raw(value: Any) -> Any:
    try:
        return parse_dt(value)
    except ValueError:
        return value


def _time_or_none(value: Any) -> datetime | None:
    """A ``next_execution`` as a time, None when it is NULL or not a time (written by hand)."""
    value = _dt_or_raw(value)
    return value if isinstance(value, datetime) else None


def _int_or(value: Any, default: int) -> int:
    """An integer column, ``default`` when it is not one (a value written by hand)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _frequent(trigger: Any, frequency: Any, cron_format: Any) -> bool:
    """An outbox run flagged as the pass flags it when it first sends it: a scheduled or catch-up run of a job
    that fires within the hour (runs on request and backfills are sent unflagged). A row changed by hand to an
    unknown frequency (the pass reports it, schedule/rows.py) is not, rather than holding the outbox up."""
    if trigger not in (Trigger.SCHEDULE, Trigger.CATCH_UP):
        return False
    try:
        return fires_within_hour(frequency, cron_format or "")
    except (KeyError, AttributeError, TypeError):
        return False


def probe_of(row: Sequence[Any]) -> Probe:
    """The probe's one row as a :class:`Probe`."""
    earliest, outbox_from, enabled, pause_until, inactive_since, inactive_ended, active, unslotted, schema = row
    return Probe(parse_dt(earliest), parse_dt(outbox_from), enabled, pause_until, inactive_since, bool(active),
                 bool(unslotted), parse_dt(inactive_ended), schema)


class SqlStore:
    """The statements both dialects spell alike. Subclasses set :attr:`batch`, :attr:`false` and override
    what differs."""

    batch = 0
    false = "0"  # how the dialect spells a false boolean literal

    def __init__(self, db: pw.Database) -> None:
        self.db = db
        self.p = str(db.param)

    # --- plumbing ---------------------------------------------------------------------------------------
    def sql(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute one statement; returns the cursor."""
        return self.db.execute_sql(sql, params)  # type: ignore[no-untyped-call]

    def hot(self, name: str, sql: str, params: Sequence[Any]) -> Any:
        """Execute one of the pass's hot statements (``name`` identifies it); PostgreSQL prepares them."""
        return self.sql(sql, params)

    def param_dt(self, value: datetime | None) -> Any:
        """A timestamp as a statement parameter (as the dialect stores it)."""
        return value

    def membership(self, column: str, values: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
        """``column`` in ``values``: one or more (condition, parameters), each within the dialect's limits."""
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return write_txn(self.db)

    @contextlib.contextmanager
    def ledger_transaction(self) -> Iterator[None]:
        with write_txn(self.db):
            yield

    # --- the pass -------------------------------------------------------------------------------------
    def probe(self) -> Probe:
        return probe_of(self.sql(PROBE.format(false=self.false)).fetchone())

    def select_due(self, now: datetime, limit: int) -> list[DueRow]:
        rows = self.hot("hs_select_due", self.due_sql(), [self.param_dt(now), False, limit]).fetchall()
        # a boolean stored as a word is read as that word says; a value that is neither (or a next_execution
        # that is not a time) is passed on as it is, for the pass to refuse (schedule/rows.py)
        return [
            DueRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4] or "",
                r[5],
                r[6],
                r[7],
                r[8],
                r[9],
                flag_or_raw(r[10]),
                _dt_or_raw(r[11]),
                _dt_or_raw(r[12]),
                bool(r[13]),
                _dt_or_raw(r[14]) if r[14] is not None else None,
            )
            for r in rows
        ]

    def claim(self, requests: Sequence[ClaimRequest]) -> set[int]:
        raise NotImplementedError

    def insert_ledger_rows(self, rows: Sequence[LedgerValues]) -> None:
        raise NotImplementedError

    def claim_and_record(self, requests: Sequence[ClaimRequest], rows: Sequence[LedgerValues]) -> set[int]:
        won = self.claim(requests)
        self.insert_ledger_rows([r for r in rows if r[0] in won])
        return won

    def due_sql(self) -> str:
        """The due-row selection (parameters: now, false, limit), with each row's active-run flag and the last
        slot its ledger already stands for (I9) last."""
        p = self.p
        return (
            f"SELECT {DUE_COLUMNS}, {_HAS_ACTIVE}, {_DECIDED} FROM scheduled_job_type "
            f"WHERE next_execution <= {p} AND removed = {p} ORDER BY next_execution, id LIMIT {p}"
        ) + self.due_lock

    due_lock = ""  # appended to the due-row selection (PostgreSQL: lock, skipping locked rows)

    def latest_rows(self, job_ids: Sequence[int]) -> dict[int, LatestRow]:
        latest: dict[int, LatestRow] = {}
        for cond, params in self.membership("job_id", job_ids):
            sql = (
                "SELECT id, job_id, status, reason FROM scheduled_job_log WHERE id IN "
                f"(SELECT MAX(id) FROM scheduled_job_log WHERE {cond} GROUP BY job_id)"
            )
            for r in self.sql(sql, params).fetchall():
                latest[r[1]] = LatestRow(r[0], r[1], r[2], r[3])
        return latest

    def extend_skip(self, row_id: int, slots: int, last_slot: datetime, scheduled_for: datetime, now: datetime) -> None:
        p = self.p
        self.sql(
            f"UPDATE scheduled_job_log SET slots = slots + {p}, last_slot = {p}, scheduled_for = {p}, "
            f"modified_at = {p} WHERE id = {p}",
            [slots, self.param_dt(last_slot), self.param_dt(scheduled_for), self.param_dt(now), row_id],
        )

    def end_stop(self, job_id: int, stopped_until: datetime) -> None:
        p = self.p
        self.sql(
            f"UPDATE scheduled_job_type SET stopped = {p}, stopped_until = NULL, stopped_note = NULL, "
            f"stopped_by = '--until', stopped_at = {p} WHERE id = {p} AND stopped = {p} AND stopped_until = {p}",
            [False, self.param_dt(stopped_until), job_id, True, self.param_dt(stopped_until)],
        )

    # --- the outbox -----------------------------------------------------------------------------------
    outbox_hint = ""  # prefixed to the outbox's rq_job_id condition

    def outbox(self, site: str, limit: int, now: datetime) -> list[Run]:
        # I10 (hookscheduler/schedule/claim.py): only the rows whose slot has come; a run claimed ahead of its
        # slot waits here, unsent by anyone, until then
        rows = self.sql(
            "SELECT l.rq_job_id, l.job_name, t.method, l.queue, t.timeout, l.scheduled_for, l.trigger, "
            "t.frequency, t.cron_format "
            "FROM scheduled_job_log l JOIN scheduled_job_type t ON t.id = l.job_id "
            "WHERE l.status = 'queued' AND l.enqueued_at IS NULL "
            f"AND {self.outbox_hint}l.rq_job_id IS NOT NULL AND l.scheduled_for <= {self.p} "
            f"ORDER BY l.id LIMIT {self.p}",
            [self.param_dt(now), limit],
        ).fetchall()
        # frequent as the pass says it when it first sends a run: a re-sent run keeps its short-lived Redis keys
        return [
            Run(str(r[0]), site, r[1], r[2], r[3] or "default", r[4], parse_dt(r[5]), r[6],
                _frequent(r[6], r[7], r[8]))
            for r in rows
        ]

    def late_claims(self, rq_ids: Sequence[str]) -> list[LateClaim]:
        out: list[LateClaim] = []
        for cond, params in self.membership("l.rq_job_id", rq_ids):
            rows = self.sql(
                "SELECT l.rq_job_id, l.created_at, t.catchup, t.next_execution, t.catchup_limit, t.frequency, "
                "t.cron_format "
                "FROM scheduled_job_log l JOIN scheduled_job_type t ON t.id = l.job_id "
                f"WHERE {cond} AND {_LATE_CLAIM}",
                params,
            ).fetchall()
            out += [LateClaim(str(r[0]), parse_dt(r[1]), str(r[2]), _time_or_none(r[3]), _int_or(r[4], 10),
                              str(r[5] or ""), str(r[6] or "")) for r in rows]
        return out

    def settle_late(self, rq_job_id: str, status: str, trigger: str, reason: str, now: datetime) -> bool:
        p, at = self.p, self.param_dt(now)
        finish = f", finished_at = {p}" if status != LedgerStatus.QUEUED else ""
        return bool(
            self.sql(
                f"UPDATE scheduled_job_log SET status = {p}, trigger = {p}, reason = {p}, modified_at = {p}{finish} "
                f"WHERE rq_job_id = {p} AND {_LATE_CLAIM.replace('l.', '')}",
                [status, trigger, reason, at, *([at] if finish else []), rq_job_id],
            ).rowcount
        )

    def mark_sent(self, rq_ids: Sequence[str], at: datetime | Sequence[datetime]) -> None:
        raise NotImplementedError

    def fail_unsendable(self, rq_job_id: str, reason: str, now: datetime) -> None:
        p, at = self.p, self.param_dt(now)
        self.sql(
            f"UPDATE scheduled_job_log SET status = 'failed', reason = {p}, finished_at = {p}, modified_at = {p} "
            f"WHERE rq_job_id = {p} AND status = 'queued'",
            [reason, at, at, rq_job_id],
        )

    # --- active runs ----------------------------------------------------------------------------------
    active_hint = ""  # after the ledger's alias in the site-wide active-run selection

    def active_runs_of(self, job_ids: Sequence[int]) -> list[ActiveRun]:
        runs: list[ActiveRun] = []
        for cond, params in self.membership("job_id", job_ids):
            sql = f"SELECT {_ACTIVE_COLUMNS} FROM scheduled_job_log WHERE {cond} AND status IN ('queued', 'started')"
            runs += [self._active(r) for r in self.sql(sql, params).fetchall()]
        return runs

    def active_runs(self, limit: int) -> list[tuple[ActiveRun, int]]:
        cols = ", ".join(f"l.{c.strip()}" for c in _ACTIVE_COLUMNS.split(","))
        rows = self.sql(
            f"SELECT {cols}, t.timeout FROM scheduled_job_log l {self.active_hint}"
            "JOIN scheduled_job_type t ON t.id = l.job_id "
            f"WHERE l.status IN ('queued', 'started') ORDER BY l.id LIMIT {self.p}",
            [limit],
        ).fetchall()
        return [(self._active(r), r[7]) for r in rows]

    @staticmethod
    def _active(r: Sequence[Any]) -> ActiveRun:
        return ActiveRun(r[0], r[1], r[2], r[3], parse_dt(r[4]), parse_dt(r[5]), parse_dt(r[6]))

    def mark_for_resend(self, row_id: int, now: datetime, reason: str) -> None:
        p = self.p
        self.sql(
            f"UPDATE scheduled_job_log SET enqueued_at = NULL, modified_at = {p}, reason = {p} "
            f"WHERE id = {p} AND status = 'queued'",
            [self.param_dt(now), reason, row_id],
        )

    def settle_run(self, row_id: int, status: str, reason: str | None, now: datetime, finish: bool) -> None:
        p, at = self.p, self.param_dt(now)
        stamp = f", finished_at = {p}" if finish else ""
        self.sql(
            f"UPDATE scheduled_job_log SET status = {p}, reason = {p}, modified_at = {p}{stamp} "
            f"WHERE id = {p} AND status IN ('queued', 'started')",
            [status, reason, at, *([at] if finish else []), row_id],
        )

    def note_requeued(self, rq_ids: Sequence[str], now: datetime, reason: str) -> None:
        for cond, params in self.membership("rq_job_id", rq_ids):
            self.sql(
                f"UPDATE scheduled_job_log SET modified_at = {self.p}, reason = {self.p} "
                f"WHERE {cond} AND status = 'queued'",
                [self.param_dt(now), reason, *params],
            )

    # --- slots ----------------------------------------------------------------------------------------
    def jobs_without_slot(self) -> list[tuple[int, str, str]]:
        rows = self.sql(
            "SELECT id, frequency, cron_format FROM scheduled_job_type "
            f"WHERE next_execution IS NULL AND removed = {self.false} ORDER BY id"
        ).fetchall()
        return [(r[0], r[1], r[2] or "") for r in rows]

    def set_missing_slot(self, job_id: int, slot: datetime) -> int:
        return int(
            self.sql(
                f"UPDATE scheduled_job_type SET next_execution = {self.p} "
                f"WHERE id = {self.p} AND next_execution IS NULL",
                [self.param_dt(slot), job_id],
            ).rowcount
        )

    def job_slots(self) -> list[tuple[int, str, str, datetime | None]]:
        rows = self.sql(
            "SELECT id, frequency, cron_format, next_execution FROM scheduled_job_type "
            f"WHERE removed = {self.false} ORDER BY id"
        ).fetchall()
        return [(r[0], r[1], r[2] or "", _dt_or_raw(r[3])) for r in rows]

    def set_slot(self, job_id: int, slot: datetime) -> None:
        self.sql(
            f"UPDATE scheduled_job_type SET next_execution = {self.p} WHERE id = {self.p}",
            [self.param_dt(slot), job_id],
        )

    def earliest_next(self) -> datetime | None:
        row = self.sql(f"SELECT MIN(next_execution) FROM scheduled_job_type WHERE removed = {self.false}").fetchone()
        return parse_dt(row[0]) if row else None

    def slots_after(self, now: datetime) -> list[tuple[int, str, str, datetime]]:
        rows = self.sql(
            "SELECT id, frequency, cron_format, next_execution FROM scheduled_job_type "
            f"WHERE removed = {self.false} AND next_execution > {self.p} ORDER BY id",
            [self.param_dt(now)],
        ).fetchall()
        return [(r[0], r[1], r[2] or "", _dt_or_raw(r[3])) for r in rows]

    def move_slot(self, job_id: int, served: datetime, to: datetime, now: datetime | None = None) -> int:
        p = self.p
        stamp = f", modified_at = {p}" if now is not None else ""
        return int(
            self.sql(
                f"UPDATE scheduled_job_type SET next_execution = {p}{stamp} WHERE id = {p} AND next_execution = {p}",
                [self.param_dt(to), *([self.param_dt(now)] if now is not None else []), job_id,
                 self.param_dt(served)],
            ).rowcount
        )

    def covered_after(self, job_ids: Sequence[int], now: datetime) -> dict[int, datetime]:
        covered: dict[int, datetime] = {}
        triggers = ", ".join(f"'{t.value}'" for t in SLOT_TRIGGERS)
        for cond, params in self.membership("job_id", job_ids):
            rows = self.sql(
                "SELECT job_id, MAX(COALESCE(last_slot, scheduled_for)) FROM scheduled_job_log "
                f"WHERE {cond} AND COALESCE(last_slot, scheduled_for) > {self.p} AND trigger IN ({triggers}) "
                "GROUP BY job_id",
                [*params, self.param_dt(now)],
            ).fetchall()
            covered.update({int(r[0]): parse_dt(r[1]) for r in rows if r[1] is not None})
        return covered

    def runs_decided_after(self, created_after: datetime) -> int:
        row = self.sql(
            "SELECT COUNT(*) FROM scheduled_job_log WHERE created_at > "
            f"{self.p} AND trigger IN ('schedule', 'catch-up') AND status NOT IN ('missed', 'skipped')",
            [self.param_dt(created_after)],
        ).fetchone()
        return int(row[0])

    # --- migrate ---------------------------------------------------------------------------------------
    def job_columns(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        names = ", ".join(_job_column(c) for c in columns)
        return [tuple(r) for r in self.sql(f"SELECT {names} FROM scheduled_job_type ORDER BY id").fetchall()]

    def insert_jobs(self, rows: Sequence[tuple[Any, ...]], now: datetime) -> None:
        raise NotImplementedError

    def update_job(self, job_id: int, values: dict[str, Any]) -> None:
        if not values:
            return
        p = self.p
        sets = ", ".join(f"{_job_column(c)} = {p}" for c in values)
        params = [self.param_dt(v) if isinstance(v, datetime) else v for v in values.values()]
        self.sql(f"UPDATE scheduled_job_type SET {sets} WHERE id = {p}", [*params, job_id])

    def remove_jobs(self, names: Sequence[str], now: datetime) -> None:
        at = self.param_dt(now)
        for cond, params in self.membership("name", names):
            self.sql(
                f"UPDATE scheduled_job_type SET removed = {self.p}, removed_at = {self.p}, next_execution = NULL, "
                f"modified_at = {self.p} WHERE {cond}",
                [True, at, at, *params],
            )

    def delete_jobs(self, job_ids: Sequence[int]) -> None:
        for cond, params in self.membership("job_id", job_ids):
            self.sql(f"DELETE FROM scheduled_job_log WHERE {cond}", params)
        for cond, params in self.membership("id", job_ids):
            self.sql(f"DELETE FROM scheduled_job_type WHERE {cond}", params)

    # --- the operator's job writes ----------------------------------------------------------------------
    def write_stop(self, job_id: int, stopped: bool, now: datetime, audit: dict[str, Any]) -> None:
        unknown = set(audit) - _STOP_COLUMNS
        if unknown:
            raise ValueError(f"not a stop column: {', '.join(sorted(unknown))}")
        columns = ["stopped", "modified_at", *audit]
        values = [stopped, now, *audit.values()]
        p = self.p
        self.sql(
            f"UPDATE scheduled_job_type SET {', '.join(f'{c} = {p}' for c in columns)} WHERE id = {p}",
            [*(self.param_dt(v) if isinstance(v, datetime) else v for v in values), job_id],
        )

    # --- the operator's ledger writes (queues, RQ's jobs) ------------------------------------------------
    def add_ledger_row(self, values: LedgerValues, finished_at: datetime | None = None) -> None:
        params = [self.param_dt(v) if isinstance(v, datetime) else v for v in (*values, finished_at)]
        self.sql(
            f"INSERT INTO scheduled_job_log ({ledger_columns()}, finished_at) "
            f"VALUES ({', '.join([self.p] * len(params))})",
            params,
        )

    def outbox_size(self) -> int:
        row = self.sql("SELECT COUNT(*) FROM scheduled_job_log WHERE status = 'queued' AND enqueued_at IS NULL"
                       ).fetchone()
        return int(row[0])

    def queued_rq_ids(self, job_ids: Sequence[int]) -> set[str]:
        found: set[str] = set()
        for cond, params in self.membership("job_id", job_ids):
            rows = self.sql(
                f"SELECT rq_job_id FROM scheduled_job_log WHERE {cond} AND status = 'queued' "
                "AND rq_job_id IS NOT NULL",
                params,
            ).fetchall()
            found.update(str(r[0]) for r in rows)
        return found

    def _close(self, status: str, where: str, params: Sequence[Any], reason: str, now: datetime) -> int:
        """Give the rows ``where`` selects their final ``status``, with ``reason``; returns rows changed."""
        p, at = self.p, self.param_dt(now)
        return int(
            self.sql(
                f"UPDATE scheduled_job_log SET status = {p}, reason = {p}, finished_at = {p}, modified_at = {p} "
                f"WHERE {where}",
                [status, reason, at, at, *params],
            ).rowcount
        )

    def skip_queued(self, rq_ids: Sequence[str], reason: str, now: datetime) -> int:
        return sum(
            self._close("skipped", f"{cond} AND status = 'queued'", params, reason, now)
            for cond, params in self.membership("rq_job_id", rq_ids)
        )

    def skip_outbox(self, queues: Sequence[str], job_ids: Sequence[int] | None, reason: str, now: datetime) -> int:
        if not queues or (job_ids is not None and not job_ids):
            return 0
        outbox = "status = 'queued' AND enqueued_at IS NULL"
        changed = 0
        for in_queues, queue_params in self.membership("queue", queues):
            if job_ids is None:
                changed += self._close("skipped", f"{outbox} AND {in_queues}", queue_params, reason, now)
                continue
            for of_jobs, job_params in self.membership("job_id", job_ids):
                changed += self._close("skipped", f"{outbox} AND {in_queues} AND {of_jobs}",
                                       [*queue_params, *job_params], reason, now)
        return changed

    def fail_active(self, rq_job_id: str, reason: str, now: datetime) -> int:
        return self._close("failed", f"rq_job_id = {self.p} AND status IN ('queued', 'started')", [rq_job_id],
                           reason, now)

    # --- retention ------------------------------------------------------------------------------------
    def prune_finished(self, cutoff: datetime, limit: int) -> int:
        p, at = self.p, self.param_dt(cutoff)
        return int(
            self.sql(
                "DELETE FROM scheduled_job_log WHERE id IN (SELECT id FROM scheduled_job_log "
                f"WHERE created_at < {p} AND modified_at < {p} AND status NOT IN ('queued', 'started') LIMIT {p})",
                [at, at, limit],
            ).rowcount
        )

    def job_schedules(self) -> list[tuple[int, str, str]]:
        rows = self.sql("SELECT id, frequency, cron_format FROM scheduled_job_type ORDER BY id").fetchall()
        return [(r[0], r[1], r[2] or "") for r in rows]

    def thinnable_runs(self, job_id: int, cutoff: datetime, below: int | None) -> list[tuple[int, datetime]]:
        p, at = self.p, self.param_dt(cutoff)
        rows = self.sql(
            f"SELECT id, scheduled_for FROM scheduled_job_log WHERE job_id = {p} AND status = 'complete' "
            f"AND trigger = 'schedule' AND slots = 1 AND created_at < {p} AND modified_at < {p}"
            + (f" AND id < {p}" if below is not None else "") + " ORDER BY scheduled_for",
            [job_id, at, at, *([below] if below is not None else [])],
        ).fetchall()
        return [(r[0], parse_dt(r[1])) for r in rows]

    def delete_ledger_rows(self, ids: Sequence[int]) -> int:
        return sum(
            int(self.sql(f"DELETE FROM scheduled_job_log WHERE {cond}", params).rowcount)
            for cond, params in self.membership("id", ids)
        )

    # --- backfill --------------------------------------------------------------------------------------
    row_lock = ""  # appended to a statement that locks a job's row for the transaction (PostgreSQL)

    def read_slot(self, job_id: int, lock: bool) -> datetime | None:
        row = self.sql(
            f"SELECT next_execution FROM scheduled_job_type WHERE id = {self.p}" + (self.row_lock if lock else ""),
            [job_id],
        ).fetchone()
        return None if row is None else parse_dt(row[0])

    def served_stretches(self, job_id: int, since: datetime) -> list[tuple[datetime, datetime]]:
        return self._stretches(job_id, since, "('queued', 'started', 'complete', 'failed')")

    def taken_run_ids(self, rq_ids: Sequence[str]) -> set[str]:
        taken: set[str] = set()
        for cond, params in self.membership("rq_job_id", rq_ids):
            taken.update(str(r[0]) for r in self.sql(f"SELECT rq_job_id FROM scheduled_job_log WHERE {cond}",
                                                     params).fetchall())
        return taken

    def not_run_stretches(self, job_id: int, since: datetime) -> list[tuple[datetime, datetime]]:
        return self._stretches(job_id, since, "('missed', 'skipped')")

    def _stretches(self, job_id: int, since: datetime, statuses: str) -> list[tuple[datetime, datetime]]:
        triggers = ", ".join(f"'{t.value}'" for t in SLOT_TRIGGERS)
        rows = self.sql(
            "SELECT scheduled_for, first_slot, last_slot FROM scheduled_job_log "
            f"WHERE job_id = {self.p} AND scheduled_for >= {self.p} AND trigger IN ({triggers}) "
            f"AND status IN {statuses}",
            [job_id, self.param_dt(since)],
        ).fetchall()
        return [(parse_dt(r[1] or r[0]), parse_dt(r[2] or r[0])) for r in rows]

    # --- stretches of inactivity -------------------------------------------------------------------------
    def open_inactivity(self) -> str | None:
        row = self.sql("SELECT reason FROM scheduler_inactivity WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1"
                       ).fetchone()
        return None if row is None else str(row[0])

    def switch_inactivity(self, reason: str | None, now: datetime) -> None:
        at = self.param_dt(now)
        self.sql(f"UPDATE scheduler_inactivity SET ended_at = {self.p} WHERE ended_at IS NULL", [at])
        if reason is not None:
            self.sql(f"INSERT INTO scheduler_inactivity (reason, since) VALUES ({self.p}, {self.p})", [reason, at])

    def inactive_stretches(self, since: datetime, limit: int) -> list[tuple[str, datetime, datetime | None]]:
        p = self.p
        rows = self.sql(
            f"SELECT reason, since, ended_at FROM scheduler_inactivity WHERE ended_at IS NULL OR ended_at > {p} "
            f"ORDER BY since DESC LIMIT {p}",
            [self.param_dt(since), limit],
        ).fetchall()
        return [(r[0], parse_dt(r[1]), parse_dt(r[2])) for r in rows]

    # --- health -----------------------------------------------------------------------------------------
    def integrity(self) -> str | None:
        return None  # the server checks its own pages (SQLite overrides)

    # --- values written by hand ------------------------------------------------------------------------
    def normalise_boolean_words(self) -> int:
        return 0  # a typed boolean column holds no words (SQLite overrides)

    def clear_untimely_slots(self) -> list[tuple[str, Any]]:
        return []  # a typed timestamp column holds only times (SQLite overrides)

    # --- the worker's run transitions -----------------------------------------------------------------
    def record_started(self, rq_job_id: str, worker: str | None, now: datetime) -> str:
        at = self.param_dt(now)
        with self.ledger_transaction():
            if self.sql(_START.format(p=self.p), (at, worker, at, at, rq_job_id)).rowcount:
                return LedgerStatus.STARTED
            known = (
                self.sql(f"SELECT 1 FROM scheduled_job_log WHERE rq_job_id = {self.p}", (rq_job_id,)).fetchone()
                is not None
            )
        return "duplicate" if known else "unknown"

    def lock_job_row(self, job_name: str) -> str:
        # SQLite: one writer at a time, nothing to order; only read what the job is
        row = self.sql(f"SELECT removed FROM scheduled_job_type WHERE name = {self.p}", (job_name,)).fetchone()
        return job_presence(row)

    def advance_last_execution(self, job_name: str, started: datetime) -> None:
        at = self.param_dt(started)
        with self.ledger_transaction():
            self.sql(_LAST_EXECUTION.format(p=self.p), (at, job_name, at))

    def started_at(self, rq_job_id: str) -> tuple[bool, datetime | None]:
        row = self.sql(f"SELECT started_at FROM scheduled_job_log WHERE rq_job_id = {self.p}", (rq_job_id,)).fetchone()
        return (False, None) if row is None else (True, parse_dt(row[0]))

    def record_finished(self, rq_job_id: str, outcome: Outcome) -> None:
        self.sql(FINISH.format(p=self.p), outcome.values(rq_job_id, self.param_dt(outcome.at)))

    def start_in_one_trip(self, rq_job_id: str, job_name: str, worker: str | None, now: datetime) -> str | None:
        return None  # only where a statement is a network round trip (PostgreSQL)

    def finish_in_one_trip(self, rq_job_id: str, outcome: Outcome) -> bool:
        return False


def job_presence(row: Any) -> str:
    """:data:`JOB_PRESENT`, :data:`JOB_REMOVED` or :data:`JOB_ABSENT` from the job's ``(removed,)`` row, or None."""
    if row is None:
        return JOB_ABSENT
    return JOB_REMOVED if flag(row[0]) else JOB_PRESENT


def ledger_columns() -> str:
    return ", ".join(LEDGER_COLUMNS)
