"""The tables. Their names and columns are a contract: operators query and edit them with SQL.

Models are bound late through :data:`database_proxy`, so importing this module opens no connection; the CLI
(or :func:`hookscheduler.store.database.bind`) binds the site's database. Every timestamp is a naive datetime in UTC.

Column ownership (kept by ``migrate``):

* hooks own the definition: ``app``, ``method``, ``frequency``, ``cron_format``, ``queue``, ``timeout``,
  ``catchup``, ``catchup_limit``, ``overlap``;
* operators own ``stopped`` and ``stopped_note`` / ``stopped_by`` / ``stopped_at`` / ``stopped_until``;
* the runtime owns ``last_execution``, ``next_execution`` and the log.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

# utcnow is re-exported: the wall clock, or the simulated clock of a chaos run (hookscheduler.clock)
from ..states import ACTIVE_STATUSES as ACTIVE_STATUSES
from ..states import CatchUp, LedgerStatus, Overlap, Trigger
from ..timing.clock import utcnow as utcnow
from .values import FlagField

database_proxy: Any = pw.DatabaseProxy()


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class ScheduledJobType(BaseModel):
    """One row per declared job."""

    id = pw.AutoField()  # peewee's implicit primary key, spelled out so type checkers know it
    name = pw.CharField(max_length=255, unique=True)
    app = pw.CharField(max_length=140)
    method = pw.CharField(max_length=255)
    frequency = pw.CharField(max_length=32)
    cron_format = pw.CharField(max_length=140, default="")
    queue = pw.CharField(max_length=64)
    timeout = pw.IntegerField()
    catchup = pw.CharField(max_length=8, default=CatchUp.ONCE)
    catchup_limit = pw.IntegerField(default=10)
    overlap = pw.CharField(max_length=8, default=Overlap.SKIP)
    stopped = FlagField(default=False)  # a word written with SQL reads as it says (store/values.py)
    stopped_note = pw.TextField(null=True)
    stopped_by = pw.CharField(max_length=140, null=True)
    stopped_at = pw.DateTimeField(null=True)
    #: ``jobs disable --until T`` (schema v4): the stop ends by itself at T, slots from T on run again
    stopped_until = pw.DateTimeField(null=True)
    removed = FlagField(default=False)
    removed_at = pw.DateTimeField(null=True)
    last_execution = pw.DateTimeField(null=True)
    next_execution = pw.DateTimeField(null=True, index=True)
    created_at = pw.DateTimeField(default=utcnow)
    modified_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "scheduled_job_type"


class ScheduledJobLog(BaseModel):
    """The run history and slot ledger: one row per slot (or run of slots) the scheduler decided about."""

    id = pw.BigAutoField()
    job = pw.ForeignKeyField(ScheduledJobType, backref="logs", on_delete="CASCADE", column_name="job_id")
    job_id: int  # the raw foreign key peewee adds for ``job`` (declared for type checkers only)
    job_name = pw.CharField(max_length=255)
    scheduled_for = pw.DateTimeField()
    trigger = pw.CharField(max_length=16)  # a Trigger
    status = pw.CharField(max_length=16)  # a LedgerStatus
    reason = pw.TextField(null=True)
    slots = pw.IntegerField(default=1)
    first_slot = pw.DateTimeField(null=True)
    last_slot = pw.DateTimeField(null=True)
    queue = pw.CharField(max_length=64, null=True)
    rq_job_id = pw.CharField(max_length=255, null=True, unique=True)
    enqueued_at = pw.DateTimeField(null=True)
    started_at = pw.DateTimeField(null=True)
    finished_at = pw.DateTimeField(null=True)
    duration = pw.FloatField(null=True)
    worker = pw.CharField(max_length=255, null=True)
    traceback = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    modified_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "scheduled_job_log"
        # Schema version 1's indexes (created by create_tables); version 2 (db._v2) drops the job_id index and
        # replaces (job, status) and (status, enqueued_at) with partial indexes for active runs and the outbox.
        indexes = (
            (("job", "scheduled_for"), False),
            (("job", "status"), False),
            (("status", "enqueued_at"), False),
        )


class SchedulerState(BaseModel):
    """Scheduler-level state of a site (schema version, enabled flag and its note)."""

    key = pw.CharField(max_length=64, primary_key=True)
    value = pw.TextField(null=True)
    modified_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "scheduler_state"


class SchedulerInactivity(BaseModel):
    """One stretch of time during which a site's scheduler was inactive (paused, disabled, in maintenance),
    as the passes saw it (schema v4). Slots due meanwhile are held, not decided; when the scheduler is active
    again each job's ``catchup`` policy decides them, and these rows let the decision (and ``jobs explain``)
    say that the slots passed during a pause rather than while no scheduler was running."""

    id = pw.AutoField()
    reason = pw.TextField()
    since = pw.DateTimeField()
    ended_at = pw.DateTimeField(null=True)  # None: still inactive

    class Meta:
        table_name = "scheduler_inactivity"


ALL_MODELS: tuple[type[BaseModel], ...] = (ScheduledJobType, ScheduledJobLog, SchedulerState, SchedulerInactivity)

LOG_STATUSES: tuple[str, ...] = tuple(s.value for s in LedgerStatus)
TRIGGERS: tuple[str, ...] = tuple(t.value for t in Trigger)
