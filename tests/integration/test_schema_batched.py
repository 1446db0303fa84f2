"""``ensure_schema`` sends the schema steps' DDL in batches on PostgreSQL (:func:`~hookscheduler.store.database.
batched_ddl`): the schema it leaves is the one the steps leave run one statement at a time, from every older
version; a cold creation costs a handful of round trips; a failing step still rolls every step back."""

from __future__ import annotations

import re
from typing import Any

import peewee as pw
import pytest

from hookscheduler.store import database as dbmod
from hookscheduler.store.models import ALL_MODELS
from tests.integration.schema_support import a_failing_step_leaves_version_0
from tests.integration.schema_support import site_at_version as _at_version


def site_at_version(bench_factory: Any, db_kind: str, version: int) -> Any:
    """:func:`~tests.integration.schema_support.site_at_version`, and version 0: an empty database."""
    if version:
        return _at_version(bench_factory, db_kind, version)
    from hookscheduler.context import open_site

    ctx = open_site(str(bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)))
    return ctx, ctx.database(create=True, require_schema=False)


def _schema(db: pw.Database) -> dict[str, Any]:
    """Every table's columns and indexes (with their definitions, less the schema the test runs in), as the
    catalog says."""
    out: dict[str, Any] = {}
    for model in ALL_MODELS:
        table = model._meta.table_name
        out[table] = (
            sorted((c.name, c.data_type, c.null) for c in db.get_columns(table)),
            sorted((ix.name, re.sub(r" ON \S+\.", " ON ", ix.sql or ""), tuple(ix.columns), ix.unique)
                   for ix in db.get_indexes(table)),
        )
    return out


@pytest.mark.parametrize("start", range(dbmod.SCHEMA_VERSION))
def test_batched_schema_equals_the_steps_run_one_by_one(bench_factory, db_kind, start):
    ctx, db = site_at_version(bench_factory, db_kind, start)
    assert dbmod.ensure_schema(db) == dbmod.SCHEMA_VERSION - start
    assert dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
    batched = _schema(db)
    ctx.close()
    ref_ctx, ref_db = site_at_version(bench_factory, db_kind, dbmod.SCHEMA_VERSION)  # every step, unbatched
    try:
        assert batched == _schema(ref_db)
    finally:
        ref_ctx.close()


@pytest.mark.postgres
def test_a_cold_schema_costs_a_few_round_trips_on_postgresql(bench_factory):
    ctx, db = site_at_version(bench_factory, "postgres", 0)
    sent: list[str] = []
    cursor = db.cursor

    def counting(*args: Any, **kwargs: Any) -> Any:
        real = cursor(*args, **kwargs)
        execute = real.execute

        def execute_counted(sql: Any, *a: Any, **k: Any) -> Any:
            sent.append(str(sql))
            return execute(sql, *a, **k)

        return _CursorProxy(real, execute_counted)

    db.cursor = counting  # type: ignore[method-assign]
    try:
        assert dbmod.ensure_schema(db) == dbmod.SCHEMA_VERSION
    finally:
        del db.cursor
        ctx.close()
    ddl = sum(sql.count("CREATE ") + sql.count("DROP ") + sql.count("ALTER ") for sql in sent)
    # BEGIN, the lock, the version read twice, the two DDL batches (split by the v4 step's column read), the
    # version written, COMMIT: every DDL statement is still sent, in far fewer requests than statements
    assert ddl >= 10 and len(sent) <= 12, sent


class _CursorProxy:
    def __init__(self, real: Any, execute: Any) -> None:
        self._real, self.execute = real, execute

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __iter__(self) -> Any:
        return iter(self._real)


def test_a_failing_step_rolls_back_every_batched_step(bench_factory, db_kind, monkeypatch):
    ctx, db = site_at_version(bench_factory, db_kind, 0)
    try:
        a_failing_step_leaves_version_0(db, monkeypatch, list(dbmod.MIGRATIONS))
        assert not db.table_exists("scheduled_job_type") and not db.table_exists("scheduler_inactivity")
    finally:
        ctx.close()


def test_column_names_reads_the_catalog_as_get_columns_does(bench_factory, db_kind):
    ctx, db = site_at_version(bench_factory, db_kind, dbmod.SCHEMA_VERSION)
    try:
        for model in ALL_MODELS:
            table = model._meta.table_name
            assert dbmod.column_names(db, table) == {c.name for c in db.get_columns(table)} != set()
        assert dbmod.column_names(db, "no_such_table") == set()
    finally:
        ctx.close()
