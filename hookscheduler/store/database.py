"""Opening a site's database, binding the models to it, and its versioned schema.

SQLite is the zero-config default: WAL mode and a long busy timeout let several scheduler processes share one file;
transactions that write are opened ``IMMEDIATE`` (see :func:`write_txn`) so that a reader never has to upgrade
to a writer mid-transaction, which in WAL mode fails at once instead of waiting. The SQLite file and its
folder are created owner-only (0700 / 0600): the table can hold tracebacks with secrets in them.

The schema is versioned in ``scheduler_state.schema_version`` and brought up to date only by ``migrate``;
other commands refuse to run on an outdated schema with a hint, rather than fail on a missing column.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

import peewee as pw

from .._peewee import provide_psycopg2
from ..exceptions import ConfigError, ReadOnlyDatabase, SchemaError, ServiceUnavailable
from ..security.redact import redact, url_error
from ..worker import warm
from .models import ALL_MODELS, SchedulerInactivity, SchedulerState, database_proxy, utcnow


class PostgresqlDatabase(pw.PostgresqlDatabase):
    """peewee's, except that a work horse's first connection is the warm one its worker made for it
    (:mod:`hookscheduler.worker.warm`) when there is one."""

    def __init__(self, database: str, *, spare_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(database, **kwargs)
        self.spare_key = spare_key

    def _connect(self) -> Any:
        if self.spare_key is not None:
            conn = warm.take(self.spare_key)
            if conn is not None:
                return conn
        return super()._connect()  # type: ignore[misc]

    # --- a transaction whose BEGIN waits for its first statement (a work horse's job transaction) ----------
    @contextlib.contextmanager
    def deferring_begin(self) -> Iterator[None]:
        """While a transaction is entered in this block, its ``BEGIN`` is not sent: it goes out just before the
        transaction's first statement (any :meth:`cursor` or :meth:`connection`, a job's own psycopg2 calls
        included), and a transaction that sent none commits or rolls back without a round trip. A job that
        touches no table (most scheduled runs only enqueue or call out) then costs its horse no ``BEGIN`` and
        no ``COMMIT``: two round trips to the server per run, each a wait for another process on a busy host
        (benchmark workload 6). Only a plain ``BEGIN`` is deferred (no isolation level asked for)."""
        self._local().hs_defer_begin = True
        try:
            yield
        finally:
            self._local().hs_defer_begin = False

    def _local(self) -> Any:
        """peewee's per-thread connection state, where the deferred BEGIN's flags live with the connection."""
        return self._state  # type: ignore[attr-defined]

    def begin(self, *args: Any, **kwargs: Any) -> None:
        state = self._local()
        if getattr(state, "hs_defer_begin", False) and not args and not kwargs.get("isolation_level") \
                and getattr(self, "_isolation_level", None) is None:
            state.hs_defer_begin = False
            state.hs_begin_pending = True
            return
        super().begin(*args, **kwargs)

    def _send_pending_begin(self) -> None:
        state = self._local()
        if getattr(state, "hs_begin_pending", False):
            state.hs_begin_pending = False
            if self.in_transaction() and not self.is_closed():  # type: ignore[no-untyped-call]
                super().begin()

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        warm.note_use()
        self._send_pending_begin()
        return super().cursor(*args, **kwargs)  # type: ignore[no-untyped-call]

    def connection(self) -> Any:
        warm.note_use()  # whoever asks may send anything on it
        conn = super().connection()  # type: ignore[no-untyped-call]
        self._send_pending_begin()
        return conn

    def one_trip_connection(self) -> Any:
        """The raw connection for the run's one-trip writes (:mod:`hookscheduler.store.postgres`), which leave
        nothing in the session: not counted as a use by :func:`hookscheduler.worker.warm.note_use`."""
        return super().connection()  # type: ignore[no-untyped-call]

    def commit(self) -> None:
        if getattr(self._local(), "hs_begin_pending", False):
            self._local().hs_begin_pending = False  # nothing was sent: nothing to commit
            return
        super().commit()

    def rollback(self) -> None:
        if getattr(self._local(), "hs_begin_pending", False):
            self._local().hs_begin_pending = False
            return
        super().rollback()

    def make_spare(self) -> Any:
        """A new connection for :func:`hookscheduler.warm.replenish`, bound to give up quickly."""
        params = dict(self.connect_params)
        params.setdefault("connect_timeout", warm.CONNECT_TIMEOUT)
        params.setdefault("tcp_user_timeout", warm.TCP_USER_TIMEOUT)
        spare = PostgresqlDatabase(self.database, **params)
        return spare._connect()


def open_database(url: str, base_dir: Path | None = None) -> pw.Database:
    """A peewee database for ``sqlite:///path`` or ``postgresql://user:pass@host:port/db``, not yet connected."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "postgresql://u:p@[::1/db": an unbalanced IPv6 bracket
        raise ConfigError(
            f"db_url {redact(url)} is not a valid URL ({url_error(exc)}); "
            "use sqlite:///path or postgresql://user:pass@host:port/db"
        ) from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        raw = unquote(url.split("://", 1)[1])
        # SQLAlchemy's convention: sqlite:///relative/path, sqlite:////absolute/path
        if raw.startswith("/"):
            raw = raw[1:]
        if raw in ("", ":memory:"):
            return pw.SqliteDatabase(":memory:", pragmas=_SQLITE_PRAGMAS)
        path = Path(raw)
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return pw.SqliteDatabase(str(path), pragmas=_SQLITE_PRAGMAS, timeout=30)
    if scheme in ("postgresql", "postgres"):
        dbname, options = _postgres_target(url, parts)
        provide_psycopg2()  # when the command line deferred it (hookscheduler._peewee)
        if getattr(pw, "psycopg2", None) is None:  # peewee's import of the driver is optional: say what to install
            raise ConfigError(
                f"db_url {redact(url)} is PostgreSQL, but its driver (psycopg2) is not installed: "
                "pip install 'hookscheduler[postgres]'"
            )
        return PostgresqlDatabase(dbname, spare_key=url, **options)
    raise ConfigError(
        f"db_url {redact(url)}: unsupported scheme {parts.scheme!r}; use sqlite:///path or postgresql://..."
    )


