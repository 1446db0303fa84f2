"""The change gate: an idle PostgreSQL site is not probed while its database has had no write.

The loop steps every site once per ``scheduler_tick_interval`` so that a direct SQL edit (a job's
``next_execution`` moved earlier, a pause set in the state table, a run claimed by another process) is noticed
within that interval. Each of those steps is the probe (:meth:`hookscheduler.store.Store.probe`), and a process
holds at most ``scheduler_db_connections`` PostgreSQL connections, so over 1,000 sites (one database each) almost
every idle step reconnected first (a connection, its session set-up, its statements prepared again): 1.4 s of CPU
per idle round, 2.3% of a core. The probe only learns something when the database was written since the last
one, and PostgreSQL counts every database's writes. So once per cycle and server, one statement on a connection
the process already holds reads every database's count of rows written
(:meth:`hookscheduler.store.postgres.PostgresStore.write_counters`), and a site whose count is the one read
before its last real probe skips the probe: its cached answer (its next slot, its inactive state, no active
run, no row without a slot) still holds, and the step needs no connection. What a skipped step still does:
its last tick (the cycle's Redis batch) and the sweep's bookkeeping; a step that needs the database for
anything else (a sweep with active runs to reconcile, a calendar to re-check, rows to repair, a slot due, a
retry, the config re-read) is a full step with its probe.

What the counters see, and the limits (PostgreSQL's cumulative statistics, 15 and later):

* every row a session inserts, updates or deletes in the database, by anyone: this scheduler, the CLI, the
  workers, a direct SQL edit (and DDL, through the catalog rows it writes; ``TRUNCATE`` too). A session's
  counts reach the shared counters when it *flushes* them, after its transaction ends: when it goes idle, at
  most once a second; a session that goes idle within a second of its last flush flushes after 10 s idle
  (``PGSTAT_IDLE_INTERVAL``); when the shared counters are locked by others the flush is retried and forced
  after 60 s (``PGSTAT_MAX_INTERVAL``); a session that ends flushes at once. So a direct SQL edit is noticed
  within one tick interval plus that lag: about a second, 10 s at worst for a session left idle, longer only for
  a session that keeps working under lock contention or stays *inside* a transaction after committing the edit
  (its counts wait for that transaction to end). :data:`FULL_PROBE_EVERY` bounds those cases: every site is
  probed for real at least that often, whatever its counter says;
* a counter that changed in any way (grew, went down, a ``pg_stat_reset()``, whose time is part of the
  value compared, or a crash that discarded the statistics) means "probe", and so does a database dropped and
  created again under the same name (its OID is part of the value compared: its count starts from zero and
  the same migrate brings it to the same number): the gate can only ever make a step do more than skip, never
  less;
* a superuser's session may ``SET track_counts = off`` for itself alone: nothing the server shows says so, and
  its writes are never counted; they are noticed at the forced probe (:data:`FULL_PROBE_EVERY`);
* ``track_counts = off`` (or a per-database or per-role setting of it, which could hide some sessions' writes)
  makes the counters useless: :meth:`~hookscheduler.store.postgres.PostgresStore.write_counters` says so and
  every site is probed. So does a role that cannot read ``pg_stat_database``, a server the gate cannot reach,
  a database missing from the answer, and a site whose config was re-read since its last probe (a pause or a
  calendar set in a file changes the answer without a write);
* servers up to PostgreSQL 14 send their statistics to a collector process over UDP, which may drop some
  under load: a write whose counts were dropped is noticed by the forced probe;
* a cycle woken by an announced change (the CLI publishes one after its writes) probes every site: the CLI's
  writes may not be flushed to the counters yet;
* the writes counted are the database's, not the site's tables': a database shared by several sites (one
  schema each) probes all of them after a write to any one. The count read before a site's probe is the one
  compared with, so a write that the probe did not see (committed after it began) is always flushed after that
  read, and changes the count the next cycle reads.

SQLite sites do not use the gate: their probe costs a fraction of a millisecond on a file already open. Nor
does a PostgreSQL server with a single site of the bench: the reading would cost the round trip of the one
probe it could save.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl, unquote, urlsplit

import peewee as pw

from ..context import SiteContext
from ..store import store_for
from ..store.postgres import PostgresStore

log = logging.getLogger(__name__)

#: Seconds after which a site is probed for real even if its database's count of writes has not moved
#: (each site between 80% and 100% of it, from its name, so the forced probes of 1,000 sites spread over
#: several cycles): the bound on what the counters can miss for longer (see the module's docstring). At
#: 1,000 sites this costs about 1,000 reconnections per ten minutes, 0.2% of a core here.
FULL_PROBE_EVERY = 600.0

#: A database's count of rows written (inserted + updated + deleted), when its statistics were last reset, and its
#: OID (a database created again under the same name is another one, whatever its count).
Writes = tuple[int, datetime | None, int]
#: One server's counts, by database name; None: the gate cannot tell (counters off, unreadable, unreachable).
Reading = dict[str, Writes] | None


@dataclass(frozen=True)
class Mark:
    """What a site's last real probe was made against: the count read before it, when, and the site's config
    (its :class:`~hookscheduler.config.Site`, compared by value: the loop replaces it whenever it re-reads the
    config, which it also does when a file is too fresh to fingerprint)."""

    writes: Writes
    probed_at: datetime
    site: object


def must_probe(mark: Mark | None, seen: Writes | None, site: object, now: datetime, max_skip: float) -> bool:
    """Whether a step at ``now`` must probe the site: yes unless its last real probe (``mark``) was made
    against the count ``seen`` now, with the same config, less than ``max_skip`` seconds ago (and not in a
    future the clock went back from). Unknown counts (``seen`` or ``mark`` None) always probe."""
    if mark is None or seen is None or (mark.site is not site and mark.site != site):
        return True
    if now < mark.probed_at or (now - mark.probed_at).total_seconds() >= max_skip:
        return True
    return seen != mark.writes


def max_skip_for(name: str, every: float = FULL_PROBE_EVERY) -> float:
    """The site's own bound on skipped probes, between 80% and 100% of ``every``, stable across restarts."""
    return every * (0.8 + 0.2 * (zlib.crc32(name.encode()) % 1000) / 1000)


