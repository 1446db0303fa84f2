"""Application job ids in Redis (``broker.keys.user_job_id``): namespaced, readable, and distinct."""

from __future__ import annotations

import hashlib

from hookscheduler.broker.keys import USER_JOB_ID_MAX, site_prefix, user_job_id

PREFIX = site_prefix("bench", "site1")


def test_ids_longer_than_the_limit_that_differ_only_at_the_end_stay_distinct():
    """Cut at 160 characters without a hash, two such ids were one job (the second dropped as its duplicate)."""
    base = "reindex-" + "customer-segment-" * 10  # 178 safe characters
    a, b = user_job_id("bench", "site1", base + "A"), user_job_id("bench", "site1", base + "B")
    assert a != b
    digest = hashlib.sha1((base + "A").encode()).hexdigest()[:8]
    assert a == PREFIX + base[:USER_JOB_ID_MAX - 9] + "-" + digest
    assert len(a) == len(PREFIX) + USER_JOB_ID_MAX


def test_ids_that_were_fine_before_are_unchanged():
    """Ids of queued jobs and of ``deduplicate`` twins must survive an upgrade as they were."""
    exact = "x" * USER_JOB_ID_MAX
    assert user_job_id("bench", "site1", exact) == PREFIX + exact
    assert user_job_id("bench", "site1", "rebuild-index_2") == PREFIX + "rebuild-index_2"
    unsafe = "sync:customers/" + "é" * 200
    assert user_job_id("bench", "site1", unsafe) == (
        PREFIX + ("sync-customers-" + "-" * 200)[:80] + "-" + hashlib.sha1(unsafe.encode()).hexdigest()[:8])


def test_an_id_shaped_like_a_cut_id_is_not_taken_for_the_id_it_was_cut_from():
    """A 160-character id of the very shape a cut id takes would otherwise be kept as it is, and equal the cut form
    of a longer id: two different ids, one job."""
    long = "report-" + "x" * 200
    cut = user_job_id("bench", "site1", long)[len(PREFIX):]
    assert len(cut) == USER_JOB_ID_MAX
    assert user_job_id("bench", "site1", cut) != user_job_id("bench", "site1", long)