def _postgres_target(url: str, parts: SplitResult) -> tuple[str, dict[str, Any]]:
    """The database name and libpq's connection parameters of a PostgreSQL ``db_url``. The host is
    percent-decoded, case kept: libpq's form for a unix socket names its folder as the host,
    ``postgresql://user@%2Fvar%2Frun%2Fpostgresql/db``."""
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ConfigError(f"db_url {redact(url)} names no database; use postgresql://user:pass@host:port/db")
    try:
        port = parts.port  # urllib checks it only now: "host:abc" or "host:99999" raise ValueError
    except ValueError as exc:
        raise ConfigError(f"db_url {redact(url)}: {url_error(exc)}; use postgresql://user:pass@host:port/db") from None
    hostinfo = parts.netloc.rpartition("@")[2]
    host = hostinfo[1:].partition("]")[0] if hostinfo.startswith("[") else hostinfo.partition(":")[0]
    given = {
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "host": unquote(host) or None,
        "port": port,
    }
    for key, value in given.items():
        if key in options and value is not None:
            raise ConfigError(
                f"db_url {redact(url)} gives the {key} both in the URL and as a ?{key}= parameter; keep one"
            )
        options.setdefault(key, value)
    options.pop("dbname", None)  # libpq's spelling of the path's database; the path wins
    return dbname, options


