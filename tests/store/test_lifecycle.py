"""A store lives and dies with its database object: a site reopened again and again (the loop after an outage,
a command per site) must not keep the old connections open through the stores made for them."""

from __future__ import annotations

import gc
import os
import time
import uuid
from datetime import datetime

import psycopg2
import pytest

from hookscheduler.context import open_site
from hookscheduler.store import store_for
from tests.integration.opcli_support import migrated


@pytest.mark.postgres
def test_sites_dropped_without_close_leave_no_postgresql_connection_behind(bench_factory, monkeypatch):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db="postgres")
    # only this test's connections are counted: the database is shared with whatever else runs on the machine
    tag = f"hs_lifecycle_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("HOOKSCHEDULER_DB_URL", os.environ["HOOKSCHEDULER_DB_URL"] + f"&application_name={tag}")
    ctx, _ = migrated(bench, datetime(2026, 1, 5, 10, 0))
    url = ctx.site.db_url
    ctx.close()
    gc.collect()

    def connections() -> int:
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND application_name = %s", (tag,))
                return int(cur.fetchone()[0])
        finally:
            conn.close()

    before = connections()
    for _ in range(10):
        site = open_site(str(bench))
        store_for(site.database()).probe()
        del site
    gc.collect()
    # a closed connection's backend leaves pg_stat_activity a moment after the client closed it: wait for that
    # (a leaked connection never leaves), then judge
    deadline = time.monotonic() + 10
    while connections() - before > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert connections() - before <= 1  # the last site's database stays bound to the models, no more
