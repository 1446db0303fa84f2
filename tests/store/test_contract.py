"""The store contract: every statement of the exactly-once protocol and of the worker's run transitions, run
against :class:`SqliteStore` and :class:`PostgresStore` alike (the ``store`` fixture). A behaviour either store
lacks fails here, not in a scheduler."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import pytest

from hookscheduler.exceptions import ConfigError
from hookscheduler.store import PostgresStore, SqliteStore, Store, store_for
from hookscheduler.store.base import JOB_ABSENT, JOB_PRESENT, JOB_REMOVED, ClaimRequest, Outcome, Run
from hookscheduler.store.database import SCHEMA_VERSION, set_state
from hookscheduler.store.models import ScheduledJobLog, ScheduledJobType, database_proxy
from hookscheduler.store.sqlite import CHUNK
from tests.store.support import T0
from tests.store.support import make_job as _job

LATER = T0 + timedelta(days=1)  # a `now` by which every run of these tests is due


def _ledger_row(
    job: ScheduledJobType, slot: datetime, status: str = "queued", rq_id: str | None = None, reason: str | None = None
) -> tuple:
    return (job.id, job.name, slot, "schedule", status, reason, 1, slot, slot, "default", rq_id, T0, T0)


def _row(rq_id: str) -> ScheduledJobLog:
    return ScheduledJobLog.get(ScheduledJobLog.rq_job_id == rq_id)


def test_the_store_matches_the_dialect_and_is_made_once(store: Store):
    db = database_proxy.obj
    assert store_for(db) is store
    assert isinstance(store, PostgresStore if "Postgres" in type(db).__name__ else SqliteStore)
    assert store.batch > 0


def test_a_store_lives_and_dies_with_its_database_object(tmp_path):
    import gc
    import weakref

    import peewee as pw

    db = pw.SqliteDatabase(str(tmp_path / "x.db"))
    store = weakref.ref(store_for(db))
    assert store_for(db) is store()
    del db
    gc.collect()
    assert store() is None  # a site reopened many times does not keep every old store (and database) alive


def test_an_old_sqlite_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    import peewee as pw

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(ConfigError, match=r"SQLite 3\.31\.1 is too old.*3\.35\.0 or newer.*PostgreSQL"):
        SqliteStore(pw.SqliteDatabase(str(tmp_path / "x.db")))


def test_an_old_postgresql_is_refused_with_a_clear_error():
    import peewee as pw

    db = pw.PostgresqlDatabase("never-connected")
    db.server_version = 90424  # 9.4: no SKIP LOCKED
    with pytest.raises(ConfigError, match=r"PostgreSQL 9\.4 is too old: hookscheduler needs 9\.5 or newer"):
        PostgresStore(db)
    db.server_version = 90500
    assert PostgresStore(db).server_version == 90500  # the version is read once, no connection needed


def test_probe_reads_the_schema_version_in_its_one_statement(store: Store):
    """The pass refuses a schema that is not its own from this answer (schedule/claim.py): no statement more."""
    assert store.probe().schema_version == SCHEMA_VERSION
    for stored, read in ((str(SCHEMA_VERSION + 1), SCHEMA_VERSION + 1), ("", 0), (None, 0), ("x", -1)):
        set_state("schema_version", stored)
        assert (store.probe().schema, store.probe().schema_version) == (stored, read)


def test_probe_on_an_empty_site_and_with_work(store: Store):
    probe = store.probe()
    assert (probe.earliest, probe.outbox, probe.enabled) == (None, False, None)
    assert not probe.due(T0) and not probe.active and not probe.unslotted
    _job("unslotted", None)
    assert store.probe().unslotted
    job = _job("a", T0 + timedelta(minutes=5))
    _job("gone", T0 - timedelta(days=1), removed=True)  # a removed job is never due
    set_state("scheduler_enabled", "0")
    probe = store.probe()
    assert (probe.earliest, probe.outbox, probe.enabled) == (T0 + timedelta(minutes=5), False, "0")
    assert not probe.due(T0) and probe.due(T0 + timedelta(minutes=5))
    store.insert_ledger_rows([_ledger_row(job, T0, rq_id="r1")])
    assert store.probe().outbox and store.probe().active
    store.mark_sent(["r1"], T0)
    assert not store.probe().outbox and store.probe().active  # sent, still queued: active


def test_i10_the_outbox_holds_a_run_claimed_ahead_until_its_slot(store: Store):
    """I10: a run committed ahead of its slot is in the outbox (the probe says so: its slot is the earliest
    unsent one) but no pass sends it before that slot: neither the probe's due flag nor the outbox's selection
    counts it at an earlier ``now``. Without ``scheduled_for <= now`` both would hand it to any pass at once."""
    a, b = _job("a"), _job("b")
    slot = T0 + timedelta(seconds=1)
    store.insert_ledger_rows([_ledger_row(a, slot, rq_id="ahead")])
    probe = store.probe()
    assert probe.outbox and probe.outbox_from == slot
    assert not probe.outbox_due(T0) and not probe.outbox_due(slot - timedelta(microseconds=1))
    assert probe.outbox_due(slot) and probe.outbox_due(slot + timedelta(minutes=1))
    assert store.outbox("s", 10, T0) == [] and store.outbox("s", 10, slot - timedelta(microseconds=1)) == []
    assert [r.rq_job_id for r in store.outbox("s", 10, slot)] == ["ahead"]
    assert store.outbox_size() == 1  # not in Redis yet: it counts (a site with it is not ready to migrate)
    store.insert_ledger_rows([_ledger_row(b, T0 - timedelta(minutes=1), rq_id="due")])
    assert store.probe().outbox_from == T0 - timedelta(minutes=1) and store.probe().outbox_due(T0)
    assert [r.rq_job_id for r in store.outbox("s", 10, T0)] == ["due"]  # the due one only
    store.mark_sent(["due", "ahead"], slot)
    assert store.probe().outbox_from is None and not store.probe().outbox


def test_probe_reads_the_pause_and_the_open_stretch_of_inactivity(store: Store):
    from hookscheduler.store.models import SchedulerInactivity

    set_state("pause_until", "2026-01-05 12:00:00")
    SchedulerInactivity.create(reason="old", since=T0 - timedelta(days=1), ended_at=T0 - timedelta(hours=20))
    SchedulerInactivity.create(reason="scheduler inactive: pause_scheduler is set", since=T0)
    probe = store.probe()
    assert probe.pause_until == "2026-01-05 12:00:00"
    assert probe.inactive_since == "scheduler inactive: pause_scheduler is set"
    assert probe.inactive_ended is None and probe.stretch_after(T0 + timedelta(days=1))  # the newest is open
    with store.transaction():
        store.switch_inactivity(None, T0 + timedelta(seconds=40))
    probe = store.probe()
    assert probe.inactive_since is None and probe.inactive_ended == T0 + timedelta(seconds=40)
    assert probe.stretch_after(T0 + timedelta(seconds=39)) and not probe.stretch_after(T0 + timedelta(seconds=40))


def test_probe_of_a_site_never_inactive_says_no_stretch_can_overlap(store: Store):
    probe = store.probe()
    assert (probe.inactive_since, probe.inactive_ended) == (None, None) and not probe.stretch_after(T0)


def test_stretches_of_inactivity_opened_ended_and_read_back(store: Store):
    assert store.open_inactivity() is None and store.inactive_stretches(T0, 10) == []
    hour = timedelta(hours=1)
    with store.transaction():
        store.switch_inactivity("paused", T0)
    assert store.open_inactivity() == "paused"
    with store.transaction():
        store.switch_inactivity("disabled", T0 + hour)  # the paused stretch ends where the disabled one begins
    with store.transaction():
        store.switch_inactivity(None, T0 + 2 * hour)
    assert store.open_inactivity() is None
    assert store.inactive_stretches(T0, 10) == [("disabled", T0 + hour, T0 + 2 * hour), ("paused", T0, T0 + hour)]
    assert store.inactive_stretches(T0 + hour, 10) == [("disabled", T0 + hour, T0 + 2 * hour)]  # ended after
    assert store.inactive_stretches(T0, 1) == [("disabled", T0 + hour, T0 + 2 * hour)]
    with store.transaction():
        store.switch_inactivity("maintenance", T0 + 3 * hour)
    assert store.inactive_stretches(T0 + 5 * hour, 10) == [("maintenance", T0 + 3 * hour, None)]  # still open


def test_select_due_oldest_first_within_the_limit(store: Store):
    _job("late", T0 - timedelta(hours=2))
    _job("now", T0)
    _job("later", T0 + timedelta(seconds=1))
    _job(
        "stopped",
        T0 - timedelta(hours=1),
        stopped=True,  # stopped rows are due: the pass records the skip
        stopped_until=T0 + timedelta(days=1),
    )
    _job("removed", T0 - timedelta(hours=3), removed=True)
    with store.transaction():
        rows = store.select_due(T0, 10)
    assert [r.name for r in rows] == ["late", "stopped", "now"]
    assert rows[1].stopped and rows[1].stopped_until == T0 + timedelta(days=1) and rows[0].stopped_until is None
    assert rows[0].next_execution == T0 - timedelta(hours=2)
    assert (rows[0].method, rows[0].queue, rows[0].timeout, rows[0].cron_format) == (
        "app1.tasks.late",
        "default",
        300,
        "",
    )
    with store.transaction():
        assert [r.name for r in store.select_due(T0, 2)] == ["late", "stopped"]
    assert not any(r.has_active for r in rows)
    late = ScheduledJobType.get(ScheduledJobType.name == "late")
    store.insert_ledger_rows([_ledger_row(late, T0, rq_id="r1")])
    with store.transaction():
        assert [r.has_active for r in store.select_due(T0, 10)] == [True, False, False]


def test_claim_is_a_compare_and_set(store: Store):
    a, b = _job("a"), _job("b")
    nxt = T0 + timedelta(hours=1)
    with store.transaction():
        assert store.claim([ClaimRequest(a.id, T0, nxt), ClaimRequest(b.id, T0 - timedelta(hours=1), nxt)]) == {a.id}
    with store.transaction():
        assert store.claim([ClaimRequest(a.id, T0, nxt)]) == set()  # the slot moved: a second claim loses
        assert store.claim([]) == set()
    assert ScheduledJobType.get_by_id(a.id).next_execution == nxt
    assert ScheduledJobType.get_by_id(b.id).next_execution == T0  # lost: untouched


def test_claim_and_record_writes_the_ledger_rows_of_the_won_jobs_only(store: Store):
    """The pass's claim and ledger rows together (one statement on PostgreSQL): a lost claim writes no row, a
    won one writes all of its rows; a second claim of the same slots wins and writes nothing."""
    a, b = _job("a"), _job("b")
    nxt = T0 + timedelta(hours=1)
    requests = [ClaimRequest(a.id, T0, nxt), ClaimRequest(b.id, T0 - timedelta(hours=1), nxt)]
    rows = [_ledger_row(a, T0, rq_id="ra"), _ledger_row(a, T0, status="missed"), _ledger_row(b, T0, rq_id="rb")]
    with store.transaction():
        assert store.claim_and_record(requests, rows) == {a.id}
    assert sorted((r.job_id, r.status) for r in ScheduledJobLog.select()) == [(a.id, "missed"), (a.id, "queued")]
    assert ScheduledJobType.get_by_id(b.id).next_execution == T0
    with store.transaction():
        assert store.claim_and_record(requests, rows) == set()
        assert store.claim_and_record([], rows) == set()
    assert ScheduledJobLog.select().count() == 2
    with pytest.raises(RuntimeError), store.transaction():  # rolled back: neither the claim nor the rows stay
        assert store.claim_and_record([ClaimRequest(b.id, T0, nxt)], rows) == {b.id}
        raise RuntimeError("killed between the claim and the commit")
    assert ScheduledJobType.get_by_id(b.id).next_execution == T0 and ScheduledJobLog.select().count() == 2


def test_claim_and_record_keeps_any_text_and_time_as_written(store: Store):
    """Quotes, backslashes, braces, commas, a NULL that is a word, an empty string, non-ASCII text and
    microseconds come back from the ledger as they went in (PostgreSQL sends them as array literals)."""
    a = _job("a")
    reason = 'he said "no", {x}\\ \\"y\' NULL é—日'
    slot = T0 + timedelta(microseconds=7)
    row = (a.id, 'name, "quoted"', slot, "schedule", "queued", reason, 3, slot, T0, "", "NULL", T0, T0)
    with store.transaction():
        assert store.claim_and_record([ClaimRequest(a.id, T0, T0 + timedelta(hours=1))], [row]) == {a.id}
    got = ScheduledJobLog.get()
    assert (got.job_name, got.reason, got.queue, got.rq_job_id, got.slots) == ('name, "quoted"', reason, "", "NULL", 3)
    assert (got.scheduled_for, got.first_slot, got.last_slot) == (slot, slot, T0)


def test_mark_sent_stamps_each_run_with_its_own_time(store: Store):
    a, b = _job("a"), _job("b")
    store.insert_ledger_rows([_ledger_row(a, T0, rq_id="ra"), _ledger_row(b, T0, rq_id="rb")])
    store.mark_sent(["ra", "rb"], [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)])
    got = {r.rq_job_id: r.enqueued_at for r in ScheduledJobLog.select()}
    assert got == {"ra": T0 + timedelta(seconds=1), "rb": T0 + timedelta(seconds=2)}
    with pytest.raises(ValueError):
        store.mark_sent(["ra", "rb"], [T0])


def test_claim_and_ledger_rows_beyond_one_statements_worth(store: Store):
    n = CHUNK * 2 + 7
    jobs = [_job(f"j{i}") for i in range(n)]
    nxt = T0 + timedelta(hours=1)
    with store.transaction():
        won = store.claim([ClaimRequest(j.id, T0, nxt) for j in jobs])
        store.insert_ledger_rows([_ledger_row(j, T0, rq_id=f"r{j.id}") for j in jobs])
    assert won == {j.id for j in jobs}
    assert len(store.outbox("s", n + 10, LATER)) == n
    assert len(store.active_runs_of([j.id for j in jobs])) == n
    store.mark_sent([f"r{j.id}" for j in jobs], T0)
    assert store.outbox("s", n, LATER) == [] and not store.probe().outbox


def test_a_rolled_back_claim_leaves_nothing(store: Store):
    a = _job("a")
    with pytest.raises(RuntimeError), store.transaction():
        assert store.claim([ClaimRequest(a.id, T0, T0 + timedelta(hours=1))]) == {a.id}
        store.insert_ledger_rows([_ledger_row(a, T0, rq_id="r1")])
        raise RuntimeError("killed between the claim and the commit")
    assert ScheduledJobType.get_by_id(a.id).next_execution == T0
    assert store.outbox("s", 10, LATER) == [] and ScheduledJobLog.select().count() == 0


def test_outbox_lists_unsent_runs_with_what_sending_needs(store: Store):
    a = _job("a", timeout=77)
    store.insert_ledger_rows(
        [
            _ledger_row(a, T0, rq_id="r1"),
            _ledger_row(a, T0 + timedelta(hours=1), rq_id="r2"),
            _ledger_row(a, T0 - timedelta(hours=1), status="missed"),
        ]
    )
    runs = store.outbox("s", 10, LATER)
    assert [r.rq_job_id for r in runs] == ["r1", "r2"]  # oldest first; a missed row is not a run
    assert runs[0] == Run("r1", "s", "a", "app1.tasks.a", "default", 77, T0, "schedule")
    assert [r.rq_job_id for r in store.outbox("s", 1, LATER)] == ["r1"]
    store.mark_sent(["r1", "unknown-id"], T0 + timedelta(seconds=1))
    assert [r.rq_job_id for r in store.outbox("s", 10, LATER)] == ["r2"]
    assert _row("r1").enqueued_at == T0 + timedelta(seconds=1)
    store.mark_sent(["r1"], T0 + timedelta(seconds=9))  # already sent: the first stamp stays
    assert _row("r1").enqueued_at == T0 + timedelta(seconds=1)


def test_a_re_sent_run_of_a_frequent_job_stays_frequent(store: Store):
    every5 = _job("every5", frequency="Cron", cron_format="*/5 * * * *")
    hourly = _job("hourly")
    manual = (every5.id, every5.name, T0, "manual", "queued", None, 1, T0, T0, "default", "m1", T0, T0)
    store.insert_ledger_rows([_ledger_row(every5, T0, rq_id="f1"), _ledger_row(hourly, T0, rq_id="h1"), manual])
    # as the pass flags them when it first sends them (short-lived Redis keys for a job firing within the hour);
    # a run on request is sent unflagged, the first time and again
    assert {r.rq_job_id: r.frequent for r in store.outbox("s", 10, LATER)} == {"f1": True, "h1": False, "m1": False}


def test_a_stop_whose_end_has_come_is_cleared_once(store: Store):
    until = T0 + timedelta(hours=1)
    a = _job("a", stopped=True, stopped_until=until, stopped_note="deploy", stopped_by="ops")
    b = _job("b", stopped=True, stopped_until=until + timedelta(days=1))
    with store.transaction():
        store.end_stop(a.id, until)
        store.end_stop(b.id, until)  # another stop (its end moved): untouched
    row = ScheduledJobType.get_by_id(a.id)
    assert (row.stopped, row.stopped_until, row.stopped_note, row.stopped_by, row.stopped_at) == (
        False,
        None,
        None,
        "--until",
        until,
    )
    assert ScheduledJobType.get_by_id(b.id).stopped is True


def test_a_run_rq_refuses_leaves_the_outbox_failed_with_why(store: Store):
    a = _job("a")
    store.insert_ledger_rows([_ledger_row(a, T0, rq_id="r1"), _ledger_row(a, T0, status="complete", rq_id="r2")])
    with store.transaction():
        store.fail_unsendable("r1", "not sent: RQ refused it", T0 + timedelta(seconds=1))
        store.fail_unsendable("r2", "not sent", T0)  # not queued: untouched
    assert (_row("r1").status, _row("r1").reason, _row("r1").finished_at) == (
        "failed",
        "not sent: RQ refused it",
        T0 + timedelta(seconds=1),
    )
    assert store.outbox("s", 10, LATER) == [] and _row("r2").status == "complete"


def test_latest_rows_and_extending_a_skip(store: Store):
    a, b, c = _job("a"), _job("b"), _job("c")
    store.insert_ledger_rows(
        [
            _ledger_row(a, T0, status="complete"),
            _ledger_row(a, T0 + timedelta(hours=1), status="skipped", reason="job stopped"),
            _ledger_row(b, T0, status="missed"),
        ]
    )
    latest = store.latest_rows([a.id, b.id, c.id])
    assert set(latest) == {a.id, b.id}
    assert (latest[a.id].status, latest[a.id].reason) == ("skipped", "job stopped")
    store.extend_skip(latest[a.id].id, 3, T0 + timedelta(hours=4), T0 + timedelta(hours=4), T0 + timedelta(hours=4))
    row = ScheduledJobLog.get_by_id(latest[a.id].id)
    assert (row.slots, row.last_slot, row.scheduled_for, row.first_slot) == (
        4,
        T0 + timedelta(hours=4),
        T0 + timedelta(hours=4),
        T0 + timedelta(hours=1),
    )
    assert store.latest_rows([]) == {}


def test_active_runs_settle_resend_and_requeue_notes(store: Store):
    a, b = _job("a", timeout=60), _job("b", timeout=90)
    store.insert_ledger_rows(
        [
            _ledger_row(a, T0, rq_id="ra"),
            _ledger_row(b, T0, rq_id="rb"),
            _ledger_row(b, T0 - timedelta(hours=1), status="complete", rq_id="old"),
        ]
    )
    store.mark_sent(["ra", "rb"], T0)
    assert {r.rq_job_id for r in store.active_runs_of([a.id, b.id])} == {"ra", "rb"}
    assert store.active_runs_of([]) == []
    pairs = store.active_runs(10)
    assert [(r.rq_job_id, t) for r, t in pairs] == [("ra", 60), ("rb", 90)]
    assert pairs[0][0].enqueued_at == T0 and pairs[0][0].status == "queued"
    assert len(store.active_runs(1)) == 1
    ra, rb = (r for r, _ in pairs)
    later = T0 + timedelta(minutes=5)
    store.mark_for_resend(ra.id, later, "re-sent")
    assert [r.rq_job_id for r in store.outbox("s", 10, LATER)] == ["ra"] and _row("ra").reason == "re-sent"
    store.settle_run(rb.id, "failed", "abandoned", later, finish=True)
    assert (_row("rb").status, _row("rb").reason, _row("rb").finished_at) == ("failed", "abandoned", later)
    store.settle_run(rb.id, "complete", "too late", later, finish=True)  # no longer active: untouched
    assert _row("rb").status == "failed"
    store.note_requeued(["ra", "rb"], later, "re-queued")
    assert _row("ra").reason == "re-queued" and _row("rb").reason == "abandoned"  # queued rows only


def test_every_active_job_s_slot_read_and_moved(store: Store):
    a, b = _job("a", T0), _job("b", None, frequency="Cron", cron_format="*/5 * * * *")
    _job("gone", T0, removed=True)
    assert store.job_slots() == [(a.id, "Hourly", "", T0), (b.id, "Cron", "*/5 * * * *", None)]
    with store.transaction():
        store.set_slot(b.id, T0 + timedelta(minutes=5))
    assert ScheduledJobType.get_by_id(b.id).next_execution == T0 + timedelta(minutes=5)


def test_slots_missing_repaired_once_and_the_earliest(store: Store):
    assert store.earliest_next() is None
    a = _job("a", None)
    _job("b", T0 + timedelta(hours=2))
    _job("gone", None, removed=True)
    assert store.jobs_without_slot() == [(a.id, "Hourly", "")]
    assert store.set_missing_slot(a.id, T0 + timedelta(hours=1)) == 1
    assert store.set_missing_slot(a.id, T0 + timedelta(hours=3)) == 0  # someone repaired it meanwhile
    assert store.jobs_without_slot() == []
    assert store.earliest_next() == T0 + timedelta(hours=1)


def test_slots_ahead_moved_back_by_compare_and_set(store: Store):
    hour = timedelta(hours=1)
    a, b = _job("a", T0 + 3 * hour), _job("b", T0 - hour, frequency="Cron", cron_format="*/5 * * * *")
    _job("gone", T0 + 3 * hour, removed=True)
    _job("unslotted", None)
    assert store.slots_after(T0) == [(a.id, "Hourly", "", T0 + 3 * hour)]  # neither removed nor due
    with store.transaction():
        assert store.move_slot(a.id, T0 + 2 * hour, T0 + hour) == 0  # it says another slot: lost
        assert store.move_slot(a.id, T0 + 3 * hour, T0 + hour) == 1
        assert store.move_slot(b.id, T0 - hour, T0, now=T0 + timedelta(seconds=5)) == 1
    assert ScheduledJobType.get_by_id(a.id).next_execution == T0 + hour
    b_row = ScheduledJobType.get_by_id(b.id)
    assert (b_row.next_execution, b_row.modified_at) == (T0, T0 + timedelta(seconds=5))


def test_slots_the_ledger_covers_after_an_instant_and_runs_decided_after_one(store: Store):
    hour = timedelta(hours=1)
    a, b, c = _job("a"), _job("b"), _job("c")

    def row(job, slot, trigger="schedule", status="queued", last=None, created=T0):
        return (job.id, job.name, slot, trigger, status, None, 1, slot, last or slot, "default", None, created, created)

    store.insert_ledger_rows(
        [
            row(a, T0 + hour),
            row(a, T0 + 2 * hour, status="skipped", last=T0 + 4 * hour),  # a stretch: its last slot counts
            row(a, T0 + 9 * hour, trigger="manual"),  # a run on request stands for no slot
            row(b, T0 - hour),  # before the instant
            row(b, T0 + hour, trigger="backfill", status="complete", created=T0 + 3 * hour),
            row(c, T0 + 5 * hour, trigger="catch-up", created=T0 + 3 * hour),
            row(c, T0 + 6 * hour, status="missed", created=T0 + 3 * hour),
        ]
    )
    assert store.covered_after([a.id, b.id, c.id], T0) == {a.id: T0 + 4 * hour, b.id: T0 + hour, c.id: T0 + 6 * hour}
    assert store.covered_after([a.id], T0 + 5 * hour) == {}
    assert store.covered_after([], T0) == {}
    assert store.runs_decided_after(T0 + hour) == 1  # c's catch-up: a backfill, a missed slot are no pass's run
    assert store.runs_decided_after(T0 - hour) == 3


def test_the_operator_s_ledger_writes_purge_skip_and_stop(store: Store):
    a, b = _job("a"), _job("b", queue="long")
    store.insert_ledger_rows(
        [
            _ledger_row(a, T0, rq_id="a1"),
            _ledger_row(a, T0 + timedelta(hours=1), rq_id="a2"),
            _ledger_row(a, T0 + timedelta(hours=2), rq_id="a3"),
            _ledger_row(b, T0, rq_id="b1"),
            _ledger_row(b, T0 - timedelta(hours=1), status="complete", rq_id="b0"),
        ]
    )
    for row in ScheduledJobLog.select().where(ScheduledJobLog.rq_job_id == "b1"):
        row.queue = "long"
        row.save()
    store.mark_sent(["a1"], T0)
    assert store.outbox_size() == 3
    assert store.queued_rq_ids([a.id]) == {"a1", "a2", "a3"} and store.queued_rq_ids([]) == set()
    later = T0 + timedelta(minutes=5)
    with store.transaction():
        assert store.skip_queued(["a1", "b0", "nope"], "purged", later) == 1  # only a queued row
        assert store.skip_outbox(["default"], [b.id], "purged", later) == 0  # b's outbox row is on "long"
        assert store.skip_outbox(["default"], [], "purged", later) == 0
        assert store.skip_outbox(["default"], [a.id], "purged", later) == 2
        assert store.skip_outbox(["default", "long"], None, "purged", later) == 1
    assert store.outbox_size() == 0
    assert (_row("a1").status, _row("a1").reason, _row("a1").finished_at) == ("skipped", "purged", later)
    assert _row("b0").status == "complete"
    store.insert_ledger_rows([_ledger_row(a, T0 + timedelta(hours=3), rq_id="a4")])
    assert store.record_started("a4", "w1", later) == "started"
    with store.transaction():
        assert store.fail_active("a4", "stopped by op", later) == 1
        assert store.fail_active("b0", "stopped by op", later) == 0  # over already: left as it ended
    assert (_row("a4").status, _row("a4").reason) == ("failed", "stopped by op")


def test_a_run_on_request_is_one_row_skipped_ones_finished_at_once(store: Store):
    a = _job("a")
    with store.transaction():
        store.add_ledger_row((a.id, "a", T0, "manual", "queued", "run by op", 1, T0, T0, "default", "m1", T0, T0))
        store.add_ledger_row((a.id, "a", T0, "event", "skipped", "overlap", 1, T0, T0, "default", None, T0, T0), T0)
    rows = list(ScheduledJobLog.select().order_by(ScheduledJobLog.id))
    assert [(r.trigger, r.status, r.rq_job_id, r.finished_at, r.scheduled_for) for r in rows] == [
        ("manual", "queued", "m1", None, T0),
        ("event", "skipped", None, T0, T0),
    ]
    assert [r.rq_job_id for r in store.outbox("s", 10, LATER)] == ["m1"]


def test_a_stop_written_with_its_audit_columns_and_only_those(store: Store):
    a = _job("a")
    until = T0 + timedelta(hours=2)
    with store.transaction():
        store.write_stop(a.id, True, T0, {"stopped_note": "vendor down", "stopped_by": "op@h", "stopped_at": T0,
                                          "stopped_until": until})
    row = ScheduledJobType.get_by_id(a.id)
    assert (row.stopped, row.stopped_note, row.stopped_by, row.stopped_at, row.stopped_until, row.modified_at) == (
        True, "vendor down", "op@h", T0, until, T0)
    with store.transaction():
        store.write_stop(a.id, True, T0 + timedelta(hours=1), {"stopped_note": "still down"})  # the rest kept
    row = ScheduledJobType.get_by_id(a.id)
    assert (row.stopped_note, row.stopped_by, row.stopped_until) == ("still down", "op@h", until)
    with store.transaction():
        store.write_stop(a.id, False, T0 + timedelta(hours=1), {"stopped_until": None})
    assert (ScheduledJobType.get_by_id(a.id).stopped, ScheduledJobType.get_by_id(a.id).stopped_until) == (False, None)
    with pytest.raises(ValueError, match="not a stop column: next_execution"):
        store.write_stop(a.id, True, T0, {"next_execution": None})


def test_retention_prunes_finished_rows_and_thins_on_time_successes(store: Store):
    day = timedelta(days=1)
    a, b = _job("a", frequency="All"), _job("b", removed=True)

    def row(job, slot, status="complete", trigger="schedule", created=T0 - 2 * day, slots=1, rq_id=None):
        return (job.id, job.name, slot, trigger, status, None, slots, slot, slot, "default", rq_id, created, created)

    store.insert_ledger_rows(
        [
            row(a, T0 - 3 * day),  # 1
            row(a, T0 - 3 * day + timedelta(minutes=1)),  # 2
            row(a, T0 - 3 * day + timedelta(minutes=2), status="failed"),  # 3: not thinnable
            row(a, T0 - 3 * day + timedelta(minutes=3), trigger="catch-up"),  # 4: not thinnable
            row(a, T0 - 3 * day + timedelta(minutes=4), slots=2),  # 5: covers two slots: not thinnable
            row(a, T0, created=T0),  # 6: too recent
            row(a, T0 - 3 * day, status="queued", rq_id="q1"),  # 7: active: never pruned
            row(b, T0 - 3 * day),  # 8
        ]
    )
    assert store.job_schedules() == [(a.id, "All", ""), (b.id, "Hourly", "")]
    assert [i for i, _ in store.thinnable_runs(a.id, T0 - day, None)] == [1, 2]
    assert store.thinnable_runs(a.id, T0 - day, 2) == [(1, T0 - 3 * day)]
    with store.transaction():
        assert store.delete_ledger_rows([2, 99]) == 1
        assert store.delete_ledger_rows([]) == 0
    with store.transaction():
        assert store.prune_finished(T0 - day, 2) == 2  # a batch at a time
    with store.transaction():
        assert store.prune_finished(T0 - day, 100) == 3
    assert sorted(r.id for r in ScheduledJobLog.select()) == [6, 7]


def test_migrate_s_writes_insert_update_remove_and_delete_jobs(store: Store):
    at = store.param_dt(T0)  # next_execution in the form the dialect takes
    rows = [
        ("a", "app1", "app1.tasks.a", "Hourly", "", "default", 300, "once", 10, "skip", at),
        ("b", "app1", "app1.tasks.b", "Cron", "*/5 * * * *", "long", 60, "all", 3, "allow", at),
        ("c", "app2", "app2.tasks.c", "All", "", "short", 30, "skip", 1, "skip", store.param_dt(None)),
    ]
    with store.transaction():
        store.insert_jobs(rows, T0)
        store.insert_jobs([], T0)
    got = store.job_columns(["id", "name", "removed", "cron_format", "timeout", "next_execution"])
    assert [(r[1], bool(r[2]), r[3], r[4]) for r in got] == [("a", False, "", 300), ("b", False, "*/5 * * * *", 60),
                                                              ("c", False, "", 30)]  # oldest first
    a = ScheduledJobType.get(ScheduledJobType.name == "a")
    assert (a.next_execution, a.created_at, a.modified_at, a.stopped) == (T0, T0, T0, False)
    ids = {r[1]: r[0] for r in got}
    later = T0 + timedelta(hours=1)
    with store.transaction():
        store.update_job(ids["a"], {"frequency": "Daily", "next_execution": later, "modified_at": later})
        store.remove_jobs(["b", "nope"], later)
    a = ScheduledJobType.get(ScheduledJobType.name == "a")
    assert (a.frequency, a.next_execution, a.modified_at) == ("Daily", later, later)
    b = ScheduledJobType.get(ScheduledJobType.name == "b")
    assert (b.removed, b.removed_at, b.next_execution) == (True, later, None)
    store.insert_ledger_rows([_ledger_row(b, T0, status="complete")])
    with store.transaction():
        store.delete_jobs([ids["b"]])
    assert [r[0] for r in store.job_columns(["name"])] == ["a", "c"] and ScheduledJobLog.select().count() == 0
    with pytest.raises(ValueError, match="no column 'nope'"):
        store.update_job(ids["a"], {"nope": 1})


def test_insert_jobs_keeps_any_text_exactly(store: Store):
    """PostgreSQL sends new rows as COPY text, which reads a backslash, tab, newline or carriage return as an
    escape or a separator: a value holding one must still be stored as it was (and a str enum as its value)."""
    from hookscheduler.states import CatchUp

    odd = ["back\\slash", "tab\there", "new\nline", "carriage\rreturn", "\\N", "plain ünïcode"]
    rows = [(name, "app", f"app.tasks.{i}", "Cron", "*/5 * * * *", "default", 60, CatchUp.ALL, 3, "skip",
             store.param_dt(None if i % 2 else T0)) for i, name in enumerate(odd)]
    with store.transaction():
        store.insert_jobs(rows, T0)
    got = store.job_columns(["name", "catchup", "next_execution"])
    assert [r[0] for r in got] == odd
    assert {r[1] for r in got} == {"all"}
    assert [r[2] is None for r in got] == [bool(i % 2) for i in range(len(odd))]


def test_a_job_s_slot_read_with_and_without_its_row_lock(store: Store):
    a = _job("a", T0)
    assert store.read_slot(a.id, lock=False) == T0
    with store.transaction():
        assert store.read_slot(a.id, lock=True) == T0
    assert store.read_slot(a.id + 99, lock=False) is None


def test_the_stretches_runs_of_slot_triggers_served(store: Store):
    hour = timedelta(hours=1)
    a, b = _job("a"), _job("b")

    def row(job, first, last, trigger="schedule", status="complete"):
        return (job.id, job.name, last, trigger, status, None, 1, first, last, "default", None, T0, T0)

    store.insert_ledger_rows(
        [
            row(a, T0 - 2 * hour, T0 - hour),  # stamped before `since`: not read
            row(a, T0, T0 + 2 * hour, trigger="catch-up", status="failed"),  # ran, once: served
            row(a, T0 + 3 * hour, T0 + 3 * hour, trigger="backfill", status="queued"),
            row(a, T0 + 4 * hour, T0 + 4 * hour, status="missed"),  # no run
            row(a, T0 + 5 * hour, T0 + 5 * hour, status="skipped"),
            row(a, T0 + 6 * hour, T0 + 6 * hour, trigger="manual"),  # on request: stands for no slot
            row(b, T0, T0),
        ]
    )
    assert sorted(store.served_stretches(a.id, T0)) == [(T0, T0 + 2 * hour), (T0 + 3 * hour, T0 + 3 * hour)]


def test_values_written_by_hand_are_normalised_where_the_dialect_keeps_them(store: Store):
    a, b, _ = _job("a"), _job("b"), _job("c")
    if isinstance(store, PostgresStore):  # typed columns refuse words and text: nothing to repair
        assert store.normalise_boolean_words() == 0
        assert store.clear_untimely_slots() == []
        return
    db = database_proxy.obj
    db.execute_sql("UPDATE scheduled_job_type SET stopped = ' Yes ', removed = 'off' WHERE id = ?", [a.id])
    db.execute_sql("UPDATE scheduled_job_type SET stopped = 'maybe', next_execution = 'soon' WHERE id = ?", [b.id])
    with store.transaction():
        assert store.normalise_boolean_words() == 2  # a's two columns; 'maybe' is no boolean and stays
        assert store.clear_untimely_slots() == [("b", "soon")]
    raw = db.execute_sql("SELECT name, stopped, removed, next_execution FROM scheduled_job_type ORDER BY id")
    assert [tuple(r) for r in raw.fetchall()] == [
        ("a", 1, 0, str(T0)),
        ("b", "maybe", 0, None),
        ("c", 0, 0, str(T0)),
    ]
    assert store.normalise_boolean_words() == 0 and store.clear_untimely_slots() == []


def test_the_worker_transitions(store: Store):
    a = _job("a")
    store.insert_ledger_rows([_ledger_row(a, T0, rq_id="r1")])
    start = T0 + timedelta(seconds=2)
    with store.ledger_transaction():
        store.lock_job_row("a")
        assert store.record_started("r1", "w1", start) == "started"
        store.advance_last_execution("a", start)
    assert store.record_started("r1", "w2", start) == "duplicate"  # a second delivery does not start it again
    assert store.record_started("nope", "w2", start) == "unknown"
    store.advance_last_execution("a", start - timedelta(hours=1))  # never backwards
    assert ScheduledJobType.get_by_id(a.id).last_execution == start
    row = _row("r1")
    assert (row.status, row.worker, row.started_at, row.enqueued_at) == ("started", "w1", start, start)
    assert store.started_at("r1") == (True, start) and store.started_at("nope") == (False, None)
    with store.ledger_transaction():
        store.record_finished("r1", Outcome("complete", start + timedelta(seconds=3), 3.0))
    row = _row("r1")
    assert (row.status, row.duration, row.finished_at) == ("complete", 3.0, start + timedelta(seconds=3))


def test_a_run_of_a_removed_or_pruned_job_is_not_started(store: Store):
    a, b = _job("a"), _job("b")
    ScheduledJobType.update(removed=True).where(ScheduledJobType.id == b.id).execute()
    store.insert_ledger_rows([_ledger_row(a, T0, rq_id="r1"), _ledger_row(b, T0, rq_id="r2")])
    with store.ledger_transaction():
        assert [store.lock_job_row(n) for n in ("a", "b", "gone")] == [JOB_PRESENT, JOB_REMOVED, JOB_ABSENT]
    if isinstance(store, PostgresStore):
        assert store.start_in_one_trip("r2", "b", "w1", T0) == JOB_REMOVED
        assert store.start_in_one_trip("r3", "gone", "w1", T0) == JOB_ABSENT
        assert store.start_in_one_trip("r1", "a", "w1", T0) == "started"
        assert (_row("r2").status, ScheduledJobType.get_by_id(b.id).last_execution) == ("queued", None)


def test_a_late_completion_overrides_an_abandoned_verdict_and_says_so(store: Store):
    a = _job("a")
    store.insert_ledger_rows([_ledger_row(a, T0, status="failed", rq_id="r1", reason="abandoned")])
    store.record_finished("r1", Outcome("complete", T0))
    assert (_row("r1").status, _row("r1").reason) == (
        "complete",
        "completed after the scheduler had declared it abandoned",
    )


def test_one_trip_writes_where_the_dialect_has_them(store: Store):
    a = _job("a")
    store.insert_ledger_rows([_ledger_row(a, T0, rq_id="r1")])
    state = store.start_in_one_trip("r1", "a", "w1", T0)
    done = store.finish_in_one_trip("r1", Outcome("complete", T0 + timedelta(seconds=1), 1.0))
    if isinstance(store, PostgresStore):
        assert state == "started" and done
        assert (_row("r1").status, ScheduledJobType.get_by_id(a.id).last_execution) == ("complete", T0)
        assert store.start_in_one_trip("r1", "a", "w2", T0) == "duplicate"
        assert store.start_in_one_trip("nope", "a", "w2", T0) == "unknown"
    else:  # one writer, no network: the careful path is the only path
        assert state is None and done is False
        assert _row("r1").status == "queued"


def _flushed(store: Store) -> None:
    """This session's pending statistics flushed now (PostgreSQL 15+), not within the second PostgreSQL allows."""
    store.sql("SELECT pg_stat_force_next_flush()")  # type: ignore[attr-defined]