def database_key(url: str, base_dir: Path | None = None) -> tuple[str, ...] | None:
    """Which database ``url`` names, for telling two sites that share one: the SQLite file's real path
    (symbolic links and ``..`` resolved), or the PostgreSQL server's host and port with the database's name and
    libpq's ``options`` (``?options=-csearch_path%3Dsite1`` gives each site a schema of its own in one
    database); the user and the password do not make another database. None for an in-memory SQLite database (never
    shared) and for a URL that cannot be read (its own error is reported where it is opened)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            db = open_database(url, base_dir)
            return None if db.database == ":memory:" else ("sqlite", os.path.realpath(db.database))
        if scheme in ("postgresql", "postgres"):
            dbname, options = _postgres_target(url, parts)
            host = str(options.get("host") or "localhost")
            return ("postgresql", host if host.startswith("/") else host.lower(), str(options.get("port") or 5432),
                    dbname, str(options.get("options") or ""))
    except (ConfigError, ValueError):
        return None
    return None


_SQLITE_PRAGMAS = {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1, "synchronous": "normal"}


def _prepare_sqlite_path(db: pw.Database) -> None:
    if not isinstance(db, pw.SqliteDatabase) or db.database == ":memory:":
        return
    path = Path(db.database)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def connect(url: str, base_dir: Path | None = None, create: bool = False) -> pw.Database:
    """Open and connect; ``create`` allows making a new SQLite file (only ``migrate`` does)."""
    db = open_database(url, base_dir)
    if isinstance(db, pw.SqliteDatabase) and db.database != ":memory:":
        if not create and not Path(db.database).exists():
            raise SchemaError(f"database {db.database} does not exist yet; run `hookscheduler migrate` to create it")
        old_umask = os.umask(0o077)  # the -wal and -shm files are created owner-only too
        try:
            _prepare_sqlite_path(db)
            db.connect(reuse_if_open=True)
        except (OSError, pw.DatabaseError) as exc:  # a file where a folder should be, no permission, not SQLite
            db.close()
            fix = ("too many open files: raise the process's descriptor limit (ulimit -n; LimitNOFILE= under "
                   "systemd)" if out_of_descriptors(exc) else "check db_url and the permissions of the file and "
                   "its folder")
            raise ServiceUnavailable(f"cannot open SQLite database {db.database}: {_first_line(exc)}; {fix}") from None
        finally:
            os.umask(old_umask)
        db._hs_identity = _file_identity(db.database)  # type: ignore[attr-defined]
        return db
    try:
        db.connect(reuse_if_open=True)
    except pw.DatabaseError as exc:
        first = redact(_first_line(exc))
        raise ServiceUnavailable(
            f"cannot connect to database {redact(url)}: {first}; check db_url and that the server is up", cause=first
        ) from None
    return db


def out_of_descriptors(exc: BaseException) -> bool:
    """Whether opening a file failed because this process (EMFILE) or the system (ENFILE) has no descriptor to
    spare. SQLite says only "unable to open database file", the same words as for a missing permission, so
    that case is told by trying to open as many descriptors as SQLite needs (the database, its WAL, its shared
    memory: what it opened before failing it has closed again)."""
    for err in (exc, exc.__cause__, exc.__context__):
        if isinstance(err, OSError) and err.errno in (errno.EMFILE, errno.ENFILE):
            return True
    if "unable to open database file" not in str(exc):
        return False
    probes: list[int] = []
    try:
        for _ in range(3):
            probes.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as probe:
        return probe.errno in (errno.EMFILE, errno.ENFILE)
    finally:
        for fd in probes:
            os.close(fd)
    return False


def describe(db: pw.Database) -> str:
    """Which database ``db`` is, for a message: the SQLite file's path, or the PostgreSQL database with its
    host and port (never the user or the password)."""
    if isinstance(db, pw.SqliteDatabase):
        return f"SQLite database {db.database}"
    params = getattr(db, "connect_params", {}) or {}
    host, port = params.get("host") or "localhost", params.get("port") or 5432
    return f"PostgreSQL database {db.database} on {host}:{port}"


#: SQLSTATE 25006 (read_only_sql_transaction): PostgreSQL refusing a write in a read-only transaction.
_PG_READ_ONLY = "25006"


def is_read_only_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a database refusing a write because it is read-only: SQLite's "attempt to write a
    readonly database" (a read-only or immutable file, folder or mount), or PostgreSQL's read-only
    transaction (``default_transaction_read_only``, a hot standby); peewee's wrapper or the driver's own."""
    for err in (exc, exc.__cause__, exc.__context__):
        if err is None:
            continue
        if getattr(err, "pgcode", None) == _PG_READ_ONLY or "readonly database" in str(err):
            return True
    return False


def read_only_fix(db: pw.Database | None) -> str:
    """What to check when ``db`` refuses writes."""
    if isinstance(db, pw.PostgresqlDatabase):
        return ("check that db_url points at the primary, not a replica, and that default_transaction_read_only is "
                "off for the database and the user (ALTER DATABASE ... SET default_transaction_read_only = off)")
    return ("check the permissions of the file and its folder, an immutable flag (lsattr; chattr -i) and that "
            "the filesystem is not mounted read-only")


def read_only_problem(db: pw.Database | None, exc: BaseException) -> str:
    """One line for a database that refused a write: which database, that it is read-only, the driver's words,
    and what to check."""
    return str(_read_only(db, redact(_first_line(exc))))


