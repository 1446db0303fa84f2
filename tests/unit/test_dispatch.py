"""The fast job-hash builder writes exactly what RQ itself would write (field by field)."""

from __future__ import annotations

from datetime import datetime

import redis

from hookscheduler.schedule.send import _OWN_FIELDS as OWN_FIELDS
from hookscheduler.schedule.send import HashBuilder, Run, rq_hash


def _fields(pairs: list) -> dict:
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


def test_hash_builder_matches_rq_field_by_field() -> None:
    conn = redis.Redis()  # never connected: building a hash needs no server
    conn.info = lambda *a, **k: {"redis_version": "7.0.0"}  # type: ignore[method-assign]
    runs = [Run("b_x_sched-1", "site.one", "app.tasks.a", "app.tasks.a", "default", 300,
                datetime(2026, 1, 5, 10, 0), "schedule"),
            Run("b_x_sched-2", "site.one", "app.tasks.b", "app.tasks.b", "long", 1500,
                datetime(2026, 1, 5, 11, 30, 5), "catch-up"),
            Run("b_x_sched-3", "site.two", "app.tasks.c", "app.tasks.c", "default", 300,
                datetime(2026, 1, 5, 12, 0), "schedule"),
            Run("b_x_sched-4", "site.two", "app.tasks.d", "app.tasks.d", "default", 300,  # a frequent job's run
                datetime(2026, 1, 5, 12, 0, 10), "schedule", frequent=True)]
    builder = HashBuilder(conn, "bench1", 86400, 86400)
    for run in runs:
        fast = _fields(builder.shared(run)) | dict(zip(OWN_FIELDS, builder.own(run), strict=True))
        ref = _fields(rq_hash(conn, "bench1", run, 86400, 86400))
        assert str(fast["result_ttl"]) == ("600" if run.frequent else "86400")
        for stamp in ("created_at", "enqueued_at"):
            assert stamp in fast and stamp in ref
            fast.pop(stamp), ref.pop(stamp)
        assert fast == ref