def test_write_counters_count_a_databases_writes_and_not_its_reads(store: Store):
    """The change gate's statement (PostgreSQL only; SQLite sites are always probed)."""
    if isinstance(store, SqliteStore):
        assert not hasattr(store, "write_counters")
        return
    assert isinstance(store, PostgresStore)
    name = store.db.database
    _flushed(store)
    before = store.write_counters()
    assert before is not None and name in before
    written, reset, oid = before[name]
    assert isinstance(written, int) and isinstance(oid, int)
    store.probe()  # read-only, and the gate's own statement too
    store.select_due(T0, 10)
    _flushed(store)
    assert store.write_counters()[name] == (written, reset, oid)  # type: ignore[index]
    _job("a", T0)  # a write: one row inserted
    _flushed(store)
    after = store.write_counters()
    assert after is not None and after[name][0] > written and after[name][1] == reset


def test_write_counters_are_none_when_postgresql_keeps_no_counts(store: Store):
    if isinstance(store, SqliteStore):
        return
    assert isinstance(store, PostgresStore)
    store.sql("SET track_counts = off")  # superuser-settable per session: the server's own setting reads alike
    try:
        assert store.write_counters() is None
    finally:
        store.sql("RESET track_counts")
    assert store.write_counters() is not None
    role = f"hs_gate_{store.db.database[-6:]}_{id(store) % 10_000}"
    store.sql(f'CREATE ROLE "{role}"')
    try:  # a per-role (or per-database) setting could hide some sessions' writes: no counts either
        store.sql(f'ALTER ROLE "{role}" SET track_counts = off')
        assert store.write_counters() is None
    finally:
        store.sql(f'DROP ROLE "{role}"')
    assert store.write_counters() is not None


def test_clear_state_if_clears_only_the_value_it_was_given(store: Store):
    from hookscheduler.store.database import clear_state_if, get_state

    set_state("pause_until", "2026-01-05 12:00:00")
    assert not clear_state_if("pause_until", "2026-01-05 11:00:00")  # replaced meanwhile: the new value wins
    assert get_state("pause_until") == "2026-01-05 12:00:00"
    assert clear_state_if("pause_until", "2026-01-05 12:00:00")
    assert get_state("pause_until") is None
    assert not clear_state_if("never_set", "x")
