"""Schema upgrade tests start from a database as an older version of hookscheduler left it."""

from __future__ import annotations

from typing import Any

import peewee as pw
import pytest

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


def a_failing_step_leaves_version_0(db: pw.Database, monkeypatch: Any, steps: list[Any]) -> None:
    """Take ``db`` (empty) through ``steps`` then a step that fails: ``ensure_schema`` raises and the database
    is left at version 0 (the caller checks which tables must be absent)."""

    def broken(db: pw.Database) -> None:
        db.execute_sql('CREATE INDEX "x_broken" ON "no_such_table" ("id")')  # type: ignore[no-untyped-call]

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*steps, broken])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(steps) + 1)
    with pytest.raises(pw.DatabaseError):
        dbmod.ensure_schema(db)
    if db.in_transaction():  # type: ignore[no-untyped-call]
        db.rollback()
    assert dbmod.schema_version(db) == 0
