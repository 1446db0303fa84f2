"""The change gate at its edges (real PostgreSQL server, real Redis): what makes a site's database another one
without a count the gate could tell apart (:mod:`hookscheduler.schedule.gate`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from tests.conftest import PG_DSN
from tests.helpers import pg_admin_conn
from tests.integration.test_loop_gate import T0, _flush, settled, site_databases  # noqa: F401


def _count(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    conn = pg_admin_conn(PG_DSN)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = %s",
                        (name,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.mark.postgres
def test_a_site_whose_database_was_recreated_is_probed_even_if_its_count_is_the_same(
        bench_factory, site_databases):  # noqa: F811 (the fixture, imported above)
    """A site's database dropped and created again (a restore, a test bench rebuilt): the new database's count
    of rows written starts again from zero, and the same migrate writes the same rows, so its count can be the very
    number the gate marked for the old one. It is another database (another OID): the gate must probe it."""
    with settled(bench_factory, site_databases) as (names, bench, sched, clock):
        held = {s.ctx.name for s in sched.open_pg.values()}
        i = next(i for i, name in enumerate(names) if name not in held)  # not the connection the gate reads on
        url, name = site_databases[i], names[i]
        marked = sched.gate.marks[name].writes[0]
        assert _count(url) == marked

        dbname = url.rsplit("/", 1)[1]
        admin = pg_admin_conn(PG_DSN)
        with admin.cursor() as cur:  # the scheduler's own connection to it, if any, is ended (FORCE)
            cur.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{dbname}"')
        admin.close()
        ctx = open_site(str(bench), name)
        db = ctx.database(create=True, require_schema=False)
        migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=T0)
        ctx.close()
        # the restored database's job is due at 10:16, not 11:00 (one row updated) ...
        _flush(url, "UPDATE scheduled_job_type SET next_execution = '2026-01-05 10:16:00'")
        missing = marked - _count(url)
        assert missing >= 0, "the new database wrote more than the old one: pad the old one instead"
        if missing:  # ... and its count brought to the marked one (rows rewritten as they are)
            _flush(url, "; ".join(["UPDATE scheduled_job_type SET name = name WHERE id = (SELECT min(id) "
                                   "FROM scheduled_job_type)"] * missing))
        assert _count(url) == marked

        sched.results.clear()
        clock[0] += timedelta(seconds=61)
        sched.cycle(all_sites=False)
        assert name in [r.site for r in sched.results]  # probed: another database, whatever its count
        assert sched.sites[name].next_due == datetime(2026, 1, 5, 10, 16)
