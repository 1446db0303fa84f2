"""``migrate`` reaches the sites' databases while the import probe's children compile the hooks (psycopg2's
import and the connection overlap them), and still reports a refused hooks set before an unreachable
database, writing nothing either way."""

from __future__ import annotations

from typing import Any

import pytest

from hookscheduler.cli import run_cli
from hookscheduler.context import SiteContext
from hookscheduler.declare import hooks

SECRET = "s3cretPW"


def test_a_server_database_is_reached_once_the_probe_children_run(bench_factory, capsys, monkeypatch, db_kind):
    kind = db_kind
    bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}, "app2": {"daily": ["app2.tasks.ok"]}}, db=kind)
    events: list[Any] = []
    start, wait_for, existing = hooks.ImportProbe.start, hooks.ImportProbe.wait_for, SiteContext.existing_database

    def started(self: Any) -> None:
        start(self)
        events.append(("start", [lane.pid > 0 for lane in self.lanes]))

    def waited(self: Any, module: str) -> Any:
        events.append(("wait", module))
        return wait_for(self, module)

    def reached(ctx: Any) -> Any:
        events.append(("reach", ctx.name))
        return existing(ctx)

    monkeypatch.setattr(hooks.ImportProbe, "start", started)
    monkeypatch.setattr(hooks.ImportProbe, "wait_for", waited)
    monkeypatch.setattr(SiteContext, "existing_database", reached)
    assert run_cli(["migrate"]) == 0, capsys.readouterr().err
    assert events[0] == ("start", [True])  # the child forked (the two apps' hooks in one lane)...
    assert [e[1] for e in events if e[0] == "wait"] == ["app1.hooks", "app2.hooks"]
    if kind == "postgres":  # ...then the server reached, before the first verdict is awaited
        assert events[1][0] == "reach"
    else:  # a SQLite file is opened only once the hooks are checked (opening it makes its -wal and -shm files)
        assert events[-1][0] == "reach" and [e[0] for e in events].count("reach") == 1


@pytest.mark.postgres
def test_refused_hooks_are_reported_before_an_unreachable_database(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.no_such_function"]}},
                               sites={"a.site": {}, "b.site": {"db_url": f"postgresql://postgres:{SECRET}@127.0.0.1:1/x"}})
    code = run_cli(["migrate"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert "no_such_function" in err and "cannot connect" not in err and SECRET not in err
    assert not (bench / "sites" / "a.site" / "scheduler.sqlite3").exists()


def test_an_unreachable_database_is_still_one_line_and_writes_nothing(bench_factory, capsys):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}},
                               sites={"a.site": {}, "b.site": {"db_url": f"postgresql://postgres:{SECRET}@127.0.0.1:1/x"}})
    code = run_cli(["migrate"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("Error: site b.site: cannot connect to database postgresql://postgres:***@127.0.0.1:1/x")
    assert err.rstrip().endswith("; no site was migrated")
    assert len(err.strip().splitlines()) == 1 and SECRET not in err
    assert not (bench / "sites" / "a.site" / "scheduler.sqlite3").exists()
