"""The read-side query modules of the store (:mod:`hookscheduler.store.ledger_reads`), run against SQLite and
PostgreSQL alike (the ``store`` fixture binds the models to a fresh database of each)."""

from __future__ import annotations

from datetime import timedelta

from hookscheduler.store import Store, ledger_reads
from tests.store.test_contract import T0, _job

H = timedelta(hours=1)


def _ledger(store: Store):
    a, b = _job("a"), _job("b")

    def row(job, slot, status="complete", trigger="schedule", slots=1, rq_id=None):
        first = slot - (slots - 1) * H
        return (job.id, job.name, slot, trigger, status, None, slots, first, slot, "default", rq_id, T0, T0)

    store.insert_ledger_rows(
        [
            row(a, T0),  # 1
            row(a, T0 + H, status="missed"),  # 2
            row(a, T0 + 2 * H, status="failed", rq_id="f"),  # 3
            row(a, T0 + 3 * H, trigger="catch-up", rq_id="c"),  # 4
            row(a, T0 + 4 * H, slots=3, rq_id="s3"),  # 5: one run for three slots
            row(a, T0 + 5 * H, status="skipped", trigger="manual"),  # 6: a request, not a slot
            row(b, T0 + H, status="skipped"),  # 7
        ]
    )
    return a, b


def test_newest_rows_by_job_status_and_window(store: Store):
    a, _ = _ledger(store)
    assert [r.id for r in ledger_reads.newest_rows()] == [6, 5, 4, 3, 7, 2, 1]  # by slot, then id
    assert [r.id for r in ledger_reads.newest_rows(a.id, limit=2, offset=1)] == [5, 4]
    assert [r.id for r in ledger_reads.newest_rows(status="failed")] == [3]  # through the trouble index
    assert [r.id for r in ledger_reads.newest_rows(status="skipped", since=T0 + H, until=T0 + 4 * H)] == [7]
    assert ledger_reads.row_by_id(3).rq_job_id == "f" and ledger_reads.row_by_id(99) is None


def test_a_window_of_narrow_rows_and_the_scan_by_id(store: Store):
    a, _ = _ledger(store)
    cells = ledger_reads.latest_in_window(a.id, T0 + H, T0 + 4 * H, ("id", "status"), 2)
    assert cells == [{"id": 3, "status": "failed"}, {"id": 4, "status": "complete"}]  # the latest, oldest first
    assert [r[0] for r in ledger_reads.rows_from_id(5, ("id", "job_name"), 10)] == [5, 6, 7]
    assert ledger_reads.rows_from_id(6, ("id", "job_name"), 1) == [(6, "a")]
    assert ledger_reads.max_id() == 7


def test_the_empty_ledger_has_no_max_id(store: Store):
    assert ledger_reads.max_id() is None


def test_slots_not_run_on_time_leave_requests_out(store: Store):
    a, _ = _ledger(store)
    assert [r.id for r in ledger_reads.slots_not_run_on_time()] == [5, 4, 7, 2]
    assert [r.id for r in ledger_reads.slots_not_run_on_time(a.id, since=T0 + 3 * H)] == [5, 4]
    assert [r.id for r in ledger_reads.slots_not_run_on_time(limit=1)] == [5]
