"""The store contract's fixture: a fresh, migrated database of each dialect, bound to the models, and its store.

Each test gets its own SQLite file or its own PostgreSQL schema (in the session's database), dropped after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookscheduler.store import Store, store_for
from hookscheduler.store.database import bind, connect, ensure_schema
from tests.helpers import pg_admin_conn


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'site.db'}"
    else:
        base = request.getfixturevalue("pg_database")
        schema = f"st_{uuid.uuid4().hex[:12]}"
        admin = pg_admin_conn(base)
        with admin.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
        admin.close()
        url = f"{base}?options=-csearch_path%3D{schema}"
    db = connect(url, create=True)
    bind(db)
    ensure_schema(db)
    try:
        yield store_for(db)
    finally:
        db.close()
        if schema:
            admin = pg_admin_conn(request.getfixturevalue("pg_database"))
            with admin.cursor() as cur:
                cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.close()
