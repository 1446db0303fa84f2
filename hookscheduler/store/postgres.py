"""The PostgreSQL store: arrays instead of batches (a batch's claim and its ledger rows are one statement
each), due rows shared between concurrent schedulers with ``SKIP LOCKED``, the probe as a prepared statement,
and the worker's writes in one round trip each.

On PostgreSQL every statement is a network round trip, on a connection a work horse has just been lent, so the
start of a run (``queued -> started`` and ``last_execution``) is sent as one request that commits as it ends
(:meth:`PostgresStore.start_in_one_trip`), and its outcome as one more (:meth:`PostgresStore.finish_in_one_trip`),
instead of seven and four. They are the same statements in the same transaction; the compare-and-set is the same
``UPDATE ... WHERE status = 'queued'``. If one fails it is rolled back and the caller takes the careful path
(each write on its own, the ledger row's in a savepoint), which keeps ``last_execution`` advancing when only
the ledger table is broken.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import peewee as pw

from ..exceptions import ConfigError
from ._sql import DECIDED_TRIGGERS, DUE_COLUMNS, FINISH, PROBE, SqlStore, job_presence, ledger_columns, probe_of
from .base import JOB_ABSENT, JOB_INSERT_COLUMNS, JOB_REMOVED, ClaimRequest, LedgerValues, Outcome, Probe, stamps

log = logging.getLogger(__name__)

#: How long a worker's ledger write waits for a row or table lock (an operator's ``LOCK TABLE``, a long
#: ``ALTER``) before giving up: a job must not wait on its ledger row.
LOCK_TIMEOUT = "5s"
#: The oldest server with every feature the statements use (``SKIP LOCKED`` and ``ON CONFLICT`` came in 9.5).
MIN_SERVER_VERSION = 90500
_LEDGER_TYPES = (
    "integer",
    "text",
    "timestamp",
    "text",
    "text",
    "text",
    "integer",
    "timestamp",
    "timestamp",
    "text",
    "text",
    "timestamp",
    "timestamp",
)
#: The start in one statement. Every part reads the snapshot taken before the UPDATEs, so ``known`` still sees
#: the row as it was; ``last_execution`` advances unless this is a duplicate delivery (as in the careful path).
#:
#: A run whose job was removed from hooks, or whose job row is gone (pruned), is not started and does not move
#: ``last_execution``; the last column says which (NULL: no job row).
#:
#: Lock order: the job's row first (``job``, ``FOR UPDATE``, read once through an uncorrelated condition of
#: each UPDATE, evaluated before that UPDATE locks any row), then the run's ledger row: the order a pass
#: takes them in (:meth:`PostgresStore.select_due` locks due rows, then the pass settles their ledger rows). In
#: the other order a start write and a pass could each hold what the other waits for (a deadlock, seen once in a
#: 30-minute chaos run; ``test_the_start_write_takes_the_job_row_before_the_ledger_row``). Data-modifying CTEs
#: run in no set order; ``job`` is a plain (locking, hence materialised once) CTE that both read first.
_START_ONE_TRIP = (
    "WITH job AS (SELECT removed FROM scheduled_job_type WHERE name = %s FOR UPDATE), "
    "started AS (UPDATE scheduled_job_log SET status = 'started', started_at = %s, worker = %s, "
    "modified_at = %s, enqueued_at = COALESCE(enqueued_at, %s) "
    "WHERE EXISTS (SELECT 1 FROM job WHERE removed IS NOT TRUE) "
    "AND rq_job_id = %s AND status = 'queued' RETURNING 1), "
    "known AS (SELECT 1 FROM scheduled_job_log WHERE rq_job_id = %s), "
    "advanced AS (UPDATE scheduled_job_type SET last_execution = %s WHERE name = %s "
    "AND (last_execution IS NULL OR last_execution < %s) "
    "AND EXISTS (SELECT 1 FROM job WHERE removed IS NOT TRUE) "
    "AND (EXISTS (SELECT 1 FROM started) OR NOT EXISTS (SELECT 1 FROM known)) RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM started), EXISTS (SELECT 1 FROM known), (SELECT count(*) FROM advanced), "
    "(SELECT CASE WHEN removed IS TRUE THEN 'removed' ELSE 'present' END FROM job)"
)

#: The change gate's one statement per server and cycle (:mod:`hookscheduler.schedule.gate`): for every database of the
#: server, its rows written so far (inserted + updated + deleted, the cumulative statistics' counters), when its
#: counters were last reset, and its OID (a database dropped and created again under the same name counts from zero, and
#: the same migrate brings it to the same count: only its OID tells it apart); and whether those counters are kept at
#: all (``track_counts`` on, and no database or role setting that could turn it off for some sessions).
#: ``pg_stat_clear_snapshot()`` first: with ``stats_fetch_consistency = cache`` or ``snapshot`` a transaction re-reads
#: what it read before, and the gate must see the counters as they are now. Read-only: it changes no database's write
#: counters itself.
WRITE_COUNTERS = (
    "SELECT pg_stat_clear_snapshot(); "
    "SELECT d.datname, d.tup_inserted + d.tup_updated + d.tup_deleted, d.stats_reset, "
    "current_setting('track_counts') = 'on' AND NOT EXISTS (SELECT 1 FROM pg_db_role_setting s, "
    "unnest(s.setconfig) AS c(setting) WHERE lower(split_part(c.setting, '=', 1)) = 'track_counts'), "
    "d.datid::bigint FROM pg_stat_database d WHERE d.datname IS NOT NULL"
)

#: Connections on which the probe is a prepared statement. It has no parameters (``now`` is compared in
#: Python), so its one plan is the index plan; planning it each time would cost ten times more than running it.
_PREPARED: weakref.WeakSet[Any] = weakref.WeakSet()
#: The pass's other hot statements, prepared once per connection (statement name -> connections).
_PREPARED_AS: dict[str, weakref.WeakSet[Any]] = {}
#: Statements run once on a connection, plainly (statement name -> connections): a statement is prepared at its
#: second use on a connection, not its first, so a connection opened for a single visit (a site past the loop's
#: budget of connections, reconnected each slot) does not pay a ``PREPARE`` round trip it never reuses.
_USED_ONCE: dict[str, weakref.WeakSet[Any]] = {}
#: Non-empty once a prepared statement went missing inside a transaction (a pooler in transaction mode).
_POOLED: list[bool] = []
_PARAM = re.compile(r"%s")


def _first_use(name: str, conn: Any) -> bool:
    """Whether this is statement ``name``'s first use on ``conn`` (then it runs plainly; see :data:`_USED_ONCE`)."""
    once = _USED_ONCE.setdefault(name, weakref.WeakSet())
    if conn in once:
        return False
    once.add(conn)
    return True


