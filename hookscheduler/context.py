"""A site opened for work: its settings, its calendar and its database, bound to the models.

The CLI, the scheduler loop, the worker and the Python API all go through here, so they find the bench, the site
and the database the same way (README, "The bench").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from .config import Bench, Site, load_bench, load_site, load_sites
from .exceptions import SchemaError
from .store import database as dbmod
from .timing.calendar import SiteCalendar

log = logging.getLogger(__name__)


@dataclass
class SiteContext:
    """One site and (lazily) its connected database."""

    site: Site
    _db: pw.Database | None = field(default=None, repr=False)
    _pinned: int = field(default=0, repr=False)  # depth of :meth:`pinned`
    _checked: bool = field(default=False, repr=False)  # inside :meth:`pinned`: the database was checked once
    #: The db_url whose schema version was checked and kept open until a planned close (:meth:`close` with
    #: ``planned``): its next connection skips the check (one catalog query on a fresh PostgreSQL backend).
    _schema_seen: str | None = field(default=None, repr=False)
    _schema_ok: bool = field(default=False, repr=False)  # the open connection's schema version was checked

    @property
    def name(self) -> str:
        return self.site.name

    @property
    def bench(self) -> Bench:
        return self.site.bench

    @property
    def calendar(self) -> SiteCalendar:
        return SiteCalendar.for_site(self.site.name, self.site.time_zone, self.site.tick_interval,
                                     self.site.settings.all_cron)

    def database(self, create: bool = False, require_schema: bool = True) -> pw.Database:
        """Connect (once) and bind the models to this site's database; reconnect when the SQLite file was
        deleted or replaced since (:func:`~hookscheduler.store.database.sqlite_file_changed`)."""
        if self._checked and self._db is not None and not self._db.is_closed():
            dbmod.bind(self._db)
            return self._db
        if self._db is not None and not self._db.is_closed():
            change = dbmod.sqlite_file_changed(self._db)
            if change is not None:
                log.warning("site %s: the SQLite database %s was %s while open; reopening it", self.name,
                            self._db.database, change)
                self.close()
        if self._db is None or self._db.is_closed():
            try:
                self._db = dbmod.connect(self.site.db_url, base_dir=self.bench.path, create=create)
            except SchemaError:  # a missing SQLite file: migrate makes it, but only in a bench
                self.bench.require_bench("run the command")
                raise
            if require_schema and self._schema_seen != self.site.db_url:
                dbmod.bind(self._db)
                dbmod.require_schema(self._db)
            self._schema_ok, self._schema_seen = require_schema, None
        dbmod.bind(self._db)
        self._checked = self._pinned > 0
        return self._db

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Within: :meth:`database` checks the SQLite file (an ``os.stat``) once, at its first call, not at
        every call. For one step of the loop, whose parts each ask for the database: a file replaced in the
        middle of a step is found at the next one, as it would be had it been replaced a moment later."""
        self._pinned += 1
        try:
            yield
        finally:
            self._pinned -= 1
            self._checked = self._checked and self._pinned > 0

    def existing_database(self) -> pw.Database | None:
        """The site's database, connected without its schema checked, or None when it is a SQLite file that does
        not exist yet (``migrate`` makes it): for commands that have nothing to do on a site never migrated."""
        try:
            return self.database(create=False, require_schema=False)
        except SchemaError:
            return None

    def replace_site(self, site: Site) -> bool:
        """Take the site's config as read again (the loop and a worker follow edits to the files): a changed
        ``db_url`` closes the database, so the next use opens the new one and nothing more is written to the old.
        Returns whether the database changed."""
        moved = site.db_url != self.site.db_url
        if moved:
            self.close()
        self.site = site
        return moved

    @property
    def is_open(self) -> bool:
        """Whether the site's database is connected (it holds descriptors, or a server connection)."""
        return self._db is not None and not self._db.is_closed()

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the site's database (nothing may close it under its owner)."""
        return self.is_open and self._db is not None and self._db.in_transaction()

    def owns(self, db: object) -> bool:
        """Whether ``db`` is this site's open database (an error raised through it is this site's)."""
        return self.is_open and self._db is db

    @property
    def holds_server_connection(self) -> bool:
        """Whether the site's open database is a PostgreSQL connection (counted against a server's budget)."""
        return isinstance(self._db, pw.PostgresqlDatabase) and self.is_open

    def close(self, planned: bool = False) -> None:
        """Close the site's database. ``planned``: a close to free its connection (the loop's budget of open
        sites), not after a failure: the same database, reopened, need not have its schema version checked again
        (a fresh PostgreSQL backend answers that catalog query slowly). A SQLite file replaced meanwhile is
        still found (:func:`~hookscheduler.store.database.sqlite_file_changed` is checked on every connection's
        use, and reopening it reads the new file)."""
        keep = self.site.db_url if planned and self.is_open and self._schema_ok else None
        if self._db is not None and not self._db.is_closed():
            self._db.close()
        self._db = None
        self._schema_ok, self._schema_seen = False, keep


def open_site(bench: str | None = None, site: str | None = None,
              overrides: dict[str, Any] | None = None) -> SiteContext:
    return SiteContext(load_site(load_bench(bench), site, overrides))


def open_sites(bench: str | None = None, site: str | None = None,
               overrides: dict[str, Any] | None = None) -> list[SiteContext]:
    return [SiteContext(s) for s in load_sites(load_bench(bench), site, overrides)]
