"""The SELECT statements a block of library code sends to a ledger table, to explain them afterwards (tests of
which index a query can use assert on plans, never on time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def selects(db: Any, monkeypatch: pytest.MonkeyPatch,
            marker: str = '"scheduled_job_log"') -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Yield a list that collects ``(sql, params)`` of every SELECT naming ``marker`` sent on ``db`` within the
    block; the database is itself again after it (explaining a statement must not be collected)."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    real = db.execute_sql

    def spy(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if sql.startswith("SELECT") and marker in sql:
            sent.append((sql, tuple(params or ())))
        return real(sql, params, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(db, "execute_sql", spy)
        yield sent
