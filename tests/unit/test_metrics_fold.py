"""Pure parts of the metrics and the timeline: folding ledger rows, walking from the cursor, reason words."""

from __future__ import annotations

from datetime import datetime, timedelta

from hookscheduler.metrics.ledger_counts import field_name, fold, scan
from hookscheduler.ops.history import cell_kind, reason_kind

T = datetime(2026, 3, 2, 10, 0)


def _row(i: int, status: str, **kw: object) -> dict[str, object]:
    base = {"id": i, "job_name": "app.job", "status": status, "trigger": "schedule", "reason": None, "slots": 1,
            "scheduled_for": T, "enqueued_at": T + timedelta(seconds=2), "finished_at": T + timedelta(seconds=9),
            "duration": 7.0, "created_at": T}
    base.update(kw)
    return base


def test_fold_counts_runs_slots_and_histograms():
    f = fold([_row(1, "complete"), _row(2, "failed", duration=0.2),
              _row(3, "missed", slots=48, reason="no scheduler pass ran for 48 slots; catchup=skip, so not run"),
              _row(4, "skipped", reason="job stopped", slots=3), _row(5, "complete", trigger="manual")])
    assert f.ints[field_name("runs", "app.job", "complete")] == 2
    assert f.ints[field_name("runs", "app.job", "failed")] == 1
    assert f.ints[field_name("slots", "app.job", "missed", "no_scheduler")] == 48
    assert f.ints[field_name("slots", "app.job", "skipped", "stopped")] == 3
    # lateness only for scheduled runs (the manual one is a request, not a slot): 2 runs, 2 s late each
    assert f.ints[field_name("late_b", "app.job", "5.0")] == 2
    assert f.floats[field_name("late_sum", "app.job")] == 4.0
    assert f.ints[field_name("dur_b", "app.job", "15.0")] == 2 and f.ints[field_name("dur_b", "app.job", "0.5")] == 1
    assert f.last_run["app.job"] == (5, "complete")
    assert f.last_success["app.job"] > 0


def test_scan_stops_at_a_young_row_and_sets_active_rows_aside():
    rows = [_row(10, "complete"), _row(11, "started"), _row(12, "skipped"),
            _row(13, "complete", created_at=T + timedelta(minutes=10))]
    s = scan(rows, 10, now=T + timedelta(minutes=10, seconds=5), grace=30)
    assert [r["id"] for r in s.ended] == [10, 12] and s.active == [11] and s.cursor == 13 and s.young
    s = scan(rows, 10, now=T + timedelta(hours=1), grace=30)
    assert s.cursor == 14 and not s.young


def test_reason_kinds_are_a_closed_set_of_words():
    assert reason_kind("skipped", "job stopped") == "stopped"
    assert reason_kind("skipped", "scheduler inactive: pause_scheduler is set") == "scheduler_inactive"
    assert reason_kind("skipped", "scheduler disabled: deploy (by a@b at ...)") == "scheduler_inactive"
    assert reason_kind("skipped", "previous run x still running since ...") == "overlap"
    assert reason_kind("missed", "12 missed slots beyond catchup_limit=10 not run (first ...)") == "catchup_limit"
    assert reason_kind("missed", "no scheduler pass ran for 3 slots; catchup=skip, so not run") == "no_scheduler"
    assert reason_kind("skipped", "skipped by root@h (jobs skip-next)") == "skip_next"
    assert reason_kind("skipped", "purged from the queue by root@h (purge-jobs)") == "purged"
    assert reason_kind("skipped", "canceled by root@h (rq-jobs cancel)") == "canceled"
    assert reason_kind("skipped", "manual run not enqueued: previous run x still queued") == "overlap"
    assert reason_kind("skipped", "<script>alert(1)</script>") == "other"
    assert reason_kind("missed", None) == "no_scheduler"


def test_cell_kinds():
    assert cell_kind(_row(1, "complete"), late_after=60) == "complete"
    assert cell_kind(_row(1, "complete", enqueued_at=T + timedelta(minutes=5)), late_after=60) == "late"
    assert cell_kind(_row(1, "complete", trigger="catch-up"), late_after=60) == "late"
    assert cell_kind(_row(1, "failed"), late_after=60) == "failed"
    assert cell_kind(_row(1, "missed"), late_after=60) == "missed"
    assert cell_kind(_row(1, "queued"), late_after=60) == "running"



def test_regrow_counts_a_followed_rows_new_slots_and_stops_following_it_when_a_newer_row_of_its_job_passes():
    from hookscheduler.metrics.ledger_counts import Fold, regrow

    stopped = "job stopped"
    f = Fold()
    grown = _row(1, "skipped", reason=stopped, slots=5)
    shrunk = _row(2, "skipped", job_name="app.b", reason=stopped, slots=1)
    rewritten = _row(3, "complete", job_name="app.c")
    born = [_row(7, "skipped", job_name="app.d", reason=stopped, slots=2), _row(8, "missed", job_name="app.e")]
    after = regrow({1: 3, 2: 4, 3: 1, 4: 1}, [grown, shrunk, rewritten], born, born, f)
    # 2 new slots of row 1; row 2 keeps its count (an SQL edit); rows 3 (no longer skipped) and 4 (gone) dropped;
    # the skipped row just counted is followed, the missed one never grows
    assert f.ints == {field_name("slots", "app.job", "skipped", "stopped"): 2}
    assert after == {1: 5, 2: 4, 7: 2}
    f = Fold()
    newer = _row(9, "started")
    assert regrow(after, [_row(1, "skipped", reason=stopped, slots=6), shrunk], [], [newer], f) == {2: 4}
    assert f.ints == {field_name("slots", "app.job", "skipped", "stopped"): 1}  # read a last time, then dropped


def test_fold_counts_slots_off_time_missed_and_run_late_by_a_catch_up():
    f = fold([_row(1, "missed", slots=5), _row(2, "complete", trigger="catch-up", slots=83),
              _row(3, "failed", trigger="catch-up"), _row(4, "complete"), _row(5, "skipped", slots=9)])
    assert f.ints[field_name("off_time", "app.job")] == 5 + 83 + 1
