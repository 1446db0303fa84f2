"""The :class:`Store` protocol: every statement of the exactly-once protocol, of the worker's run transitions,
of the sweep, and every write an operator makes.

The scheduler (:mod:`hookscheduler.schedule`), the worker (:mod:`hookscheduler.worker`) and the operator library
(:mod:`hookscheduler.ops`) say *what* to read or write; a store says *how*, in its database's dialect:
:class:`~.sqlite.SqliteStore` and :class:`~.postgres.PostgresStore`. :func:`hookscheduler.store.store_for` picks
one per database connection and probes its capabilities once. The contract both keep is ``tests/store/``, one
suite run against each. The operator's reads are the read-side query modules :mod:`.ledger_reads` and
:mod:`.job_reads`; ``tests/store/test_boundary.py`` keeps statements from growing outside the package.

Timestamps cross this boundary as naive UTC ``datetime`` objects, both ways; how a dialect stores them is the
store's business.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

#: The reason a worker's late outcome writes over an "abandoned" verdict.
LATE_COMPLETION = "completed after the scheduler had declared it abandoned"
#: What the worker finds of a run's job when the run starts (:meth:`Store.lock_job_row`): the job is there, it
#: was removed from hooks (``removed``), or its row is gone (``migrate --prune``). The last two are also states
#: :meth:`Store.start_in_one_trip` returns: such a run is not started.
JOB_PRESENT = "present"
JOB_REMOVED = "removed"
JOB_ABSENT = "pruned"


def parse_dt(value: Any) -> Any:
    """A timestamp column as a datetime (SQLite hands raw SQL back the text peewee stored)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Probe:
    """What the one read-only statement a pass starts with says: the earliest next slot of any job (None:
    no job has one), the earliest slot of a claimed run still unsent (the outbox), the state keys
    ``scheduler_enabled`` and ``pause_until``, the reason of the open stretch of inactivity
    (``scheduler_inactivity``), if any, whether the sweep has anything to reconcile or repair, when the
    newest stretch of inactivity ended (the pass reads the stretches, to word its reasons, only when one may
    overlap the slots it decides), and the database's ``schema_version`` (the pass serves the site only while it
    is this hookscheduler's)."""

    earliest: datetime | None
    #: the earliest slot of a claimed run not yet sent (None: the outbox is empty); a run claimed ahead of its
    #: slot is in the outbox until it is sent at its slot, and only then due (I10)
    outbox_from: datetime | None
    enabled: str | None
    pause_until: str | None = None
    inactive_since: str | None = None
    active: bool = True  # some run is queued or started (the sweep's reconcile has work)
    unslotted: bool = True  # some active job has no next_execution (the sweep's repair has work)
    #: the end of the newest stretch of inactivity (None: there is none, or it is still open); the stretches
    #: follow each other, so no stretch ended later
    inactive_ended: datetime | None = None
    schema: str | None = None  # the state key ``schema_version`` as stored (None: no such row)

    def stretch_after(self, first: datetime) -> bool:
        """Could a stretch of inactivity overlap slots from ``first`` on? One is open (or was when the probe
        read it: the pass may just have closed it), or the newest one ended after ``first``."""
        return self.inactive_since is not None or (self.inactive_ended is not None and self.inactive_ended > first)

    @property
    def schema_version(self) -> int:
        """The schema version the probe read, as :func:`~hookscheduler.store.database.schema_version` reads it
        (no row, or an empty value: 0); -1 when it is not a number (written by hand: no version's own)."""
        if not self.schema:
            return 0
        try:
            return int(self.schema)
        except ValueError:
            return -1

    def due(self, now: datetime) -> bool:
        return self.earliest is not None and self.earliest <= now

    @property
    def outbox(self) -> bool:
        """Some claimed run is not yet sent (whether or not its slot has come)."""
        return self.outbox_from is not None

    def outbox_due(self, now: datetime) -> bool:
        """Some claimed run whose slot has come at ``now`` is not yet sent: the pass sends it (I3, I10)."""
        return self.outbox_from is not None and self.outbox_from <= now


@dataclass(frozen=True)
class DueRow:
    """The columns of a due ``scheduled_job_type`` row that a pass reads."""

    id: int
    name: str
    method: str
    frequency: str
    cron_format: str
    queue: str
    timeout: int
    catchup: str
    catchup_limit: int
    overlap: str
    stopped: bool
    next_execution: datetime
    stopped_until: datetime | None = None  # a stop with an end (``jobs disable --until T``)
    has_active: bool = True  # a run of the job is queued or started (read in the same statement)
    #: I9: the latest slot a ledger row of the job already stands for, when that is at or after
    #: ``next_execution`` (None: no row does, the usual answer; read in the same statement)
    decided: datetime | None = None