def _read_only(db: pw.Database | None, reason: str) -> ReadOnlyDatabase:
    what = f"{describe(db) if db is not None else 'the database'} is read-only ({reason})"
    return ReadOnlyDatabase(f"{what}; {read_only_fix(db)}", cause=what)


def check_writable(db: pw.Database) -> None:
    """Raise :class:`~hookscheduler.exceptions.ReadOnlyDatabase` when ``db`` would refuse a write, without
    writing anything. PostgreSQL: whether a new transaction is read-only (one round trip). SQLite: a write to
    the file's header inside a transaction that is rolled back (SQLite opens a file it may not write, an
    immutable one even for root, read-only without a word, and only a write tells); before it, that the file and
    its folder may be written (SQLite makes its -wal and -shm files there)."""
    try:
        if isinstance(db, pw.PostgresqlDatabase):
            row = db.execute_sql("SHOW transaction_read_only").fetchone()  # type: ignore[no-untyped-call]
            if row and str(row[0]).lower() == "on":
                raise _read_only(db, "its transactions are read-only")
            return
        if not isinstance(db, pw.SqliteDatabase) or db.database == ":memory:":
            return
        if db.in_transaction():
            return  # a caller's transaction: not ours to probe in
        folder = os.path.dirname(os.path.abspath(db.database))
        if not os.access(db.database, os.W_OK) or not os.access(folder, os.W_OK):  # the folder: for the -wal file
            raise _read_only(db, "the file or its folder is not writable")
        conn = db.connection()  # type: ignore[no-untyped-call]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version = {int(version)}")
        finally:
            conn.execute("ROLLBACK")
    except ReadOnlyDatabase:
        raise
    except Exception as exc:
        if is_read_only_error(exc):
            raise _read_only(db, redact(_first_line(exc))) from None
        raise


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def sqlite_file_changed(db: pw.Database) -> str | None:
    """How the SQLite file behind an open ``db`` changed since :func:`connect` opened it ("deleted",
    "replaced"), or None. A process holding an open connection to a deleted file goes on writing into a file
    nobody else can see, and one holding a replaced file (a restored backup moved into place) writes into the
    old one: both lose every write without an error, so a long-running process checks before each use."""
    opened = getattr(db, "_hs_identity", None)
    if opened is None or not isinstance(db, pw.SqliteDatabase):
        return None
    now = _file_identity(db.database)
    if now == opened:
        return None
    return "deleted" if now is None else "replaced"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def bind(db: pw.Database) -> pw.Database:
    """Point the models at ``db`` (one site at a time per process)."""
    database_proxy.initialize(db)
    return db


@contextlib.contextmanager
def write_txn(db: pw.Database) -> Iterator[None]:
    """A transaction that will write: ``BEGIN IMMEDIATE`` on SQLite, a normal one on PostgreSQL; a failure
    raises its real cause (:func:`real_cause`)."""
    ctx = db.atomic("IMMEDIATE") if isinstance(db, pw.SqliteDatabase) else db.atomic()
    with raising_real_cause(), ctx:
        yield


@contextlib.contextmanager
def raising_real_cause() -> Iterator[None]:
    """A commit or rollback that failed raises why (disk full, a read-only file: :func:`real_cause`), not the
    driver's follow-up error ("cannot rollback - no transaction is active")."""
    try:
        yield
    except pw.OperationalError as exc:
        cause = real_cause(exc)
        if cause is exc:
            raise
        raise cause from None


def real_cause(exc: BaseException) -> BaseException:
    """The error worth reporting: when SQLite gives up a transaction itself (disk full, an I/O error, a
    database that turned read-only), the rollback that follows fails with "cannot rollback - no transaction is
    active", and that message would replace the one that says what went wrong."""
    cause = exc
    while "no transaction is active" in str(cause) and cause.__context__ is not None:  # peewee wraps sqlite3's
        cause = cause.__context__
    return cause


# --- versioned schema -------------------------------------------------------------------------------


def _v1(db: pw.Database) -> None:
    db.create_tables(list(ALL_MODELS), safe=True)


