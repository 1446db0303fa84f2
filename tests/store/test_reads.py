"""The read-side query modules of the store (:mod:`hookscheduler.store.ledger_reads`), run against SQLite and
PostgreSQL alike (the ``store`` fixture binds the models to a fresh database of each)."""

from __future__ import annotations

from datetime import timedelta

from hookscheduler.store import Store, ledger_reads
from hookscheduler.store.models import ScheduledJobLog
from tests.store.support import T0
from tests.store.support import make_job as _job

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
    assert sorted(ledger_reads.rows_by_ids([7, 2, 99], ("id", "status"))) == [(2, "missed"), (7, "skipped")]
    assert ledger_reads.rows_by_ids([], ("id",)) == []


def test_the_empty_ledger_has_no_max_id(store: Store):
    assert ledger_reads.max_id() is None


def test_slots_not_run_on_time_leave_requests_out(store: Store):
    a, _ = _ledger(store)
    assert [r.id for r in ledger_reads.slots_not_run_on_time()] == [5, 4, 7, 2]
    assert [r.id for r in ledger_reads.slots_not_run_on_time(a.id, since=T0 + 3 * H)] == [5, 4]
    assert [r.id for r in ledger_reads.slots_not_run_on_time(limit=1)] == [5]


def test_job_reads_by_name_method_page_names_and_frequencies(store: Store):
    from hookscheduler.store import job_reads

    a = _job("app1.tasks.send_digest", frequency="Daily")
    b = _job("app1.tasks.sync", frequency="Daily Long", stopped=True, method="app1.tasks.sync")
    c = _job("other", frequency="Daily", removed=True, method="app1.tasks.sync")
    _job("zeta", app="app0", method="app1.tasks.sync")
    assert job_reads.by_name("other").id == c.id and job_reads.by_name("other", include_removed=False) is None
    assert job_reads.by_name("nope") is None
    assert [r.name for r in job_reads.by_method("app1.tasks.sync")] == ["app1.tasks.sync", "zeta"]  # not removed
    assert [r.name for r in job_reads.page()] == ["zeta", a.name, b.name]  # by app, then name
    assert [r.name for r in job_reads.page(include_removed=True, offset=1, limit=2)] == [a.name, b.name]
    assert [r.name for r in job_reads.page(search="sync")] == ["zeta", b.name]  # name or method
    assert (job_reads.count(), job_reads.count(include_removed=True), job_reads.count(search="digest")) == (3, 4, 1)
    assert job_reads.names_containing("tasks", 5) == [a.name, b.name] and job_reads.names_containing("x", 5) == []
    assert sorted(job_reads.names()) == sorted([a.name, b.name, "other", "zeta"])
    assert [r.name for r in job_reads.of_frequencies(["Daily", "Daily Long"], include_stopped=False)] == [a.name]
    assert [r.name for r in job_reads.of_frequencies(["Daily", "Daily Long"], include_stopped=True)] == [a.name, b.name]


def test_the_newest_run_of_each_job(store: Store):
    a, b = _ledger(store)
    c = _job("c")
    latest = ledger_reads.newest_runs_of([a.id, b.id, c.id])
    assert {job_id: r.id for job_id, r in latest.items()} == {a.id: 5}  # skipped and missed rows are no runs
    assert ledger_reads.newest_runs_of([]) == {}


def test_the_doctor_s_reads_overdue_jobs_queues_in_use_and_failures(store: Store):
    from hookscheduler.store import job_reads

    _job("late", T0 - 2 * H, queue="long")
    _job("later", T0 - H)
    _job("stopped", T0 - 3 * H, stopped=True, queue="short")
    _job("gone", T0 - 3 * H, removed=True)
    _job("fine", T0 + H)
    count, oldest = job_reads.overdue(T0 - timedelta(minutes=30))
    assert (count, oldest.name) == (2, "late")  # neither stopped nor removed jobs count
    assert job_reads.overdue(T0 - 5 * H) == (0, None)
    assert job_reads.queues_in_use() == {"long", "default"}
    assert job_reads.active_count() == 4 and sorted(j.name for j in job_reads.active()) == [
        "fine", "late", "later", "stopped"]
    assert ledger_reads.failures_since(T0, 5) == (0, [])


