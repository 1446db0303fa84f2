"""The pure judgement of a queued/started ledger row against RQ (hookscheduler.schedule.judge.judge)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.schedule.judge import ABANDON_GRACE, judge

T = datetime(2026, 1, 5, 11, 0)
TIMEOUT = 300
LATE = timedelta(seconds=TIMEOUT + ABANDON_GRACE + 1)


def verdict(db_status: str, rq_status: str | None, *, started_at: datetime | None = None,
            enqueued_at: datetime | None = T, now: datetime = T + timedelta(seconds=5), **kw):
    return judge(db_status=db_status, enqueued_at=enqueued_at, started_at=started_at, rq_status=rq_status,
                 timeout=TIMEOUT, now=now, rq_job_id="j1", **kw)


@pytest.mark.parametrize("rq_status", ["queued", "deferred", "scheduled"])
def test_waiting_in_rq_blocks(rq_status):
    v = verdict("queued", rq_status)
    assert v.active and "still queued" in v.blocking_reason


def test_started_blocks_until_timeout_and_grace_then_is_abandoned():
    assert verdict("started", "started", started_at=T, now=T + LATE - timedelta(seconds=2)).active
    v = verdict("started", "started", started_at=T, now=T + LATE)
    assert not v.active and v.status == "failed" and v.reason.startswith("abandoned")


@pytest.mark.parametrize(("rq_status", "status"), [("finished", "complete"), ("failed", "failed"),
                                                    ("stopped", "failed"), ("canceled", "failed")])
def test_rq_outcome_is_taken_when_the_worker_did_not_record_it(rq_status, status):
    v = verdict("started", rq_status, started_at=T)
    assert not v.active and v.status == status and "outcome taken from RQ" in v.reason


def test_a_lost_unstarted_run_is_resent_and_an_unsent_one_is_owed():
    assert verdict("queued", None).resend
    v = verdict("queued", None, enqueued_at=None)
    assert v.active and not v.resend


@pytest.mark.parametrize("db_status", ["queued", "started"])
@pytest.mark.parametrize("rq_status", ["finished", "failed"])
def test_a_refused_delivery_s_rq_outcome_is_ignored(db_status, rq_status):
    """RQ's outcome is the refused delivery's: the run counts as started at the refusal at the latest."""
    refused_at = T + timedelta(seconds=30)
    started_at = T if db_status == "started" else None
    v = verdict(db_status, rq_status, started_at=started_at, refused_at=refused_at, now=T + timedelta(seconds=60))
    assert v.active and "still running" in v.blocking_reason
    began = started_at or refused_at
    v = verdict(db_status, rq_status, started_at=started_at, refused_at=refused_at, now=began + LATE)
    assert not v.active and v.status == "failed" and v.reason.startswith("abandoned")


@pytest.mark.parametrize("outcome", ["complete", "failed"])
def test_a_refused_run_takes_the_outcome_its_worker_left_in_redis(outcome):
    v = verdict("queued", "finished", refused_at=T, outcome=outcome)
    assert not v.active and v.status == outcome and "outcome taken from Redis" in v.reason


def test_a_refusal_does_not_matter_while_rq_still_has_the_job_waiting():
    assert verdict("queued", "queued", refused_at=T).active


def test_a_run_whose_worker_is_alive_is_never_abandoned_by_the_clock():
    """A scheduler ten minutes ahead of the worker sees a 30 s-old run as 10 minutes old: the worker's key in
    Redis, not the two hosts' clocks, says whether the run is still going."""
    v = verdict("started", "started", started_at=T, now=T + LATE + timedelta(minutes=10), alive=True)
    assert v.active and "still running" in v.blocking_reason


def test_a_run_whose_worker_is_gone_is_abandoned_at_once():
    v = verdict("started", "started", started_at=T, now=T + timedelta(seconds=5), alive=False)
    assert not v.active and v.status == "failed" and "its worker is gone from Redis" in v.reason


def test_unknown_liveness_falls_back_to_the_timeout():
    assert not verdict("started", "started", started_at=T, now=T + LATE, alive=None).active
    assert not verdict("started", None, started_at=T, now=T + LATE, alive=True).active  # RQ lost the job