def _v2(db: pw.Database) -> None:
    """Leaner ledger indexes. A run's log row is written three or four times (queued, sent, started, finished)
    and on PostgreSQL every write that changes an indexed column adds an entry to *every* index of the row, so
    each index is paid for on the pass's and the worker's hot paths:

    * ``(job_id)`` alone goes: ``(job_id, scheduled_for)`` has the same leading column (it also serves the
      ``ON DELETE CASCADE`` from ``scheduled_job_type``);
    * ``(job_id, status)`` becomes ``(job_id) WHERE status IN ('queued', 'started')``: its readers only ask for
      a job's active runs, and finished rows (nearly all of them) leave the index;
    * ``(status, enqueued_at)`` becomes the outbox, ``(id) WHERE status = 'queued' AND enqueued_at IS NULL``:
      a row is in it only between its claim and its send, so the pass's probe reads an index that is empty
      in steady state.

    Queries that should use a partial index spell its predicate with literals (SQLite matches them textually).
    """
    for name in ("scheduled_job_log_job_id", "scheduled_job_log_job_id_status", "scheduled_job_log_status_enqueued_at"):
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')  # type: ignore[no-untyped-call]
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "scheduled_job_log_active" ON "scheduled_job_log" ("job_id") '  # type: ignore[no-untyped-call]
        "WHERE status IN ('queued', 'started')"
    )
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "scheduled_job_log_outbox" ON "scheduled_job_log" ("id") '  # type: ignore[no-untyped-call]
        "WHERE status = 'queued' AND enqueued_at IS NULL"
    )


#: The predicate of the ``scheduled_job_log_trouble`` index, spelled exactly so in the queries that use it.
TROUBLE = "(status IN ('missed', 'skipped', 'failed') OR slots > 1 OR \"trigger\" = 'catch-up')"


def _v3(db: pw.Database) -> None:
    """An index for "what went wrong since T" (``jobs missed``, failed runs, the dashboard's missed-and-failed
    page): slots by time, holding only the rows that did not run cleanly -- missed, skipped, failed, or a
    catch-up run. A healthy run never enters it, so the pass's and the worker's writes of healthy runs do not
    pay for it, and those queries read the trouble rows since T instead of every row of the ledger since T."""
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "scheduled_job_log_trouble" ON "scheduled_job_log" '  # type: ignore[no-untyped-call]
        f'("scheduled_for") WHERE {TROUBLE}'
    )


def _v4(db: pw.Database) -> None:
    """Pauses that end by themselves and catch-up after a pause: ``scheduled_job_type.stopped_until``
    (``jobs disable --until T``) and the ``scheduler_inactivity`` table (when and why the site's scheduler was
    inactive; see :class:`~hookscheduler.store.models.SchedulerInactivity`). Idempotent: version 1 creates
    today's models, so a database created after this step already has both."""
    if "stopped_until" not in column_names(db, "scheduled_job_type"):
        kind = "TIMESTAMP" if isinstance(db, pw.PostgresqlDatabase) else "DATETIME"
        db.execute_sql(f'ALTER TABLE "scheduled_job_type" ADD COLUMN "stopped_until" {kind}')  # type: ignore[no-untyped-call]
    db.create_tables([SchedulerInactivity], safe=True)
    # every pass's probe asks for the open stretch: an index holding only it, whatever the table's history
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "scheduler_inactivity_open" ON "scheduler_inactivity" ("id") '  # type: ignore[no-untyped-call]
        "WHERE ended_at IS NULL"
    )


def _v5(db: pw.Database) -> None:
    """The ledger by slot across jobs: ``(scheduled_for, id)``, for ``jobs history`` without a job name (and
    with ``--since``), which lists the newest slots of the whole ledger. Without it the newest 50 rows were a
    scan and a sort of every row (or of every row since T). It is what the ledger's order is (slot, then id),
    so the listing walks it from its end and stops after the rows it shows. Every row the scheduler writes
    enters it (one more B-tree insert per run; measured in the commit that added it)."""
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "scheduled_job_log_scheduled_for" ON "scheduled_job_log" '  # type: ignore[no-untyped-call]
        '("scheduled_for", "id")'
    )


def column_names(db: pw.Database, table: str) -> set[str]:
    """The names of ``table``'s columns. On PostgreSQL from ``pg_attribute`` (the table as the search path finds
    it): peewee's ``get_columns`` reads ``information_schema``, about 15 ms on a new connection, in the middle of a
    cold migrate's schema creation."""
    if isinstance(db, pw.PostgresqlDatabase):
        rows = cast(Any, db).execute_sql(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (table,))
        return {name for (name,) in rows}
    return {c.name for c in db.get_columns(table)}