def _lost_statement(exc: BaseException) -> bool:
    """A prepared statement missing from the session (psycopg2 says ``InvalidSqlStatementName``; peewee files it
    as a programming or an operational error depending on its version)."""
    if type(exc.__cause__ or exc).__name__ == "InvalidSqlStatementName":
        return True
    return "prepared statement" in str(exc) and "does not exist" in str(exc)


class PostgresStore(SqlStore):
    """The statements on PostgreSQL."""

    #: Due rows per batch: small enough that concurrent schedulers over the same slot each take batches of
    #: their own (SKIP LOCKED), large enough that a batch's fixed cost (a commit, a pipeline) is small.
    batch = 250
    false = "false"
    #: SKIP LOCKED only decides who *tries* a row; the claim's compare-and-set still decides who *wins* it.
    due_lock = " FOR UPDATE SKIP LOCKED"
    row_lock = " FOR UPDATE"

    def __init__(self, db: pw.Database) -> None:
        version = db.server_version  # type: ignore[attr-defined]
        if version is None:  # read by peewee on the first connection: probed once, when the store is made
            db.connection()  # type: ignore[no-untyped-call]
            version = db.server_version  # type: ignore[attr-defined]
        if version < MIN_SERVER_VERSION:
            raise ConfigError(f"PostgreSQL {version // 10000}.{version // 100 % 100} is too old: hookscheduler needs "
                              "9.5 or newer (FOR UPDATE SKIP LOCKED, INSERT ... ON CONFLICT); upgrade the server")
        super().__init__(db)
        self.server_version = int(version)

    def due_sql(self) -> str:
        """The batch's rows (``due``, locked) joined once to the ledger's active runs, rather than the per-row
        ``EXISTS`` SQLite runs: PostgreSQL evaluated that subquery for every due row before the ``LIMIT``
        (1,000 due rows in batches of 250: 2,500 times), and, with a plan made while the ledger was nearly
        empty, as a scan of the whole ledger each time (a 250-row batch's select took 25-70 ms, now 1-2 ms).
        ``decided`` is I9's last slot the ledger already stands for (``_sql._DECIDED``), joined the same way:
        read after ``due`` has locked the rows, so no other pass can add a row for them meanwhile."""
        return (
            f"WITH due AS (SELECT {DUE_COLUMNS} FROM scheduled_job_type WHERE next_execution <= %s "
            f"AND removed = %s ORDER BY next_execution, id LIMIT %s{self.due_lock}), "
            "active AS (SELECT DISTINCT l.job_id FROM scheduled_job_log l JOIN due ON l.job_id = due.id "
            "WHERE l.status IN ('queued', 'started')), "
            "decided AS (SELECT l.job_id, MAX(COALESCE(l.last_slot, l.scheduled_for)) AS last "
            "FROM scheduled_job_log l JOIN due ON l.job_id = due.id "
            f"WHERE l.scheduled_for >= due.next_execution AND l.trigger IN {DECIDED_TRIGGERS} GROUP BY l.job_id) "
            "SELECT due.*, due.id IN (SELECT job_id FROM active), decided.last "
            "FROM due LEFT JOIN decided ON decided.job_id = due.id ORDER BY next_execution, id"
        )

    def membership(self, column: str, values: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
        if values:
            yield f"{column} = ANY(%s)", [list(values)]

    def probe(self) -> Probe:
        return probe_of(self._execute_probe())

    def _execute_probe(self) -> Any:
        conn = self.db.connection()  # type: ignore[no-untyped-call]
        if conn not in _PREPARED:
            if _first_use("hs_probe", conn):  # planned once either way on a connection used once
                return self.sql(PROBE.format(false=self.false)).fetchone()
            self.sql("PREPARE hs_probe AS " + PROBE.format(false=self.false))
            _PREPARED.add(conn)
        try:
            return self.sql("EXECUTE hs_probe").fetchone()
        except (pw.ProgrammingError, pw.OperationalError) as exc:  # the session lost it (a pooler switched
            if not _lost_statement(exc):  # server connections): prepare again
                raise
            _PREPARED.discard(conn)
            if self.db.in_transaction():  # type: ignore[no-untyped-call]
                raise
            return self._execute_probe()

    def write_counters(self) -> dict[str, tuple[int, datetime | None, int]] | None:
        """Every database of this server: ``{name: (rows written, stats reset at, OID)}``, from the cumulative
        statistics (:data:`WRITE_COUNTERS`); None when the server keeps no such counters (``track_counts``
        off, or settable per database or role). One read-only statement, outside any transaction. A role that
        may not read the views raises the database's error; the caller falls back to probing."""
        rows = self.sql(WRITE_COUNTERS).fetchall()
        if not rows or not rows[0][3]:
            return None
        return {name: (int(written), reset, int(oid)) for name, written, reset, _, oid in rows}

    def hot(self, name: str, sql: str, params: Sequence[Any]) -> Any:
        """``EXECUTE`` a statement prepared once per connection (at its second use on it: :data:`_USED_ONCE`).
        The pass's statements select and join arrays to the table, and planning them cost several times their
        execution (the claim: 0.4 ms to plan, 0.1 ms to run), on the path between a slot and its send. A session
        that lost the statement (a pooler switched server connections) fails the pass; the loop reconnects, and
        the new connection prepares it again."""
        if _POOLED:  # prepared statements do not survive here: plain statements from now on
            return self.sql(sql, params)
        conn = self.db.connection()  # type: ignore[no-untyped-call]
        prepared = _PREPARED_AS.setdefault(name, weakref.WeakSet())
        if conn not in prepared:
            if _first_use(name, conn):  # planned once either way on a connection used once
                return self.sql(sql, params)
            numbered = iter(range(1, sql.count("%s") + 1))
            self.sql(f"PREPARE {name} AS " + _PARAM.sub(lambda _: f"${next(numbered)}", sql))
            prepared.add(conn)
        try:
            return self.sql(f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
        except (pw.ProgrammingError, pw.OperationalError) as exc:
            if _lost_statement(exc):  # the pooler gave this transaction another server connection
                _POOLED.append(True)
                prepared.discard(conn)
                log.warning(
                    "the PostgreSQL session lost a prepared statement (a pooler in transaction mode?); "
                    "the scheduler uses plain statements from now on"
                )
            raise

    def claim(self, requests: Sequence[ClaimRequest]) -> set[int]:
        """One statement: the requests as arrays, joined to the table through its primary key."""
        if not requests:
            return set()
        sql = (
            "UPDATE scheduled_job_type AS t SET next_execution = v.new_next "
            "FROM unnest(%s::integer[], %s::timestamp[], %s::timestamp[]) AS v(id, old, new_next) "
            "WHERE t.id = v.id AND t.next_execution = v.old RETURNING t.id"
        )
        params = [[r.id for r in requests], [r.served for r in requests], [r.next for r in requests]]
        return {row[0] for row in self.hot("hs_claim", sql, params).fetchall()}

    def claim_and_record(self, requests: Sequence[ClaimRequest], rows: Sequence[LedgerValues]) -> set[int]:
        """One prepared statement: the claim's compare-and-set and the won jobs' ledger rows (a data-modifying
        ``WITH``: the insert reads the update's ``RETURNING``, so it runs after it and sees only the won ids),
        in the caller's transaction. Every column travels as one array literal (:func:`_arrays`)."""
        if not requests:
            return set()
        if not rows:
            return self.claim(requests)
        columns = ", ".join(f"%s::{t}[]" for t in _LEDGER_TYPES)
        sql = (
            "WITH won AS (UPDATE scheduled_job_type AS t SET next_execution = v.new_next "
            "FROM unnest(%s::integer[], %s::timestamp[], %s::timestamp[]) AS v(id, old, new_next) "
            "WHERE t.id = v.id AND t.next_execution = v.old RETURNING t.id), "
            f"ledger AS (INSERT INTO scheduled_job_log ({ledger_columns()}) "
            f"SELECT * FROM unnest({columns}) AS r({ledger_columns()}) "
            "WHERE r.job_id IN (SELECT id FROM won) RETURNING 1) "
            "SELECT id FROM won"
        )
        params = _arrays([(r.id, r.served, r.next) for r in requests]) + _arrays(rows)
        return {row[0] for row in self.hot("hs_claim_record", sql, params).fetchall()}

    def insert_ledger_rows(self, rows: Sequence[LedgerValues]) -> None:
        """One statement of arrays, whatever the number of rows."""
        if not rows:
            return
        arrays = ", ".join(f"%s::{t}[]" for t in _LEDGER_TYPES)
        self.sql(
            f"INSERT INTO scheduled_job_log ({ledger_columns()}) SELECT * FROM unnest({arrays})",
            [list(col) for col in zip(*rows, strict=True)],
        )

    def mark_sent(self, rq_ids: Sequence[str], at: datetime | Sequence[datetime]) -> None:
        """One ``UPDATE ... WHERE rq_job_id = ANY(ids)`` per distinct stamp (a send stamps up to 250 runs alike),
        all in one message. Not a join of ids and stamps as arrays: with the ledger's statistics from when it was
        nearly empty, PostgreSQL planned that join as a scan of the array for every ledger row (25-70 ms for
        250 runs); a constant ``ANY`` list is an index condition on a large ledger and a hashed filter on a
        small one. Not prepared, for the same reason: the constant list is what the planner sizes.

        Outside a transaction it commits without waiting for its WAL to reach the disk (``synchronous_commit =
        off`` for this one implicit transaction, sent in the same message): the wait is an fsync (0.4-2.5 ms
        here). A crash of the server can lose only these stamps, never the claim or the ledger row (their
        commit waited), and a run whose stamp is lost is back in the outbox: re-sent, which RQ's unique enqueue
        refuses while the job is in Redis (I4), and which the start mark and the ledger's compare-and-set refuse
        to start again after (I5); a worker's start, which commits with the wait, flushes this commit's WAL with
        its own, so a run that started keeps its stamp."""
        if not rq_ids:
            return
        groups: dict[datetime, list[str]] = {}
        for rq_id, when in zip(rq_ids, stamps(rq_ids, at), strict=True):
            groups.setdefault(when, []).append(rq_id)
        statement = (
            "UPDATE scheduled_job_log SET enqueued_at = %s WHERE rq_job_id = ANY(%s::text[]) AND enqueued_at IS NULL"
        )
        params: list[Any] = []
        for when, ids in groups.items():
            params += [when, "{" + _column(ids) + "}"]
        alone = self.db.transaction_depth() == 0  # type: ignore[no-untyped-call]
        prefix = "SET LOCAL synchronous_commit = off; " if alone else ""
        self.sql(prefix + "; ".join([statement] * len(groups)), params)

    def insert_jobs(self, rows: Sequence[tuple[Any, ...]], now: datetime) -> None:
        """One ``COPY ... FROM STDIN`` of every row, in the caller's transaction (:func:`copy_text`). An
        ``INSERT ... SELECT FROM unnest(...)`` of the same rows cost about 40 us a row (psycopg2 adapting each
        list value by value, then the server parsing ``ARRAY[...]`` expressions): 4 s of a 100,000-job cold
        migrate, where ``COPY`` takes about 0.7 s."""
        if not rows:
            return
        cols = ", ".join(JOB_INSERT_COLUMNS) + ", stopped, removed, created_at, modified_at"
        text = copy_text(rows, f"\tf\tf\t{now.isoformat()}\t{now.isoformat()}\n")
        cursor = self.db.cursor()  # type: ignore[no-untyped-call]
        with pw.__exception_wrapper__:  # type: ignore[attr-defined]  # the driver's error as peewee's, as every other statement raises it
            cursor.copy_expert(f"COPY scheduled_job_type ({cols}) FROM STDIN", io.StringIO(text))

    @contextlib.contextmanager
    def ledger_transaction(self) -> Iterator[None]:
        with super().ledger_transaction():
            if self.db.transaction_depth() == 1:  # type: ignore[no-untyped-call]
                self.sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            yield

    def lock_job_row(self, job_name: str) -> str:
        """The job's row before the run's ledger row, the order a pass takes them in (see
        :data:`_START_ONE_TRIP`)."""
        return job_presence(self.sql("SELECT removed FROM scheduled_job_type WHERE name = %s FOR UPDATE",
                                     (job_name,)).fetchone())

    def _one_trip_connection(self) -> Any:
        """The raw psycopg2 connection when a one-trip write applies (no transaction open, autocommit mode as
        peewee leaves it), else None."""
        if self.db.transaction_depth() != 0:  # type: ignore[no-untyped-call]
            return None
        raw = getattr(self.db, "one_trip_connection", None)  # not counted as a job's use of a lent connection
        conn = raw() if raw is not None else self.db.connection()  # type: ignore[no-untyped-call]
        return conn if not conn.closed and conn.autocommit else None

    def start_in_one_trip(self, rq_job_id: str, job_name: str, worker: str | None, now: datetime) -> str | None:
        conn = self._one_trip_connection()
        if conn is None:
            return None
        try:
            cursor = conn.cursor()
            cursor.execute(
                _preamble() + _START_ONE_TRIP,
                (job_name, now, worker, now, now, rq_job_id, rq_job_id, now, job_name, now),
            )
            started, known, _, presence = cursor.fetchone()
        except Exception as exc:
            _abandon(conn, "start", exc)
            return None
        if presence is None:
            return JOB_ABSENT
        if presence == JOB_REMOVED:
            return JOB_REMOVED
        if started:
            return "started"
        return "duplicate" if known else "unknown"

    def finish_in_one_trip(self, rq_job_id: str, outcome: Outcome) -> bool:
        conn = self._one_trip_connection()
        if conn is None:
            return False
        try:
            conn.cursor().execute(_preamble() + FINISH.format(p="%s"), outcome.values(rq_job_id, outcome.at))
        except Exception as exc:
            _abandon(conn, "outcome", exc)
            return False
        return True


def copy_text(rows: Sequence[Sequence[Any]], tail: str) -> str:
    """``rows`` in ``COPY``'s text format, each line ending with ``tail`` (the columns every row has alike).

    Values are joined as they are, then the result is checked: when it holds exactly one tab between fields
    and one newline per row, and no backslash or carriage return, no value needed escaping (a job's names
    and methods are printable text: the common case by far) and the join is the answer. Otherwise every text
    value is escaped and the rows joined again. A NULL is ``\\N``; a timestamp is ISO text (each distinct one
    formatted once: a deploy's new rows share a few first slots)."""
    stamps: dict[Any, str] = {}
    nulls = 0

    def cell(value: Any) -> str:
        nonlocal nulls
        if isinstance(value, str):  # a str enum too: its value (what ``join`` reads of it)
            return value
        if value is None:
            nulls += 1
            return "\\N"
        if isinstance(value, datetime):
            text = stamps.get(value)
            if text is None:
                text = stamps[value] = value.isoformat()
            return text
        if isinstance(value, bool):
            return "t" if value else "f"
        return str(value)

    text = "".join(["\t".join(map(cell, row)) + tail for row in rows])
    fields = len(rows[0]) - 1 + tail.count("\t")
    if text.count("\t") == fields * len(rows) and text.count("\n") == len(rows) and text.count("\\") == nulls \
            and "\r" not in text:
        return text  # each backslash is a NULL's
    return "".join("\t".join(_copy_escape(v) if isinstance(v, str) else cell(v) for v in row) + tail
                   for row in rows)


def _copy_escape(text: str) -> str:
    """A text value as ``COPY``'s text format reads it back unchanged."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _arrays(rows: Sequence[Sequence[Any]]) -> list[str]:
    """The columns of ``rows``, each as one PostgreSQL array literal (text, cast by the statement). psycopg2
    adapts a list value by value in Python (about 30 us per row of the ledger's 13 columns: a tenth of a pass
    that fires many runs); this writes a column of numbers or timestamps with one ``join``. The arrays are also
    what keeps the joins on the primary and unique keys: ``unnest`` of a parameter is planned as a few rows,
    where a set function such as ``jsonb_array_elements`` counts as 100, and for that many the planner scanned
    the whole job table (10,000 rows) to hash-join the claim."""
    return ["{" + _column(column) + "}" for column in zip(*rows, strict=True)]


def _column(values: Sequence[Any]) -> str:
    kinds = {type(v) for v in values}
    if kinds == {int}:
        return ",".join(map(str, values))
    if kinds == {datetime}:  # ISO text: no character that needs quoting
        return ",".join(map(datetime.isoformat, values))
    return ",".join(map(_element, values))


def _element(value: Any) -> str:
    """One array element: NULL, a boolean, number or timestamp as it is (none needs quoting), text quoted."""
    if value is None:
        return "NULL"
    if isinstance(value, str):  # a str enum too: its value, not its name
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise TypeError(f"no array element for {type(value).__name__}")


def _preamble() -> str:
    """Sent in the same simple-query message as a one-trip write, without BEGIN: PostgreSQL runs a message's
    statements as one implicit transaction (all or nothing, committed when the message ends), and ``SET LOCAL``
    lasts for that transaction only. So a write, its lock timeout and its commit cost one round trip."""
    return f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; "


def warm_up(conn: Any) -> None:
    """Plan (``EXPLAIN``, nothing runs) the one-trip start and finish on a new connection: the server backend
    loads the catalog entries of the ledger's tables and indexes now, not during a run
    (:mod:`hookscheduler.worker.warm`). Bounded: a locked table makes it fail within ``lock_timeout``."""
    sql = (
        "SET LOCAL lock_timeout = '100ms'; SET LOCAL statement_timeout = '1s'; "
        "EXPLAIN " + _START_ONE_TRIP + "; EXPLAIN " + FINISH.format(p="%s")
    )
    conn.cursor().execute(sql, (None,) * sql.count("%s"))  # NULLs: planned for any values, matching no row


def _abandon(conn: Any, what: str, exc: BaseException) -> None:
    log.debug("the one-trip %s failed (%s: %s); taking the careful path", what, type(exc).__name__, exc)
    try:
        conn.cursor().execute("ROLLBACK")
    except Exception:  # the connection is gone: the careful path reconnects
        pass
