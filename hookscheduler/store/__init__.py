"""The site's database: its tables, connecting to it, its versioned schema, the scheduler's state keys, and the
store that owns every statement: of the exactly-once protocol, the worker's run transitions and the operator's
writes, and the operator's reads.

* :mod:`.models`: ``scheduled_job_type``, ``scheduled_job_log`` (the ledger) and ``scheduler_state``;
* :mod:`.database`: opening SQLite / PostgreSQL, write transactions, schema versions, state keys;
* :mod:`.base`: the :class:`~.base.Store` protocol and the rows it hands out;
* :mod:`.sqlite`, :mod:`.postgres`: its two implementations (:mod:`._sql`: what they share);
* :mod:`.ledger_reads`: the ledger as operators read it (history, missed slots, timelines, the metrics scan);
* :mod:`.job_reads`: the job table as operators read it (lists, names, events, methods).

:func:`store_for` gives the store of a database connection: made once per connection object (its dialect's
capabilities probed then), so the hot paths pay one dictionary lookup.
"""

from __future__ import annotations

import peewee as pw

from .base import Store
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = ["PostgresStore", "SqliteStore", "Store", "base", "database", "job_reads", "ledger_reads", "models",
           "postgres", "sqlite", "store_for"]

#: The attribute of a database object that holds its store: the store lives and dies with the database object
#: (a site reopened after an outage gets a new one, and the old pair is collected together).
_ATTRIBUTE = "_hookscheduler_store"


def store_for(db: pw.Database) -> Store:
    """The store of ``db`` (a :class:`PostgresStore` for PostgreSQL, else a :class:`SqliteStore`), made once."""
    store: Store | None = db.__dict__.get(_ATTRIBUTE)
    if store is None:
        store = PostgresStore(db) if isinstance(db, pw.PostgresqlDatabase) else SqliteStore(db)
        setattr(db, _ATTRIBUTE, store)
    return store