#: Schema migrations in order; index + 1 is the version each one produces. Append, never edit.
MIGRATIONS: list[Callable[[pw.Database], None]] = [_v1, _v2, _v3, _v4, _v5]
SCHEMA_VERSION = len(MIGRATIONS)


# --- a new database: the final schema in one script ------------------------------------------------------

#: The schema version :data:`FRESH_SCHEMA` produces (the steps after it, if any, run as on an old database).
FRESH_VERSION = 5
_JOB_TYPE = (
    '"scheduled_job_type" ("id" {serial} NOT NULL PRIMARY KEY, "name" VARCHAR(255) NOT NULL, '
    '"app" VARCHAR(140) NOT NULL, "method" VARCHAR(255) NOT NULL, "frequency" VARCHAR(32) NOT NULL, '
    '"cron_format" VARCHAR(140) NOT NULL, "queue" VARCHAR(64) NOT NULL, "timeout" INTEGER NOT NULL, '
    '"catchup" VARCHAR(8) NOT NULL, "catchup_limit" INTEGER NOT NULL, "overlap" VARCHAR(8) NOT NULL, '
    '"stopped" {bool} NOT NULL, "stopped_note" TEXT, "stopped_by" VARCHAR(140), "stopped_at" {ts}, '
    '"stopped_until" {ts}, "removed" {bool} NOT NULL, "removed_at" {ts}, "last_execution" {ts}, '
    '"next_execution" {ts}, "created_at" {ts} NOT NULL, "modified_at" {ts} NOT NULL)'
)
_JOB_LOG = (
    '"scheduled_job_log" ("id" {bigserial} NOT NULL PRIMARY KEY, "job_id" INTEGER NOT NULL, '
    '"job_name" VARCHAR(255) NOT NULL, "scheduled_for" {ts} NOT NULL, "trigger" VARCHAR(16) NOT NULL, '
    '"status" VARCHAR(16) NOT NULL, "reason" TEXT, "slots" INTEGER NOT NULL, "first_slot" {ts}, '
    '"last_slot" {ts}, "queue" VARCHAR(64), "rq_job_id" VARCHAR(255), "enqueued_at" {ts}, "started_at" {ts}, '
    '"finished_at" {ts}, "duration" REAL, "worker" VARCHAR(255), "traceback" TEXT, "created_at" {ts} NOT NULL, '
    '"modified_at" {ts} NOT NULL, FOREIGN KEY ("job_id") REFERENCES "scheduled_job_type" ("id") ON DELETE CASCADE)'
)
_FRESH_STATEMENTS = (
    f"CREATE TABLE IF NOT EXISTS {_JOB_TYPE}",
    'CREATE UNIQUE INDEX IF NOT EXISTS "scheduled_job_type_name" ON "scheduled_job_type" ("name")',
    'CREATE INDEX IF NOT EXISTS "scheduled_job_type_next_execution" ON "scheduled_job_type" ("next_execution")',
    f"CREATE TABLE IF NOT EXISTS {_JOB_LOG}",
    'CREATE UNIQUE INDEX IF NOT EXISTS "scheduled_job_log_rq_job_id" ON "scheduled_job_log" ("rq_job_id")',
    'CREATE INDEX IF NOT EXISTS "scheduled_job_log_created_at" ON "scheduled_job_log" ("created_at")',
    'CREATE INDEX IF NOT EXISTS "scheduled_job_log_job_id_scheduled_for" ON "scheduled_job_log" '
    '("job_id", "scheduled_for")',
    'CREATE TABLE IF NOT EXISTS "scheduler_inactivity" ("id" {serial} NOT NULL PRIMARY KEY, "reason" TEXT NOT NULL, '
    '"since" {ts} NOT NULL, "ended_at" {ts})',
    'CREATE TABLE IF NOT EXISTS "scheduler_state" ("key" VARCHAR(64) NOT NULL PRIMARY KEY, "value" TEXT, '
    '"modified_at" {ts} NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "scheduled_job_log_active" ON "scheduled_job_log" ("job_id") '
    "WHERE status IN ('queued', 'started')",
    'CREATE INDEX IF NOT EXISTS "scheduled_job_log_outbox" ON "scheduled_job_log" ("id") '
    "WHERE status = 'queued' AND enqueued_at IS NULL",
    f'CREATE INDEX IF NOT EXISTS "scheduled_job_log_trouble" ON "scheduled_job_log" ("scheduled_for") WHERE {TROUBLE}',
    'CREATE INDEX IF NOT EXISTS "scheduler_inactivity_open" ON "scheduler_inactivity" ("id") WHERE ended_at IS NULL',
    'CREATE INDEX IF NOT EXISTS "scheduled_job_log_scheduled_for" ON "scheduled_job_log" ("scheduled_for", "id")',
)
_TYPES = {
    "sqlite": {"serial": "INTEGER", "bigserial": "INTEGER", "bool": "INTEGER", "ts": "DATETIME"},
    "postgres": {"serial": "SERIAL", "bigserial": "BIGSERIAL", "bool": "BOOLEAN", "ts": "TIMESTAMP"},
}
#: The statements that create schema version :data:`FRESH_VERSION` in an empty database, per dialect: what the
#: steps ``MIGRATIONS[:FRESH_VERSION]`` leave (``tests/integration/test_schema_fresh.py`` compares the two
#: catalogs on SQLite and PostgreSQL), without the indexes that a later step drops again, the second creation of
#: a table, the column read in between, and peewee building each statement from the models.
FRESH_SCHEMA = {kind: tuple(s.format(**types) if "{" in s else s for s in _FRESH_STATEMENTS)
                for kind, types in _TYPES.items()}
