"""The SQLite store: one writer at a time (``BEGIN IMMEDIATE``), statements batched under its parameter limit,
timestamps as the ISO text peewee stores, and two planner hints where its planner would scan the ledger."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import peewee as pw

from ..exceptions import ConfigError
from ._sql import SqlStore, ledger_columns
from .base import JOB_INSERT_COLUMNS, LEDGER_COLUMNS, ClaimRequest, LedgerValues, chunks, stamps
from .values import BOOLEAN_WORDS, flag

#: Rows per batched statement: well under SQLite's parameter limit (32,766 since 3.32).
CHUNK = 500
#: The text form peewee writes a datetime in on SQLite; anything else in ``next_execution`` is not a time.
_SQLITE_TIME = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"
#: What ``datetime.isoformat()`` writes: safe inside a SQL literal.
_STAMP = re.compile(r"[0-9T :.+-]+")
#: ``UPDATE ... FROM`` (3.33) and ``RETURNING`` (3.35): the claim is one statement per chunk with them.
MIN_VERSION = (3, 35, 0)


class SqliteStore(SqlStore):
    """The statements on SQLite."""

    batch = 2000  # due rows per batch: one writer at a time, so a batch is one hold of the write lock
    false = "0"
    #: SQLite's unary ``+`` keeps its planner from the index of the column it prefixes (without it,
    #: ``rq_job_id IS NOT NULL`` draws it to the unique index on ``rq_job_id``, a scan of the whole ledger).
    outbox_hint = "+"
    #: SQLite would rather scan the whole ledger in id order than sort the few active rows: name the index.
    active_hint = "INDEXED BY scheduled_job_log_active "

    def __init__(self, db: pw.Database) -> None:
        if sqlite3.sqlite_version_info < MIN_VERSION:  # probed once, when the store is made
            raise ConfigError(
                f"SQLite {sqlite3.sqlite_version} is too old: hookscheduler needs "
                f"{'.'.join(map(str, MIN_VERSION))} or newer (UPDATE ... RETURNING); "
                "upgrade Python's sqlite3 or use PostgreSQL"
            )
        super().__init__(db)

    def param_dt(self, value: datetime | None) -> Any:
        # the same text form peewee stores, so equality in the claim compares like with like
        return None if value is None else value.isoformat(sep=" ")

    def membership(self, column: str, values: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
        for part in chunks(values, CHUNK):
            yield f"{column} IN ({', '.join('?' * len(part))})", list(part)

    def claim(self, requests: Sequence[ClaimRequest]) -> set[int]:
        """One ``UPDATE ... FROM (VALUES ...) RETURNING`` per :data:`CHUNK` requests."""
        won: set[int] = set()
        for part in chunks(requests, CHUNK):
            params: list[Any] = []
            for r in part:
                params += [r.id, self.param_dt(r.served), self.param_dt(r.next)]
            values = ", ".join(["(?, ?, ?)"] * len(part))
            sql = (
                "UPDATE scheduled_job_type SET next_execution = v.column3 FROM (VALUES " + values + ") AS v "
                "WHERE scheduled_job_type.id = v.column1 AND scheduled_job_type.next_execution = v.column2 "
                "RETURNING scheduled_job_type.id"
            )
            won.update(row[0] for row in self.sql(sql, params).fetchall())
        return won

    def insert_ledger_rows(self, rows: Sequence[LedgerValues]) -> None:
        """``executemany``: one prepared statement, stepped per row."""
        if not rows:
            return
        conv = [tuple(v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in r) for r in rows]
        cursor = self.db.cursor()  # type: ignore[no-untyped-call]
        cursor.executemany(
            f"INSERT INTO scheduled_job_log ({ledger_columns()}) VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})", conv
        )

    def mark_sent(self, rq_ids: Sequence[str], at: datetime | Sequence[datetime]) -> None:
        """One ``UPDATE ... FROM (VALUES (id, time), ...)`` per :data:`CHUNK` ids: each row its own stamp."""
        pairs = list(zip(rq_ids, stamps(rq_ids, at), strict=True))
        for part in chunks(pairs, CHUNK):
            params: list[Any] = []
            for rq_id, when in part:
                params += [rq_id, self.param_dt(when)]
            self.sql(
                "UPDATE scheduled_job_log SET enqueued_at = v.column2 FROM (VALUES "
                + ", ".join(["(?, ?)"] * len(part))
                + ") AS v WHERE scheduled_job_log.rq_job_id = v.column1 AND scheduled_job_log.enqueued_at IS NULL",
                params,
            )

    def insert_jobs(self, rows: Sequence[tuple[Any, ...]], now: datetime) -> None:
        """One prepared ``executemany``; the columns every new row has alike (not stopped, not removed, created
        and modified now) are literals: binding them per row cost about as much as SQLite's inserting."""
        if not rows:
            return
        stamp = now.isoformat(sep=" ")
        if not _STAMP.fullmatch(stamp):
            raise ValueError(f"unexpected timestamp text {stamp!r}")
        cols = ", ".join(JOB_INSERT_COLUMNS) + ", stopped, removed, created_at, modified_at"
        self.db.cursor().executemany(  # type: ignore[no-untyped-call]
            f"INSERT INTO scheduled_job_type ({cols}) VALUES ({', '.join('?' * len(JOB_INSERT_COLUMNS))}, 0, 0, "
            f"'{stamp}', '{stamp}')", rows)

    def integrity(self) -> str | None:
        """``PRAGMA quick_check(5)`` (``integrity_check`` would also compare indexes, at many times the cost)."""
        try:
            rows = [str(r[0]) for r in self.sql("PRAGMA quick_check(5)").fetchall()]
        except (pw.DatabaseError, sqlite3.DatabaseError) as exc:  # fetching runs outside peewee's error wrapper
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None if rows == ["ok"] else "; ".join(rows)

    def normalise_boolean_words(self) -> int:
        """SQLite keeps a word written into an integer column as text: each boolean word becomes 0 or 1."""
        changed = 0
        yes, no = _words(True), _words(False)
        for column in ("stopped", "removed"):
            changed += self.sql(
                f"UPDATE scheduled_job_type SET {column} = CASE WHEN lower(trim({column})) IN ({yes}) THEN 1 "
                f"WHEN lower(trim({column})) IN ({no}) THEN 0 ELSE {column} END "
                f"WHERE typeof({column}) = 'text' AND lower(trim({column})) IN ({yes}, {no})"
            ).rowcount
        return changed

    def clear_untimely_slots(self) -> list[tuple[str, Any]]:
        bad = self.sql(
            "SELECT name, next_execution FROM scheduled_job_type WHERE next_execution IS NOT NULL "
            f"AND NOT (typeof(next_execution) = 'text' AND next_execution GLOB '{_SQLITE_TIME}')"
        ).fetchall()
        for name, _ in bad:
            self.sql("UPDATE scheduled_job_type SET next_execution = NULL WHERE name = ?", [name])
        return [(name, value) for name, value in bad]


def _words(meaning: bool) -> str:
    return ", ".join(f"'{w}'" for w in sorted(BOOLEAN_WORDS) if flag(w) is meaning)
