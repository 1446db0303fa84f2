"""``migrate`` at size: new rows go in with one ``COPY`` (PostgreSQL) or ``executemany`` (SQLite),
the plan reads plain tuples, and the loader's
per-process caches never hide a problem."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest

from hookscheduler.context import open_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.migrate import migrate_site
from hookscheduler.exceptions import HookError
from hookscheduler.store.models import ScheduledJobType

NOW = datetime(2026, 1, 7, 10, 7, 0)
N = 1017


def _events() -> dict[str, Any]:
    hourly = [{"method": "app1.tasks.ok", "name": f"h{i}"} for i in range(N // 2)]
    cron = [{"method": "app1.tasks.other", "name": f"c{i}", "overlap": "allow", "timeout": 7}
            for i in range(N - N // 2)]
    return {"hourly": hourly, "cron": {"*/6 * * * *": cron}}


def test_cold_start_of_many_jobs_in_bulk_keeps_every_default(bench_factory, db_kind):
    bench = bench_factory.make({"app1": _events()}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    specs = load_job_specs(ctx.bench, ctx.site.queues)
    migrate_site(db, ctx.name, specs, ctx.calendar, now=NOW)  # creates the schema (and rows)
    statements: list[str] = []  # every statement sent, through peewee or straight on a cursor
    original, cursor = db.execute_sql, db.cursor

    def spy(sql: str, params: Any = None) -> Any:
        statements.append(sql)
        return original(sql, params)

    def spied_cursor(*args: Any, **kwargs: Any) -> Any:
        return _Spied(cursor(*args, **kwargs), statements)

    ScheduledJobType.delete().execute()
    db.execute_sql = spy  # type: ignore[method-assign]
    db.cursor = spied_cursor  # type: ignore[method-assign]
    try:
        plan = migrate_site(db, ctx.name, specs, ctx.calendar, now=NOW)
    finally:
        del db.execute_sql, db.cursor
    assert len(plan.added) == N
    writes = [s for s in statements if re.match(r"\s*(INSERT INTO|COPY) scheduled_job_type", s, re.I)]
    # PostgreSQL: one COPY, SQLite: one executemany, each on a cursor
    assert len(writes) == 1, f"one statement, not one per job: {len(writes)}"
    rows = {r.name: r for r in ScheduledJobType.select()}
    assert len(rows) == N
    h, c = rows["h0"], rows[f"c{N - N // 2 - 1}"]
    assert (h.frequency, h.queue, h.timeout, h.catchup, h.catchup_limit, h.overlap) == (
        "Hourly", "default", 300, "once", 10, "skip")
    assert (c.frequency, c.cron_format, c.timeout, c.overlap) == ("Cron", "*/6 * * * *", 7, "allow")
    assert not any(r.stopped or r.removed or r.last_execution for r in rows.values())
    assert {r.next_execution for r in rows.values() if r.frequency == "Hourly"} == {datetime(2026, 1, 7, 11, 0)}
    assert {r.next_execution for r in rows.values() if r.frequency == "Cron"} == {datetime(2026, 1, 7, 10, 12)}
    assert {r.created_at for r in rows.values()} == {NOW}
    again = migrate_site(db, ctx.name, specs, ctx.calendar, now=NOW)
    assert len(again.unchanged) == N and not again.changes_anything


class _Spied:
    """A driver cursor whose statements (``execute``, ``executemany``, ``copy_expert``) are written down."""

    def __init__(self, real: Any, statements: list[str]) -> None:
        self._real, self._statements = real, statements

    def execute(self, sql: str, *args: Any) -> Any:
        self._statements.append(str(sql))
        return self._real.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._statements.append(str(sql))
        return self._real.executemany(sql, *args)

    def copy_expert(self, sql: str, *args: Any) -> Any:
        self._statements.append(str(sql))
        return self._real.copy_expert(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __iter__(self) -> Any:
        return iter(self._real)


def test_a_bad_cron_is_reported_for_every_app_that_uses_it(bench_factory):
    events = {"cron": {"61 * * * *": ["app1.tasks.ok"]}}
    bench = bench_factory.make({"app1": events, "app2": json.loads(json.dumps(events).replace("app1", "app2"))})
    ctx = open_site(str(bench))
    for _ in range(2):  # a second load in the same process reports it again (invalid strings are not cached)
        with pytest.raises(HookError) as err:
            load_job_specs(ctx.bench, ctx.site.queues)
        problems = [p for p in str(err.value).splitlines() if "61 * * * *" in p]
        assert len(problems) == 2 and any("app1" in p for p in problems) and any("app2" in p for p in problems)


def test_an_edited_tasks_module_is_checked_afresh(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    ctx = open_site(str(bench))
    assert [s.method for s in load_job_specs(ctx.bench, ctx.site.queues)] == ["app1.tasks.ok"]
    (bench / "apps" / "app1" / "tasks.py").write_text("def other():\n    pass\n")
    with pytest.raises(HookError, match=r"app1\.tasks\.ok"):
        load_job_specs(ctx.bench, ctx.site.queues)  # the module cached by the first load is not trusted


def test_a_migrate_that_wrote_between_the_plan_and_the_lock_is_planned_again(bench_factory, db_kind, monkeypatch):
    """The plan made from the first read stands only when the rows read again under the lock are the same: rows
    another migrate wrote meanwhile are seen (here: the job it added is unchanged, not added twice)."""
    import hookscheduler.declare.migrate as mig

    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, db=db_kind)
    ctx = open_site(str(bench))
    db = ctx.database(create=True, require_schema=False)
    specs = load_job_specs(ctx.bench, ctx.site.queues)
    mig.migrate_site(db, ctx.name, specs[:1], ctx.calendar, now=NOW)  # the schema and app1.tasks.ok
    lock = mig.migrate_lock

    def other_migrate_first(db_: Any) -> None:
        lock(db_)
        mig.insert_jobs(db_, specs[1:], lambda f, c: NOW, NOW)  # what the other migrate committed meanwhile

    monkeypatch.setattr(mig, "migrate_lock", other_migrate_first)
    plan = mig.migrate_site(db, ctx.name, specs, ctx.calendar, now=NOW)
    assert (plan.added, sorted(plan.unchanged)) == ([], ["app1.tasks.ok", "app1.tasks.other"])
    assert ScheduledJobType.select().count() == 2


def test_a_spec_s_fields_are_the_store_s_insert_columns_in_order():
    """insert_jobs slices each spec into a row: the two orders must stay the same."""
    from hookscheduler.declare.migrate import SPEC_ROW
    from hookscheduler.store.base import JOB_INSERT_COLUMNS

    assert SPEC_ROW == JOB_INSERT_COLUMNS