@dataclass(frozen=True)
class ActiveRun:
    """A ``queued`` or ``started`` ledger row (a run still active as far as the ledger knows)."""

    id: int
    job_id: int
    status: str
    rq_job_id: str | None
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Run:
    """One claimed run, as its outbox row describes it: what sending it to RQ needs."""

    rq_job_id: str
    site: str
    job_name: str
    method: str
    queue: str
    timeout: int
    scheduled_for: datetime
    trigger: str
    frequent: bool = False  # the job fires more than once an hour: short-lived Redis keys (FREQUENT_RESULT_TTL)


@dataclass(frozen=True)
class LateClaim:
    """An outbox row found late (:func:`hookscheduler.schedule.outbox.settle_late`): when it was claimed, and
    its job's catch-up policy and next slot, which decide what becomes of it."""

    rq_job_id: str
    claimed_at: datetime
    catchup: str
    next_execution: datetime | None
    catchup_limit: int = 10
    frequency: str = ""
    cron_format: str = ""


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as its worker records it: ``status`` at ``at``, after ``duration`` seconds (None: not
    known), with the traceback of a failure and the reason, if any."""

    status: str
    at: datetime
    duration: float | None = None
    traceback: str | None = None
    reason: str | None = None

    def values(self, rq_job_id: str, at: Any) -> tuple[Any, ...]:
        """The parameters of the outcome statement (``at``: the time as the dialect takes it)."""
        return (
            self.status,
            at,
            at,
            self.duration,
            self.traceback,
            self.reason,
            self.reason,
            self.status,
            LATE_COMPLETION,
            rq_job_id,
        )


@dataclass(frozen=True)
class LatestRow:
    """The newest ledger row of a job: the one a skip that goes on extends."""

    id: int
    job_id: int
    status: str
    reason: str | None


@dataclass(frozen=True)
class ClaimRequest:
    """Move job ``id`` from ``served`` (the slot it was due at) to ``next`` only if it still says ``served``."""

    id: int
    served: datetime
    next: datetime


#: A ledger row to insert, in :data:`LEDGER_COLUMNS` order.
LedgerValues = tuple[Any, ...]
LEDGER_COLUMNS = (
    "job_id",
    "job_name",
    "scheduled_for",
    "trigger",
    "status",
    "reason",
    "slots",
    "first_slot",
    "last_slot",
    "queue",
    "rq_job_id",
    "created_at",
    "modified_at",
)

#: The columns a new job row is inserted with (:meth:`Store.insert_jobs`), in this order; the store adds
#: ``stopped`` and ``removed`` false and ``created_at``/``modified_at`` now.
JOB_INSERT_COLUMNS = (
    "name",
    "app",
    "method",
    "frequency",
    "cron_format",
    "queue",
    "timeout",
    "catchup",
    "catchup_limit",
    "overlap",
    "next_execution",
)


class Store(Protocol):
    """One site database's statements. Every method runs in the caller's transaction when one is open
    (:meth:`transaction`), else on its own; none commits behind the caller's back except the one-trip worker
    writes, which exist to commit in the same round trip."""

    #: Due rows per batch of a pass: one transaction's worth.
    batch: int

    # --- the pass -------------------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """A transaction that will write (SQLite takes the write lock at once: one writer at a time)."""
        ...

    def probe(self) -> Probe:
        """The pass's first statement: read-only, answered from indexes, one round trip."""
        ...

    def select_due(self, now: datetime, limit: int) -> list[DueRow]:
        """Up to ``limit`` rows due at ``now``, oldest slot first; on PostgreSQL locked, skipping locked rows."""
        ...

    def claim(self, requests: Sequence[ClaimRequest]) -> set[int]:
        """The compare-and-set of every request; returns the ids won (a row whose slot moved meanwhile is lost)."""
        ...

    def insert_ledger_rows(self, rows: Sequence[LedgerValues]) -> None:
        """Bulk insert ledger rows (:data:`LEDGER_COLUMNS` order)."""
        ...

    def claim_and_record(self, requests: Sequence[ClaimRequest], rows: Sequence[LedgerValues]) -> set[int]:
        """:meth:`claim`, then :meth:`insert_ledger_rows` of the ``rows`` whose job (their first value) was won;
        returns the ids won. PostgreSQL does both in one statement."""
        ...

    def latest_rows(self, job_ids: Sequence[int]) -> dict[int, LatestRow]:
        """The newest ledger row of each job that has one."""
        ...

    def extend_skip(self, row_id: int, slots: int, last_slot: datetime, scheduled_for: datetime, now: datetime) -> None:
        """Add ``slots`` skipped slots to an existing ``skipped`` row."""
        ...

    def end_stop(self, job_id: int, stopped_until: datetime) -> None:
        """A stop whose ``--until`` has come: clear it (if it is still that stop), the audit columns saying it
        ended by itself at its time."""
        ...

    # --- the outbox -----------------------------------------------------------------------------------
    def outbox(self, site: str, limit: int, now: datetime) -> list[Run]:
        """Claimed runs never marked sent whose slot has come (``scheduled_for <= now``), oldest first
        (``site``: the site they are for). I10: a run claimed ahead of its slot is not selected before it."""
        ...

    def late_claims(self, rq_ids: Sequence[str]) -> list[LateClaim]:
        """Of the runs ``rq_ids``, the on-time claims still unsent: ``queued``, never sent (``enqueued_at`` NULL),
        trigger ``schedule`` and no reason (a run the sweep put back for a re-send has one), with their job's
        ``catchup``, ``next_execution``, ``catchup_limit``, ``frequency`` and ``cron_format``."""
        ...

    def settle_late(self, rq_job_id: str, status: str, trigger: str, reason: str, now: datetime) -> bool:
        """A late claim (:meth:`late_claims`) becomes ``status`` (``missed``; or ``queued`` to send it late)
        with ``trigger`` and ``reason``, only if it is still one (a compare-and-set: another process may have
        sent or settled it meanwhile); returns whether it changed."""
        ...

    def mark_sent(self, rq_ids: Sequence[str], at: datetime | Sequence[datetime]) -> None:
        """Close the outbox rows of runs now in RQ, stamped ``at`` (one time for all, or one per id, in
        order); a row already closed keeps its stamp."""
        ...

    def fail_unsendable(self, rq_job_id: str, reason: str, now: datetime) -> None:
        """Take a run RQ refuses out of the outbox: ``failed``, with why (it would block the outbox for ever)."""
        ...

    # --- active runs ----------------------------------------------------------------------------------
    def active_runs_of(self, job_ids: Sequence[int]) -> list[ActiveRun]:
        """The ``queued``/``started`` ledger rows of these jobs."""
        ...

    def active_runs(self, limit: int) -> list[tuple[ActiveRun, int]]:
        """Up to ``limit`` active ledger rows of the site, oldest first, each with its job's timeout."""
        ...

    def mark_for_resend(self, row_id: int, now: datetime, reason: str) -> None:
        """Put a ``queued`` run Redis lost back in the outbox."""
        ...

    def settle_run(self, row_id: int, status: str, reason: str | None, now: datetime, finish: bool) -> None:
        """Write an active run's final status (``finish``: stamp ``finished_at`` too)."""
        ...

    def note_requeued(self, rq_ids: Sequence[str], now: datetime, reason: str) -> None:
        """Note on ``queued`` rows that their run was put back on its queue."""
        ...

    # --- slots ----------------------------------------------------------------------------------------
    def jobs_without_slot(self) -> list[tuple[int, str, str]]:
        """``(id, frequency, cron_format)`` of the active jobs whose ``next_execution`` is NULL."""
        ...

    def set_missing_slot(self, job_id: int, slot: datetime) -> int:
        """Give job ``job_id`` its next slot if it still has none; returns rows changed (0 or 1)."""
        ...

    def job_slots(self) -> list[tuple[int, str, str, datetime | None]]:
        """``(id, frequency, cron_format, next_execution)`` of every active job (a re-anchor reads them all)."""
        ...

    def set_slot(self, job_id: int, slot: datetime) -> None:
        """Move job ``job_id``'s next slot to ``slot``."""
        ...

    def earliest_next(self) -> datetime | None:
        """The earliest next slot of any active job."""
        ...

    def slots_after(self, now: datetime) -> list[tuple[int, str, str, datetime]]:
        """``(id, frequency, cron_format, next_execution)`` of the active jobs whose next slot lies after ``now``
        (a ``next_execution`` written by hand that is not a time is handed over as it is)."""
        ...

    def move_slot(self, job_id: int, served: datetime, to: datetime, now: datetime | None = None) -> int:
        """Move job ``job_id``'s next slot from ``served`` to ``to`` only if it still says ``served`` (a
        compare-and-set; ``now``: stamp ``modified_at``); returns rows changed (0 or 1)."""
        ...

    def covered_after(self, job_ids: Sequence[int], now: datetime) -> dict[int, datetime]:
        """Each job's latest slot a ledger row of a slot trigger (schedule, catch-up, backfill; any status)
        stands for, where that lies after ``now``: ``last_slot``, or ``scheduled_for`` for a one-slot row."""
        ...

    def runs_decided_after(self, created_after: datetime) -> int:
        """How many runs a pass decided (schedule or catch-up, neither missed nor skipped) after the instant."""
        ...

    # --- migrate ---------------------------------------------------------------------------------------
    def job_columns(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """``columns`` of every job row, oldest first, as plain tuples (no model instances: building 10,000 of
        them, with their timestamps, costs seconds); values as the dialect hands them back."""
        ...

    def param_dt(self, value: datetime | None) -> Any:
        """A timestamp as the dialect takes it as a statement parameter (ISO text on SQLite)."""
        ...

    def insert_jobs(self, rows: Sequence[tuple[Any, ...]], now: datetime) -> None:
        """New job rows (:data:`JOB_INSERT_COLUMNS` order; ``next_execution`` as :meth:`param_dt` gives it, so
        that a caller converts each of the few distinct first slots once), not stopped, not removed, created and
        modified ``now``, in as few statements as the dialect allows."""
        ...

    def update_job(self, job_id: int, values: dict[str, Any]) -> None:
        """Write ``values`` (column -> value; only the job table's columns) into job ``job_id``."""
        ...

    def remove_jobs(self, names: Sequence[str], now: datetime) -> None:
        """Jobs no longer declared: removed at ``now``, with no next slot (their rows and ledger are kept)."""
        ...

    def delete_jobs(self, job_ids: Sequence[int]) -> None:
        """Delete these jobs and their ledger rows (``migrate --prune``)."""
        ...

    # --- the operator's job writes ----------------------------------------------------------------------
    def write_stop(self, job_id: int, stopped: bool, now: datetime, audit: dict[str, Any]) -> None:
        """Stop or re-enable job ``job_id`` (``modified_at`` = ``now``), writing the stop columns given in
        ``audit`` (``stopped_note``, ``stopped_by``, ``stopped_at``, ``stopped_until``; others are refused)."""
        ...

    # --- the operator's ledger writes (queues, RQ's jobs) ------------------------------------------------
    def add_ledger_row(self, values: LedgerValues, finished_at: datetime | None = None) -> None:
        """Insert one ledger row (:data:`LEDGER_COLUMNS` order), ``finished_at`` set for a row decided at once
        (an operator's run skipped under overlap): a run on request, outside a pass."""
        ...

    def outbox_size(self) -> int:
        """How many claimed runs are not yet marked sent (the outbox), those claimed ahead of their slot
        included: they are not in Redis yet, and are about to be."""
        ...

    def queued_rq_ids(self, job_ids: Sequence[int]) -> set[str]:
        """The RQ ids of these jobs' ``queued`` runs."""
        ...

    def skip_queued(self, rq_ids: Sequence[str], reason: str, now: datetime) -> int:
        """Runs removed from RQ before they started: their ``queued`` rows become ``skipped`` with ``reason``;
        returns rows changed."""
        ...

    def skip_outbox(self, queues: Sequence[str], job_ids: Sequence[int] | None, reason: str, now: datetime) -> int:
        """The outbox rows of ``queues`` (of ``job_ids`` only, unless None) become ``skipped`` with ``reason``:
        runs purged before they were ever sent; returns rows changed."""
        ...

    def fail_active(self, rq_job_id: str, reason: str, now: datetime) -> int:
        """An operator stopped a run: its ``queued`` or ``started`` row becomes ``failed`` with ``reason``."""
        ...

    # --- retention ------------------------------------------------------------------------------------
    def prune_finished(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` ledger rows of runs no longer active whose ``created_at`` and ``modified_at``
        are both before ``cutoff``, in one statement; returns how many."""
        ...

    def job_schedules(self) -> list[tuple[int, str, str]]:
        """``(id, frequency, cron_format)`` of every job, removed ones included."""
        ...

    def thinnable_runs(self, job_id: int, cutoff: datetime, below: int | None) -> list[tuple[int, datetime]]:
        """``(id, scheduled_for)`` of the job's ``complete`` one-slot runs of trigger ``schedule`` created and
        last changed before ``cutoff`` (with ids below ``below``, unless None), in slot order."""
        ...

    def delete_ledger_rows(self, ids: Sequence[int]) -> int:
        """Delete these ledger rows; returns how many."""
        ...

    # --- backfill --------------------------------------------------------------------------------------
    def read_slot(self, job_id: int, lock: bool) -> datetime | None:
        """Job ``job_id``'s ``next_execution``; ``lock``: inside a write transaction, lock its row for the rest
        of it (PostgreSQL ``FOR UPDATE``; SQLite's one writer holds it already), so that the pass's claim waits."""
        ...

    def served_stretches(self, job_id: int, since: datetime) -> list[tuple[datetime, datetime]]:
        """``(first, last)`` slots of each run of a slot trigger (schedule, catch-up, backfill) of the job that
        ran or may run (queued, started, complete or failed), stamped at or after ``since`` (a run's row is stamped with
        the last slot it covers, so this finds every run covering a slot from ``since`` on)."""
        ...

    def taken_run_ids(self, rq_ids: Sequence[str]) -> set[str]:
        """Which of ``rq_ids`` a ledger row already holds (each RQ id is unique in the ledger)."""
        ...

    def not_run_stretches(self, job_id: int, since: datetime) -> list[tuple[datetime, datetime]]:
        """``(first, last)`` slots of each ``missed`` or ``skipped`` row of a slot trigger of the job, stamped at
        or after ``since``: slots the ledger says did not run (thinning keeps these rows)."""
        ...

    # --- stretches of inactivity -------------------------------------------------------------------------
    def open_inactivity(self) -> str | None:
        """The reason of the open stretch of inactivity (``scheduler_inactivity``), None when active."""
        ...

    def switch_inactivity(self, reason: str | None, now: datetime) -> None:
        """End the open stretch at ``now`` and, with a ``reason``, open a new one since ``now``."""
        ...

    def inactive_stretches(self, since: datetime, limit: int) -> list[tuple[str, datetime, datetime | None]]:
        """``(reason, since, ended_at)`` of up to ``limit`` stretches that ended after ``since`` or have not
        ended, newest first."""
        ...

    # --- health -----------------------------------------------------------------------------------------
    def integrity(self) -> str | None:
        """The database's first problems reading its own pages, or None (SQLite's ``quick_check``: every page
        and record readable, indexes not compared; PostgreSQL checks its own pages: None)."""
        ...

    # --- values written by hand ------------------------------------------------------------------------
    def normalise_boolean_words(self) -> int:
        """Boolean columns of ``scheduled_job_type`` holding a word for a boolean (``'false'``, ``'Yes'``) hold
        0/1 instead; returns the rows changed (0 where typed columns refuse such words: PostgreSQL)."""
        ...

    def clear_untimely_slots(self) -> list[tuple[str, Any]]:
        """Set to NULL every ``next_execution`` that is not a time (for the repair to reschedule); returns
        ``(job name, the value it held)`` of each (none where typed columns refuse such values: PostgreSQL)."""
        ...

    # --- the worker's run transitions -----------------------------------------------------------------
    def ledger_transaction(self) -> AbstractContextManager[None]:
        """A transaction for the worker's ledger writes: it never waits long for a lock."""
        ...

    def record_started(self, rq_job_id: str, worker: str | None, now: datetime) -> str:
        """``queued -> started`` (a compare-and-set): ``started``, ``duplicate`` or ``unknown``."""
        ...

    def lock_job_row(self, job_name: str) -> str:
        """Inside the start's transaction: lock the job's row before the run's ledger row, and say what it is:
        :data:`JOB_PRESENT`, :data:`JOB_REMOVED` (removed from hooks) or :data:`JOB_ABSENT` (pruned)."""
        ...

    def advance_last_execution(self, job_name: str, started: datetime) -> None:
        """``last_execution`` moves to ``started`` unless it is later already."""
        ...

    def started_at(self, rq_job_id: str) -> tuple[bool, datetime | None]:
        """Whether the run has a ledger row, and when it started."""
        ...

    def record_finished(self, rq_job_id: str, outcome: Outcome) -> None:
        """Write a run's outcome."""
        ...

    def start_in_one_trip(self, rq_job_id: str, job_name: str, worker: str | None, now: datetime) -> str | None:
        """The start and ``last_execution`` in one round trip, committed; None: take the careful path. A job
        removed from hooks or pruned is not started: :data:`JOB_REMOVED` or :data:`JOB_ABSENT`."""
        ...

    def finish_in_one_trip(self, rq_job_id: str, outcome: Outcome) -> bool:
        """The outcome in one round trip, committed; False: take the careful path."""
        ...


def stamps(rq_ids: Sequence[str], at: datetime | Sequence[datetime]) -> list[datetime]:
    """:meth:`Store.mark_sent`'s ``at`` as one time per id."""
    if isinstance(at, datetime):
        return [at] * len(rq_ids)
    if len(at) != len(rq_ids):
        raise ValueError(f"{len(rq_ids)} ids but {len(at)} times")
    return list(at)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
