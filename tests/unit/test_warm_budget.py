"""The SQLite files a worker holds open for its horses stay within a descriptor budget, least recently served
closed first; and a database that cannot be opened for want of descriptors is said to be that, not a
permissions problem."""

from __future__ import annotations

import os
import resource
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookscheduler.exceptions import ServiceUnavailable
from hookscheduler.store.database import connect, out_of_descriptors
from hookscheduler.worker import warm


@pytest.fixture
def files(tmp_path: Path) -> Iterator[list[str]]:
    paths = []
    for i in range(5):
        path = str(tmp_path / f"s{i}.sqlite3")
        sqlite3.connect(path).close()
        paths.append(path)
    warm.release_kept()
    yield paths
    warm.release_kept()


def test_past_the_budget_the_least_recently_served_file_is_closed(files):
    a, b, c, d, _ = files
    for path in (a, b, c):
        warm.keep_open(path, budget=3)
    assert all(warm.kept_open(p) for p in (a, b, c))
    warm.keep_open(a, budget=3)  # a served again: b is now the least recently served
    warm.keep_open(d, budget=3)
    assert [warm.kept_open(p) for p in (a, b, c, d)] == [True, False, True, True]


def test_the_file_just_served_is_always_held_even_with_a_budget_of_none(files):
    a, b, *_ = files
    warm.keep_open(a, budget=0)
    warm.keep_open(b, budget=0)
    assert not warm.kept_open(a) and warm.kept_open(b)


def test_the_default_budget_is_the_schedule_loops(monkeypatch):
    from hookscheduler.schedule import loop

    monkeypatch.setattr(loop.resource, "getrlimit", lambda _which: (1024, 4096))
    assert warm.kept_budget() == (1024 - loop.FD_RESERVE) // 3


def test_a_database_that_cannot_be_opened_for_want_of_descriptors_says_so(files):
    path = files[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    try:
        try:
            while True:  # every descriptor in use, then the database
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        with pytest.raises(ServiceUnavailable) as raised:
            connect(f"sqlite:///{path}")
        message = str(raised.value)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "too many open files" in message and "ulimit -n" in message and "permissions" not in message


def test_a_permission_problem_is_not_called_a_descriptor_shortage():
    exc = sqlite3.OperationalError("unable to open database file")
    assert not out_of_descriptors(exc)
    assert out_of_descriptors(OSError(24, "Too many open files"))