#: The tables of the schema: a database holding none of them is empty (:func:`create_fresh_schema`).
SCHEMA_TABLES = ("scheduled_job_type", "scheduled_job_log", "scheduler_state", "scheduler_inactivity")


def create_fresh_schema(db: pw.Database) -> None:
    """Schema version :data:`FRESH_VERSION`, and that version recorded, in a database holding none of its tables,
    inside the caller's transaction: on PostgreSQL one request (every statement and the version's row), on
    SQLite one statement after the other (no round trips to save)."""
    postgres = isinstance(db, pw.PostgresqlDatabase)
    now = utcnow()
    state = ('INSERT INTO "scheduler_state" ("key", "value", "modified_at") VALUES (%s, %s, %s)',
             ("schema_version", str(FRESH_VERSION), now))
    with cast(Any, pw).__exception_wrapper__:  # peewee's errors, as from execute_sql (the CLI reports those)
        cursor = db.cursor()  # type: ignore[no-untyped-call]
        if postgres:
            cursor.execute(";\n".join((*FRESH_SCHEMA["postgres"], cursor.mogrify(*state).decode())))
            return
        for sql in FRESH_SCHEMA["sqlite"]:
            cursor.execute(sql)
        cursor.execute(state[0].replace("%s", "?"), (*state[1][:2], str(now)))


def schema_version(db: pw.Database) -> int:
    """0 when the tables do not exist yet."""
    if not db.table_exists(SchedulerState._meta.table_name):
        return 0
    row = SchedulerState.get_or_none(SchedulerState.key == "schema_version")
    return int(row.value) if row and row.value else 0


def check_not_newer(current: int) -> None:
    """Refuse a schema that a newer hookscheduler wrote (``migrate`` and its dry run)."""
    if current > SCHEMA_VERSION:
        raise SchemaError(schema_mismatch(current))


def schema_mismatch(version: int) -> str:
    """Why a database at schema ``version`` (not :data:`SCHEMA_VERSION`) is refused, and the fix that fits: an
    outdated schema is brought up by ``migrate``; a newer one was written by a newer hookscheduler, which this
    one must not write into (``migrate`` cannot take a schema back), so this one must be upgraded."""
    if version > SCHEMA_VERSION:
        return (f"database schema version {version} is newer than this hookscheduler ({SCHEMA_VERSION}); "
                "upgrade hookscheduler on this host to the version that migrated it")
    return f"database schema is at version {version}, expected {SCHEMA_VERSION}; run `hookscheduler migrate`"


def ensure_schema(db: pw.Database) -> int:
    """Create or upgrade the tables (idempotent); returns how many steps ran. Called by ``migrate``.

    An up-to-date schema costs one read and no transaction, so a routine ``migrate`` takes no write lock.
    """
    bind(db)
    current = schema_version(db)
    check_not_newer(current)
    if current == SCHEMA_VERSION:
        return 0
    steps = 0
    with write_txn(db):
        migrate_lock(db)
        current = schema_version(db)  # again, under the lock: another migrate may have done it meanwhile
        check_not_newer(current)
        if current == 0 and FRESH_VERSION <= SCHEMA_VERSION and not set(SCHEMA_TABLES) & set(db.get_tables()):
            create_fresh_schema(db)  # a new database: the final schema at once, not every version's steps
            current = steps = FRESH_VERSION
        stepped = 0
        with batched_ddl(db):
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version - 1](db)
                stepped += 1
        if stepped:
            set_state("schema_version", str(SCHEMA_VERSION))
    return steps + stepped


