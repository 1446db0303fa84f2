"""Schema upgrade tests start from a database as an older version of hookscheduler left it."""

from __future__ import annotations

from typing import Any

import peewee as pw

from hookscheduler.context import SiteContext, open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import Plan, migrate_site
from hookscheduler.store import database as dbmod
from hookscheduler.store.database import MIGRATIONS, set_state, write_txn


def site_at_version(bench_factory: Any, db_kind: str, version: int) -> tuple[SiteContext, pw.Database]:
    """A site with one hourly job whose database has only the first ``version`` schema steps applied."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    dbmod.bind(db)
    with write_txn(db):
        for step in MIGRATIONS[:version]:
            step(db)
        set_state("schema_version", str(version))
    return ctx, db


def upgrade(ctx: SiteContext, db: pw.Database, now: Any) -> Plan:
    """``migrate`` as the command runs it: the schema brought up to date, then the jobs synced."""
    return migrate_site(db, ctx.name, load_job_specs(ctx.bench, ctx.site.queues), ctx.calendar, now=now)
