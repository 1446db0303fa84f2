"""`scheduler status|pause|resume|enable|disable`, `enable-scheduler`, `disable-scheduler`, `set-config`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from hookscheduler.broker.keys import heartbeat_key, last_tick_key
from hookscheduler.context import open_site
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import ScheduledJobLog, SchedulerInactivity, utcnow
from tests.integration.opcli_support import assert_one_line_error, migrated, run, sub

APPS = {"app1": {"hourly": ["app1.tasks.ok"]}}


def _status(bench, *args):
    r = run(bench, "scheduler", "status", *args, "--format", "json")
    assert r.code == 0, r.err
    return r.json()


def test_status_shape_and_liveness(bench_factory, db_kind, redis_client):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, _ = migrated(bench, utcnow())
    assert _status(bench) == {"site": "default", "status": "enabled", "reason": None, "last_tick": None,
                              "scheduler_alive": False, "pending": 0, "failed": 0}
    text = run(bench, "scheduler", "status").out
    assert text.splitlines()[0] == "Scheduler is enabled for site default"
    assert "last tick never" in text and "NOT RUNNING" in text

    # what a live `schedule` process writes: a heartbeat (with a TTL) and the last tick of the site
    bench_id = ctx.bench.bench_id
    at = utcnow().replace(microsecond=0)
    redis_client.set(heartbeat_key(bench_id, "web1:4242"),
                     json.dumps({"host": "web1", "pid": 4242, "at": at.isoformat() + "Z", "sites": ["default"]}), ex=60)
    redis_client.set(last_tick_key(bench_id, "default"), (at - timedelta(seconds=5)).isoformat() + "Z")
    run(bench, "trigger-scheduler-event", "hourly")
    data = _status(bench)
    assert data["scheduler_alive"] is True and data["pending"] == 1
    assert data["last_tick"] == (at - timedelta(seconds=5)).isoformat() + "Z"
    verbose = run(bench, "scheduler", "status", "--verbose").out
    assert "process web1:4242" in verbose and "QUEUED" in verbose
    assert _status(bench, "--verbose")["processes"][0]["pid"] == 4242
    # a heartbeat serving other sites only does not count
    redis_client.delete(heartbeat_key(bench_id, "web1:4242"))
    redis_client.set(heartbeat_key(bench_id, "web2:1"), json.dumps({"host": "web2", "pid": 1, "sites": ["x"]}), ex=60)
    assert _status(bench)["scheduler_alive"] is False


def test_pause_resume_enable_disable(bench_factory, db_kind):
    bench = bench_factory.make(APPS, db=db_kind)
    ctx, conn = migrated(bench, datetime(2026, 1, 5, 10, 7))
    r = run(bench, "scheduler", "pause")
    assert (r.code, r.out) == (0, "Scheduler is paused for site default\n")
    conf = json.loads((bench / "sites" / "default" / "site_config.json").read_text())
    assert conf["pause_scheduler"] is True
    assert _status(bench)["status"] == "paused" and _status(bench)["reason"] == "pause_scheduler is set"
    assert run(bench, "scheduler", "status").out.startswith(
        "Scheduler is paused for site default (pause_scheduler is set)")
    ctx = open_site(str(bench))
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 11, 0, 1)).fired == 0
    ctx.database()
    assert ScheduledJobLog.select().count() == 0  # held for the catch-up on resume, not decided
    assert SchedulerInactivity.get().reason == "scheduler inactive: pause_scheduler is set"

    assert run(bench, "scheduler", "resume").out == "Scheduler is resumed for site default\n"
    assert _status(bench)["status"] == "enabled"

    r = run(bench, "scheduler", "disable", "--note", "deploy 42")
    assert r.out == "Scheduler is disabled for site default\n"
    data = _status(bench)
    assert data["status"] == "disabled" and data["reason"].startswith("scheduler disabled: deploy 42 (by ")
    ctx = open_site(str(bench))
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 12, 0, 1)).fired == 0
    # disabled wins over paused: resume alone does not make it run, and says so
    run(bench, "scheduler", "pause")
    assert _status(bench)["status"] == "disabled"
    r = run(bench, "scheduler", "resume")
    assert "note: the scheduler is still disabled: scheduler disabled: deploy 42" in r.out
    assert run(bench, "scheduler", "enable").out == "Scheduler is enabled for site default\n"
    assert _status(bench)["status"] == "enabled"
    assert run(bench, "disable-scheduler").out == "Disabled for default\n"
    assert _status(bench)["status"] == "disabled"
    assert run(bench, "enable-scheduler").out == "Enabled for default\n"
    ctx = open_site(str(bench))
    assert run_pass(ctx, conn, now=datetime(2026, 1, 5, 13, 0, 1)).fired == 1
    [run_row] = ScheduledJobLog.select()  # one catch-up for 11:00, 12:00 (held) and 13:00
    assert (run_row.trigger, run_row.slots) == ("catch-up", 3)


def test_maintenance_mode_reads_disabled(bench_factory):
    bench = bench_factory.make(APPS, sites={"s1": {"maintenance_mode": 1}})
    migrated(bench, utcnow(), site="s1")
    data = _status(bench)
    assert (data["status"], data["reason"]) == ("disabled", "maintenance_mode is set")
    assert "still disabled: maintenance_mode is set" in run(bench, "enable-scheduler").out


def test_several_sites(bench_factory):
    bench = bench_factory.make(APPS, sites={"a.example": {}, "b.example": {"pause_scheduler": True}})
    migrated(bench, utcnow(), site="a.example")
    migrated(bench, utcnow(), site="b.example")
    data = _status(bench)
    assert [(d["site"], d["status"]) for d in data] == [("a.example", "enabled"), ("b.example", "paused")]
    assert _status(bench, )[1]["reason"] == "pause_scheduler is set"
    assert run(bench, "scheduler", "status", site="a.example", ).out.startswith("Scheduler is enabled for site a.ex")
    assert run(bench, "scheduler", "status", "--format", "json", site="b.example").json()["status"] == "paused"
    assert_one_line_error(run(bench, "scheduler", "pause"), 2, "several sites", "--site")
    assert run(bench, "scheduler", "resume", site="b.example").code == 0
    assert [d["status"] for d in _status(bench)] == ["enabled", "enabled"]


def test_set_config(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    site_conf = bench / "sites" / "default" / "site_config.json"
    common = bench / "sites" / "common_site_config.json"
    r = run(bench, "set-config", "scheduler_tick_interval", "120")
    assert r.code == 0 and "scheduler_tick_interval set to 120 in" in r.out
    assert json.loads(site_conf.read_text())["scheduler_tick_interval"] == 120
    assert run(bench, "set-config", "-g", "time_zone", "Europe/Berlin").code == 0
    assert json.loads(common.read_text())["time_zone"] == "Europe/Berlin"
    assert run(bench, "set-config", "--global", "workers", '{"reports": {"timeout": 900}}').code == 0
    assert json.loads(common.read_text())["workers"] == {"reports": {"timeout": 900}}
    r = run(bench, "set-config", "--global", "rq_password", "s3cret-pw")
    assert r.code == 0 and "s3cret-pw" not in r.out and "***" in r.out
    assert run(bench, "set-config", "scheduler_tick_interval", "null").out.startswith("scheduler_tick_interval removed")
    assert "scheduler_tick_interval" not in json.loads(site_conf.read_text())
    assert_one_line_error(run(bench, "set-config", "scheduler_tick_intreval", "60"), 2, "unknown key")
    assert_one_line_error(run(bench, "set-config", "scheduler_tick_interval", "soon"), 2,
                          "scheduler_tick_interval", "whole number")
    assert_one_line_error(sub(bench, "set-config", "time_zone", "Mars/Olympus"), 2, "unknown time zone")
    assert json.loads(common.read_text())["time_zone"] == "Europe/Berlin"  # nothing written on refusal


def test_set_config_value_may_start_with_a_dash(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    site_conf = bench / "sites" / "default" / "site_config.json"
    common = bench / "sites" / "common_site_config.json"

    def files():
        return [p.read_text() if p.exists() else None for p in (site_conf, common)]

    before = files()
    # a negative number reaches the setting's own check, with or without -g, before or after it
    assert_one_line_error(run(bench, "set-config", "log_retention_days", "-1"), 2,
                          "site_config.json: 'log_retention_days' must be a whole number of days from 1", "got -1")
    assert_one_line_error(run(bench, "set-config", "log_retention_days", "-1.5", "-g"), 2,
                          "common_site_config.json: 'log_retention_days'", "got -1.5")
    assert_one_line_error(run(bench, "set-config", "--global", "log_retention_days", "-7"), 2, "got -7")
    assert_one_line_error(sub(bench, "set-config", "log_retention_days", "-1"), 2, "got -1")
    assert files() == before
    # an unknown option anywhere but VALUE's place is still refused as an option
    assert_one_line_error(run(bench, "set-config", "--nope", "log_retention_days", "7"), 2,
                          "No such option '--nope'", "set-config --help")
    assert_one_line_error(run(bench, "set-config", "log_retention_days", "7", "--nope"), 2, "No such option '--nope'")
    assert_one_line_error(run(bench, "set-config", "log_retention_days", "7", "--site", "default"), 2,
                          "--site is an option of hookscheduler itself and goes before the command")
    assert files() == before
    # the real options still work
    r = run(bench, "set-config", "log_retention_days", "7", site="default")
    assert r.code == 0 and "log_retention_days set to 7 in" in r.out
    assert json.loads(site_conf.read_text())["log_retention_days"] == 7
    assert run(bench, "set-config", "log_retention_days", "9", "-g").code == 0
    assert json.loads(common.read_text())["log_retention_days"] == 9


def test_frappes_short_flags_f_for_format_and_p_for_parse(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    r = run(bench, "scheduler", "status", "-f", "json")
    assert r.code == 0 and r.json()["status"] == "enabled"
    assert run(bench, "jobs", "list", "-f", "json").json()[0]["name"] == "app1.tasks.ok"
    site_conf = bench / "sites" / "default" / "site_config.json"
    # -p reads VALUE as Frappe's --parse does (a Python literal), JSON too
    assert run(bench, "set-config", "-p", "pause_scheduler", "True").code == 0
    assert json.loads(site_conf.read_text())["pause_scheduler"] is True
    assert run(bench, "set-config", "-g", "-p", "workers", "{'reports': {'timeout': 900}}").code == 0
    common = json.loads((bench / "sites" / "common_site_config.json").read_text())
    assert common["workers"] == {"reports": {"timeout": 900}}
    assert run(bench, "set-config", "--parse", "scheduler_tick_interval", "120").code == 0
    assert json.loads(site_conf.read_text())["scheduler_tick_interval"] == 120
    assert run(bench, "set-config", "-p", "pause_scheduler", "None").out.startswith("pause_scheduler removed")
    before = site_conf.read_bytes()
    assert_one_line_error(run(bench, "set-config", "-p", "myapp_label", "not a literal"), 2, "--parse",
                          "neither JSON nor a Python literal")
    assert_one_line_error(run(bench, "set-config", "-p", "myapp_pair", "{1, 2}"), 2, "--parse", "set")
    assert site_conf.read_bytes() == before  # nothing written on refusal
    assert run(bench, "set-config", "myapp_label", "not a literal").code == 0  # without -p: text
    assert json.loads(site_conf.read_text())["myapp_label"] == "not a literal"


def test_resume_removes_the_sites_flag_so_a_later_bench_wide_pause_applies(bench_factory):
    bench = bench_factory.make(APPS)
    migrated(bench, utcnow())
    own = bench / "sites" / "default" / "site_config.json"
    assert run(bench, "scheduler", "pause").code == 0
    assert run(bench, "scheduler", "resume").out == "Scheduler is resumed for site default\n"
    assert "pause_scheduler" not in json.loads(own.read_text())  # removed, not false
    assert run(bench, "set-config", "-g", "pause_scheduler", "1").code == 0
    assert _status(bench)["status"] == "paused"  # the bench-wide pause reaches the site
    # resumed against the bench's pause: false, said so, and the site runs while the bench stays paused
    r = run(bench, "scheduler", "resume")
    assert r.code == 0 and ("note: site default resumed although the bench is paused in common_site_config.json"
                            in r.out), r.out
    assert json.loads(own.read_text())["pause_scheduler"] is False
    assert _status(bench)["status"] == "enabled"