#: The start of a statement that reads (its result is used): :func:`batched_ddl` runs it at once.
_READS = ("SELECT", "WITH", "SHOW", "EXPLAIN", "PRAGMA")


@contextlib.contextmanager
def batched_ddl(db: pw.Database) -> Iterator[None]:
    """Within, on PostgreSQL: the statements the schema steps send through ``db.execute_sql`` (``CREATE``,
    ``ALTER``, ``DROP``, peewee's ``create_tables``) are held and sent together, as one multi-statement
    request, just before the next statement that reads (``get_columns``: its answer must see them) and at the
    end of the block. Creating the schema of an empty database was about 20 round trips, one per DDL
    statement (a quarter of a cold 1,000-job migrate on PostgreSQL); it is now two. The steps themselves stay
    as they are (each schema version's code unchanged, an old database upgraded by the same steps); the caller's
    transaction holds them all, so a failing statement still rolls back every one. SQLite runs them one by
    one (no round trips to save, and its driver takes one statement per call)."""
    if not isinstance(db, pw.PostgresqlDatabase):
        yield
        return
    pending: list[str] = []
    cursor = db.cursor()  # type: ignore[no-untyped-call]
    execute_sql = db.execute_sql

    def flush() -> None:
        if pending:
            sql = ";\n".join(pending)
            pending.clear()
            with cast(Any, pw).__exception_wrapper__:  # peewee's errors, as from execute_sql (the CLI reports those)
                db.cursor().execute(sql)  # type: ignore[no-untyped-call]  # no parameters: no % formatting

    def held(sql: str, params: Any = None) -> Any:
        if sql.lstrip()[:8].upper().startswith(_READS):
            flush()
            return execute_sql(sql, params)  # type: ignore[no-untyped-call]
        # the statement's own parameters are bound now (psycopg2 binds on the client in any case)
        pending.append(cursor.mogrify(sql, params).decode() if params else sql)
        return None

    db.execute_sql = held  # type: ignore[method-assign]
    try:
        yield
        flush()
    finally:
        del db.execute_sql


#: Key of the PostgreSQL advisory lock that serialises migrates (an arbitrary constant: "hsmigrat").
_MIGRATE_LOCK_KEY = 0x68736D6967726174


def migrate_lock(db: pw.Database) -> None:
    """Serialise concurrent migrates of one database, inside the current write transaction.

    SQLite needs nothing (``BEGIN IMMEDIATE`` already admits one writer). On PostgreSQL two migrates would both
    see a job missing and both insert it (a unique violation), or race on ``CREATE TABLE IF NOT EXISTS``; a
    transaction-scoped advisory lock makes the second wait and then see the first one's result.
    """
    if isinstance(db, pw.PostgresqlDatabase):
        cast(Any, db).execute_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK_KEY,))


def require_schema(db: pw.Database) -> None:
    """Refuse to work on a database whose schema ``migrate`` has not brought up to date, or that a newer
    hookscheduler has already upgraded past this one's (:func:`schema_mismatch`)."""
    version = schema_version(db)
    if version != SCHEMA_VERSION:
        raise SchemaError(schema_mismatch(version))


def get_state(key: str, default: str | None = None) -> str | None:
    row = SchedulerState.get_or_none(SchedulerState.key == key)
    return row.value if row is not None else default


def set_state(key: str, value: str | None) -> None:
    (
        SchedulerState.insert(key=key, value=value, modified_at=utcnow())
        .on_conflict(
            conflict_target=[SchedulerState.key],
            update={SchedulerState.value: value, SchedulerState.modified_at: utcnow()},
        )
        .execute()
    )


def clear_state_if(key: str, value: str) -> bool:
    """Clear ``key`` only if it still holds ``value`` (a compare-and-set: a writer that replaced it meanwhile
    wins); True when it did."""
    cleared = (SchedulerState.update(value=None, modified_at=utcnow())
               .where((SchedulerState.key == key) & (SchedulerState.value == value)).execute())
    return bool(cleared)
