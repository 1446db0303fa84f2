"""A site followed by a long-running process (a worker, an application calling the API): config edits are
taken at the next use, never under an open transaction."""

from __future__ import annotations

import logging

from hookscheduler.config import update_site_config
from hookscheduler.context import open_site
from hookscheduler.followed import FollowedSite
from hookscheduler.store.models import ScheduledJobType
from tests.integration.bgjobs_support import make_bench

log = logging.getLogger("tests.followed")


def test_a_db_url_change_waits_for_the_open_transaction_then_moves(bench_factory, caplog):
    bench = make_bench(bench_factory, events={"hourly": ["bgapp.tasks.seen"]})
    ctx = open_site(str(bench))
    followed = FollowedSite.start(ctx, str(bench), "this test", log)
    db = ctx.database()
    old_url = ctx.site.db_url
    moved = []
    with db.atomic():
        ScheduledJobType.update(stopped=True).execute()
        update_site_config(open_site(str(bench)).site, {"db_url": f"sqlite:///{bench / 'sites' / 'new.sqlite3'}"})
        # the edit is seen, but closing the database now would lose the caller's transaction
        assert followed.current(on_moved=moved.append) is ctx and ctx.in_transaction and moved == []
        ScheduledJobType.update(stopped=False).execute()
    assert ScheduledJobType.get().stopped is False  # committed whole, in the old database
    with caplog.at_level("INFO", logger="tests.followed"):
        assert followed.current(on_moved=moved.append) is ctx
    assert moved == [old_url]
    assert not ctx.is_open and ctx.site.db_url.endswith("new.sqlite3")
    assert [r.getMessage() for r in caplog.records] == [
        "site default: its database changed; this test uses the new one"]