def test_failures_since_count_and_the_jobs_with_most(store: Store):
    a, b = _job("a"), _job("b")
    rows = [
        (job.id, job.name, T0, "schedule", "failed", None, 1, T0, T0, "default", None, T0, T0)
        for job in (a, b, b, a, b)
    ]
    store.insert_ledger_rows(rows)
    ScheduledJobLog.update(finished_at=T0).execute()
    ScheduledJobLog.update(finished_at=T0 - 2 * H).where(ScheduledJobLog.id == 1).execute()  # before the window
    assert ledger_reads.failures_since(T0 - H, 5) == (4, [("b", 3), ("a", 1)])
    assert ledger_reads.failures_since(T0 - H, 1) == (4, [("b", 3)])


def test_a_healthy_database_has_no_integrity_problem(store: Store):
    assert store.integrity() is None


def test_explain_s_reads_rows_near_a_window_active_runs_and_the_oldest_kept(store: Store):
    assert ledger_reads.oldest_kept_slot() is None
    a, _ = _ledger(store)
    store.insert_ledger_rows([(a.id, "a", T0 + 9 * H, "schedule", "queued", None, 1, T0 + 9 * H, T0 + 9 * H,
                               "default", "q9", T0, T0)])
    # row 5 covers 02:00 .. 04:00 past T0 (three slots): it is near a window that only touches its first slot
    assert [r.id for r in ledger_reads.rows_near(a.id, T0 + H + H // 2, T0 + 2 * H)] == [3, 5]
    assert [r.id for r in ledger_reads.rows_near(a.id, T0, T0 + 9 * H, limit=2)] == [1, 2]
    assert [r.rq_job_id for r in ledger_reads.active_rows_of(a.id)] == ["q9"]
    assert ledger_reads.oldest_kept_slot() == T0  # row 1's, the first still kept


def test_the_worker_s_metrics_and_the_api_s_reads(store: Store):
    from hookscheduler.store import job_reads

    a = _job("a", frequency="Cron", cron_format="*/5 * * * *")
    _job("s", stopped=True, next_execution=None)
    _job("gone", removed=True)
    assert job_reads.frequency_of("a") == "Cron" and job_reads.frequency_of("nope") is None
    assert sorted(job_reads.schedules_shown()) == [("a", "Cron", "*/5 * * * *", False, T0),
                                                   ("s", "Hourly", "", True, None)]
    store.insert_ledger_rows([(a.id, "a", T0, "schedule", "queued", None, 1, T0, T0, "default", "r1", T0, T0)])
    assert ledger_reads.row_of_run("r1").job_name == "a" and ledger_reads.row_of_run("r2") is None


def test_paged_listing_is_the_same_listing_whatever_the_page_and_ties_on_a_slot(store: Store):
    """`jobs history --limit 100000` reads a page at a time, each page starting after the last row by key (slot,
    then id). Rows sharing a slot straddle the page ends here: a key that compared the slot alone would skip or
    repeat them."""
    a, b = _ledger(store)
    more = [(j.id, j.name, T0 + (i // 3) * H, "schedule", "complete", None, 1, None, None, "default", None, T0, T0)
            for i, j in enumerate([a, b, a] * 5)]
    store.insert_ledger_rows(more)  # three rows per slot, in several slots
    for args in ({}, {"job_id": a.id}, {"status": "complete"}, {"status": "skipped"}, {"since": T0 + 2 * H},
                 {"job_id": a.id, "status": "complete", "since": T0 + H}):
        for limit in (1, 4, 7, 50):
            expected = [r.id for r in ledger_reads.newest_rows(limit=limit, **args)]
            for page in (1, 2, 3, 5, 1000):
                pages = list(ledger_reads.newest_rows_paged(limit=limit, page=page, **args))
                assert [r.id for p in pages for r in p] == expected, (args, limit, page)
                assert all(len(p) <= page for p in pages)
