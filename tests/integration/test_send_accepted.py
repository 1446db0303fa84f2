"""The ledger's ``enqueued_at`` is the moment Redis accepted the run (its ``TIME`` in the send's pipeline),
not a time taken before the pipeline was sent or after its reply came back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import peewee as pw
import pytest

from hookscheduler.schedule import send
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store import postgres as pgstore
from hookscheduler.store.models import ScheduledJobLog
from tests.integration.opcli_support import migrated

T0 = datetime(2026, 1, 5, 9, 59, 30)


def _redis_now(conn) -> datetime:
    sec, usec = conn.time()
    return datetime.fromtimestamp(sec, timezone.utc).replace(tzinfo=None, microsecond=usec)


def test_accepted_at_is_the_server_time_kept_inside_the_local_window() -> None:
    before, after = datetime(2026, 1, 5, 10, 0, 0), datetime(2026, 1, 5, 10, 0, 1)
    inside = (int(before.replace(tzinfo=timezone.utc).timestamp()), 250_000)
    assert send.accepted_at(inside, before, after) == datetime(2026, 1, 5, 10, 0, 0, 250_000)
    assert send.accepted_at((inside[0] - 3600, 0), before, after) == before  # a Redis clock an hour behind
    assert send.accepted_at((inside[0] + 3600, 0), before, after) == after  # ... or ahead


def test_the_ledger_stamps_runs_with_the_time_redis_accepted_them(bench_factory, db_kind, monkeypatch):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, db=db_kind)
    ctx, conn = migrated(bench, T0)
    commands: list[list[str]] = []
    execute = send.redis.client.Pipeline.execute

    def spy(self, *args, **kwargs):
        commands.append([str(c[0][0]) for c in self.command_stack])
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(send.redis.client.Pipeline, "execute", spy)
    # the job's slot is 10:00: the pass runs "at" 10:00:01 while the server's clock says today
    lo = _redis_now(conn)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 0, 1)).fired == 1
    hi = _redis_now(conn)
    assert any(cmds and cmds[-1] == "TIME" for cmds in commands), commands
    ctx.database()
    row = ScheduledJobLog.get()
    assert lo - timedelta(milliseconds=1) <= row.enqueued_at <= hi + timedelta(milliseconds=1)


@pytest.mark.postgres
def test_a_session_that_lost_its_prepared_statements_falls_back_to_plain_ones(bench_factory, monkeypatch, caplog):
    """A pooler in transaction mode hands a transaction another server connection, where the pass's prepared
    statements do not exist: that pass fails (the loop retries it), later ones use plain statements."""
    monkeypatch.setattr(pgstore, "_POOLED", [])
    bench = bench_factory.make({"app1": {"hourly": [{"method": "app1.tasks.ok", "overlap": "allow"}]}},
                               db="postgres")
    ctx, conn = migrated(bench, T0)
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 10, 0, 1)).fired == 1  # prepared, and used
    ctx.database().execute_sql("DEALLOCATE ALL")  # as a different server connection would be
    with pytest.raises((pw.ProgrammingError, pw.OperationalError)):
        run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1))
    assert pgstore._POOLED and "plain statements from now on" in caplog.text
    ctx.close()
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 1
    ctx.database().execute_sql("DEALLOCATE ALL")
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1)).fired == 1
