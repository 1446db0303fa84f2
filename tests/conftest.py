"""Shared fixtures: real Redis, real PostgreSQL, real SQLite, and throw-away benches.

Isolation: every test gets its own bench folder, its own ``bench_id`` (so its RQ queues and job ids live under
their own prefix in Redis, deleted afterwards) and, on PostgreSQL, its own schema in a database created for
the test session and dropped at the end. PostgreSQL tests never skip: if the server is down, they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import BenchFactory, own_pg_database, redis_cleanup

REDIS_URL = os.environ.get("HOOKSCHEDULER_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
PG_DSN = os.environ.get("HOOKSCHEDULER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.ping()  # fail loudly, never skip: CI starts Redis
    return client


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of our own for this session (dropped at the end); yields its base URL."""
    with own_pg_database(PG_DSN, f"hs_test_{os.getpid()}_") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    """Parametrize a test over both databases."""
    return str(request.param)


@pytest.fixture
def bench_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_client: redis.Redis,
                  request: pytest.FixtureRequest) -> Iterator[BenchFactory]:
    """Builds benches under tmp_path; PostgreSQL schemas and Redis keys are cleaned up afterwards."""
    pg_base = request.getfixturevalue("pg_database") if _wants_pg(request) else None
    factory = BenchFactory(tmp_path, monkeypatch, redis_url, pg_base)
    try:
        yield factory
    finally:
        factory.close()
        for bench_id in factory.bench_ids:
            redis_cleanup(redis_client, bench_id)


def _wants_pg(request: pytest.FixtureRequest) -> bool:
    return "db_kind" in request.fixturenames or request.node.get_closest_marker("postgres") is not None


@pytest.fixture
def fresh_api() -> Iterator[None]:
    """``hookscheduler.init()`` before and after: a test of the public API never sees the bench or site that a
    previous test chose (the API remembers them per process)."""
    import hookscheduler

    hookscheduler.init()
    yield
    hookscheduler.init()
