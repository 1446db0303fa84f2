"""A new database gets the final schema from one script (:func:`~hookscheduler.store.database.create_fresh_schema`):
its catalog is exactly the one every version's steps leave, run one after the other, on SQLite and PostgreSQL;
a database that already holds any of the tables still goes through the steps; a step added after the script's
version still runs after it, in the same transaction."""

from __future__ import annotations

import re
from typing import Any

import peewee as pw

from hookscheduler.store import database as dbmod
from tests.integration.schema_support import a_failing_step_leaves_version_0
from tests.integration.test_schema_batched import site_at_version


def _catalog(db: pw.Database) -> Any:
    """Everything the catalog says of the schema's tables, less what differs between two databases or schemas
    holding the same schema (SQLite's root pages, PostgreSQL's schema names and object ids)."""
    if isinstance(db, pw.PostgresqlDatabase):
        tables = list(dbmod.SCHEMA_TABLES)

        def rows(sql: str) -> list[tuple[Any, ...]]:
            cursor = db.execute_sql(sql, (tables,))  # type: ignore[no-untyped-call]
            return sorted(tuple(re.sub(r"\b\w+\.(?=\w)", "", v) if isinstance(v, str) else v for v in row)
                          for row in cursor.fetchall())

        where = "table_schema = current_schema() AND table_name = ANY(%s)"
        return {
            "columns": rows("SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length, "
                            "numeric_precision, is_nullable, column_default FROM information_schema.columns "
                            f"WHERE {where}"),
            "constraints": rows("SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid) "
                                "FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY(%s) "
                                "AND c.connamespace = current_schema()::regnamespace"),
            "indexes": rows("SELECT tablename, indexname, indexdef FROM pg_indexes "
                            "WHERE schemaname = current_schema() AND tablename = ANY(%s)"),
            "sequences": rows("SELECT s.relname, q.seqtypid::regtype::text, q.seqstart, q.seqincrement, q.seqmax "
                              "FROM pg_sequence q JOIN pg_class s ON s.oid = q.seqrelid "
                              "WHERE s.relnamespace = current_schema()::regnamespace "
                              "AND split_part(s.relname, '_id_seq', 1) = ANY(%s)"),
            "owned": rows("SELECT s.relname, t.relname, d.deptype FROM pg_depend d "
                          "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                          "JOIN pg_class t ON t.oid = d.refobjid "
                          "WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(%s)"),
        }
    cursor = db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
    master = cursor.fetchall()
    details = {}
    for (table,) in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():  # type: ignore[no-untyped-call]
        details[table] = [db.execute_sql(f'PRAGMA {pragma}("{table}")').fetchall()  # type: ignore[no-untyped-call]
                          for pragma in ("table_xinfo", "index_list", "foreign_key_list")]
    return master, details


def _state(db: pw.Database) -> list[tuple[Any, ...]]:
    return sorted(db.execute_sql('SELECT "key", "value" FROM "scheduler_state"').fetchall())  # type: ignore[no-untyped-call]


def test_a_new_database_gets_exactly_the_schema_of_every_step(bench_factory, db_kind, monkeypatch):
    ctx, db = site_at_version(bench_factory, db_kind, 0)
    ran: list[Any] = []
    monkeypatch.setattr(dbmod, "MIGRATIONS", [lambda db, step=step: ran.append(step) or step(db)
                                              for step in dbmod.MIGRATIONS])
    try:
        assert dbmod.ensure_schema(db) == dbmod.SCHEMA_VERSION
        assert ran == []  # the script, not the steps
        assert dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
        fresh, fresh_state = _catalog(db), _state(db)
    finally:
        ctx.close()
    monkeypatch.undo()
    ref_ctx, ref_db = site_at_version(bench_factory, db_kind, dbmod.SCHEMA_VERSION)  # every step, one by one
    try:
        assert fresh == _catalog(ref_db)
        assert fresh_state == _state(ref_db) == [("schema_version", str(dbmod.SCHEMA_VERSION))]
    finally:
        ref_ctx.close()


def test_the_script_is_the_current_version():
    """A new schema version must extend the script too (else every new database replays the new step)."""
    assert dbmod.FRESH_VERSION == dbmod.SCHEMA_VERSION
    assert set(dbmod.SCHEMA_TABLES) == {m._meta.table_name for m in dbmod.ALL_MODELS}


def test_a_database_holding_one_of_the_tables_goes_through_the_steps(bench_factory, db_kind, monkeypatch):
    ctx, db = site_at_version(bench_factory, db_kind, 0)
    db.execute_sql('CREATE TABLE "scheduler_inactivity" ("id" INTEGER NOT NULL PRIMARY KEY, '  # type: ignore[no-untyped-call]
                   '"reason" TEXT NOT NULL, "since" TIMESTAMP NOT NULL, "ended_at" TIMESTAMP)')
    called = []
    monkeypatch.setattr(dbmod, "create_fresh_schema", lambda db: called.append(db))
    try:
        assert dbmod.ensure_schema(db) == dbmod.SCHEMA_VERSION
        assert called == []
        assert dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
        assert db.table_exists("scheduled_job_type")
    finally:
        ctx.close()


def test_a_step_after_the_script_runs_after_it_and_a_failure_rolls_both_back(bench_factory, db_kind, monkeypatch):
    ctx, db = site_at_version(bench_factory, db_kind, 0)

    def v_next(db: pw.Database) -> None:
        db.execute_sql('CREATE INDEX "x_next" ON "scheduler_state" ("modified_at")')  # type: ignore[no-untyped-call]

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*dbmod.MIGRATIONS, v_next])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(dbmod.MIGRATIONS))
    try:
        assert dbmod.ensure_schema(db) == dbmod.SCHEMA_VERSION == dbmod.FRESH_VERSION + 1
        assert dbmod.schema_version(db) == dbmod.SCHEMA_VERSION
        assert any(ix.name == "x_next" for ix in db.get_indexes("scheduler_state"))
    finally:
        ctx.close()
    ctx, db = site_at_version(bench_factory, db_kind, 0)
    try:
        a_failing_step_leaves_version_0(db, monkeypatch, list(dbmod.MIGRATIONS[:dbmod.FRESH_VERSION]))
        assert not set(dbmod.SCHEMA_TABLES) & set(db.get_tables())
    finally:
        ctx.close()