@functools.lru_cache(maxsize=65536)
def server_of(db_url: str) -> tuple[str, str] | None:
    """``(server, database)`` of a PostgreSQL ``db_url`` (None for anything else): sites on one server share a
    reading. The server is the host and port as written (two spellings of one server read twice, harmlessly)."""
    try:
        parts = urlsplit(db_url)
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            return None
        options = dict(parse_qsl(parts.query))
        host = parts.hostname or options.get("host") or ""
        port = parts.port or options.get("port") or 5432
    except ValueError:
        return None
    database = unquote(parts.path.lstrip("/"))
    return (f"{host}:{port}", database) if database else None


def read_counters(db: pw.Database) -> Reading:
    """The server's counts, through ``db`` (a connection the process holds): the store's statement."""
    store = store_for(db)
    return store.write_counters() if isinstance(store, PostgresStore) else None


@dataclass
class ChangeGate:
    """The loop's gate: one reading per server and cycle, taken before the first probe of the cycle on that
    server that could be left out, and each site's :class:`Mark`. ``read`` is injectable (tests: a server whose
    counters are off)."""

    read: Callable[[pw.Database], Reading] = read_counters
    every: float = FULL_PROBE_EVERY
    marks: dict[str, Mark] = field(default_factory=dict)
    readings: dict[str, Reading] = field(default_factory=dict)
    shared: set[str] = field(default_factory=set)  # the servers with two sites or more (:meth:`begin`)
    #: False in a cycle that must probe every site (an announced change, the first cycle)
    open: bool = False
    reported: str | None = None  # the last reason the gate could not read a server, logged once
    skipped: int = 0  # steps that skipped their probe (for tests and benchmarks)

    def begin(self, gated: bool, db_urls: Iterable[str] = ()) -> None:
        """A new cycle: readings are taken afresh; ``gated`` False probes every site (the reading is still taken,
        so that those probes mark their sites and the next gated cycle can skip them). ``db_urls``: the bench's
        sites' databases. Only a server with two sites or more is read: for a server with one, the reading
        would cost the round trip of the one probe it can save (one site holds its connection between cycles),
        and a cycle where its database was written would cost both."""
        self.readings.clear()
        self.open = gated
        count = Counter(where[0] for where in map(server_of, db_urls) if where is not None)
        self.shared = {server for server, sites in count.items() if sites >= 2}

    def seen(self, ctx: SiteContext, held: Iterable[SiteContext]) -> Writes | None:
        """The count of ``ctx``'s database in this cycle's reading of its server (read now if it is the first
        site of that server this cycle, on a held connection to that server, else on ``ctx``'s own)."""
        where = server_of(ctx.site.db_url)
        if where is None:  # not PostgreSQL
            return None
        server, database = where
        if server not in self.shared:
            return None
        if server not in self.readings:
            lender = next((h for h in held if h.is_open and (server_of(h.site.db_url) or ("",))[0] == server), ctx)
            self.readings[server] = self._read(lender)
        reading = self.readings[server]
        return None if reading is None else reading.get(database)

    def _read(self, lender: SiteContext) -> Reading:
        try:
            with lender.pinned():
                reading = self.read(lender.database())
        except Exception as exc:  # unreadable or unreachable: probe every site; the steps report outages
            if isinstance(exc, (pw.OperationalError, pw.InterfaceError)):
                lender.close()  # a broken connection: the next cycle reads on another one (or reconnects)
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            if reason != self.reported:
                log.info("the change gate cannot read the write counters (%s); probing every PostgreSQL site",
                         reason)
                self.reported = reason
            return None
        if reading is None and self.reported != "off":
            log.info("PostgreSQL keeps no write counters (track_counts off, or set per database or role); "
                     "probing every PostgreSQL site each tick interval")
            self.reported = "off"
        return reading

    def skips(self, name: str, site: object, seen: Writes | None, now: datetime) -> bool:
        """Whether this cycle's step of site ``name`` may leave out its probe (the caller checks that nothing
        else in the step needs the database)."""
        if not self.open:
            return False
        skip = not must_probe(self.marks.get(name), seen, site, now, max_skip_for(name, self.every))
        self.skipped += skip
        return skip

    def probed(self, name: str, site: object, seen: Writes | None, now: datetime) -> None:
        """A full step of the site completed at ``now``, its probe made after the count ``seen`` was read."""
        if seen is None:
            self.marks.pop(name, None)
        else:
            self.marks[name] = Mark(seen, now, site)

    def forget(self, name: str) -> None:
        """The site failed or left the bench: its next step probes."""
        self.marks.pop(name, None)

