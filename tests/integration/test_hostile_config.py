"""Hostile config files and environment overrides through the real CLI: one line naming the file (or variable)
and the key, exit 2, and nothing changed; ``set-config`` with a bad value refuses and leaves the file's bytes
(and mode) as they were.

Decided and documented (README "The bench"): an empty or blank ``common_site_config.json`` / ``site_config.json``
is ``{}`` (``touch sites/x/site_config.json`` is how one makes a site); an empty ``sites/apps.txt`` installs no app
(so ``migrate`` marks the apps' jobs removed: history and operator flags are kept, and listing the apps again
restores them untouched); keys Frappe benches carry (``db_host``, ``socketio_port``, ...) are accepted and ignored,
and so is a Frappe app's own key; a near miss of one of hookscheduler's keys, or a key that is no identifier, is
refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.hostile_support import migrated_bench, refused, snapshot
from tests.integration.opcli_support import assert_one_line_error, run

HOOKS = {"hourly": ["app1.tasks.ok"], "daily": ["app1.tasks.other"]}


@pytest.fixture
def bench(bench_factory) -> Path:
    return migrated_bench(bench_factory.make({"app1": HOOKS}, sites={"s1": {}}))


BAD_FILES: dict[str, tuple[str | bytes, str]] = {
    # id -> (content, text the one error line must contain besides the file name)
    "not-json": ("{redis_queue: nope", "not valid JSON"),
    "trailing-comma": ('{"time_zone": "UTC",}', "not valid JSON"),
    "bom": ("\ufeff{}", "not valid JSON"),
    "not-utf8": (b'{"time_zone": "\xff\xfe"}', "cannot be read"),
    "binary": (b"\x00\x01\x02\x03", "not valid JSON"),
    "list": ('["time_zone", "UTC"]', "must hold a JSON object"),
    "string": ('"UTC"', "must hold a JSON object"),
    "number": ("60", "must hold a JSON object"),
    "null": ("null", "must hold a JSON object"),
    "deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "tick-abc": ('{"scheduler_tick_interval": "abc"}', "'scheduler_tick_interval' must be"),
    "tick-negative": ('{"scheduler_tick_interval": -1}', "'scheduler_tick_interval' must be"),
    "tick-zero": ('{"scheduler_tick_interval": 0}', "'scheduler_tick_interval' must be"),
    "tick-float": ('{"scheduler_tick_interval": 1.5}', "'scheduler_tick_interval' must be"),
    "tick-bool": ('{"scheduler_tick_interval": true}', "'scheduler_tick_interval' must be"),
    "tick-nan": ('{"scheduler_tick_interval": NaN}', "'scheduler_tick_interval' must be"),
    "tick-huge": ('{"scheduler_tick_interval": 1e400}', "'scheduler_tick_interval' must be"),
    "tick-bigint": ('{"scheduler_tick_interval": ' + "9" * 100 + "}", "'scheduler_tick_interval' must be"),
    "claim-ahead-str": ('{"scheduler_claim_ahead": "2"}', "'scheduler_claim_ahead' must be a number of seconds"),
    "claim-ahead-negative": ('{"scheduler_claim_ahead": -0.5}', "'scheduler_claim_ahead' must be"),
    "claim-ahead-over": ('{"scheduler_claim_ahead": 61}', "'scheduler_claim_ahead' must be"),
    "claim-ahead-bool": ('{"scheduler_claim_ahead": true}', "'scheduler_claim_ahead' must be"),
    "claim-ahead-nan": ('{"scheduler_claim_ahead": NaN}', "'scheduler_claim_ahead' must be"),
    "db-connections-zero": ('{"scheduler_db_connections": 0}', "'scheduler_db_connections' must be"),
    "workers-str": ('{"workers": "long"}', "'workers' must be"),
    "workers-list": ('{"workers": ["q1"]}', "'workers' must be"),
    "workers-spec-int": ('{"workers": {"q1": 5}}', "'workers'.q1 must be an object"),
    "workers-timeout-str": ('{"workers": {"q1": {"timeout": "5"}}}', "'workers'.q1.timeout"),
    "workers-unknown-key": ('{"workers": {"q1": {"timout": 5}}}', "unknown key 'timout'"),
    "workers-bad-name": ('{"workers": {"q 1; rm -rf": {}}}', "queue name"),
    "workers-builtin": ('{"workers": {"long": {"timeout": 5}}}', "built-in queue 'long'"),
    "retention-list": ('{"log_retention_days": [30]}', "'log_retention_days' must be"),
    "retention-str": ('{"log_retention_days": "30"}', "'log_retention_days' must be"),
    "zone-unknown": ('{"time_zone": "Mars/Olympus_Mons"}', "unknown time zone"),
    "zone-path": ('{"time_zone": "../../../etc/passwd"}', "unknown time zone"),
    "zone-int": ('{"time_zone": 1}', "'time_zone' must be"),
    "redis-http": ('{"redis_queue": "http://127.0.0.1:6379"}', "'redis_queue' must be"),
    "redis-empty": ('{"redis_queue": ""}', "'redis_queue' must be"),
    "db-mysql": ('{"db_url": "mysql://root@localhost/x"}', "'db_url' must be"),
    "pause-str": ('{"pause_scheduler": "yes"}', "'pause_scheduler' must be"),
    "pause-2": ('{"pause_scheduler": 2}', "'pause_scheduler' must be"),
    "bench-id-space": ('{"bench_id": "a b"}', "'bench_id' must be"),
    "unknown-key": ('{"scheduler_tick_intreval": 60}', "did you mean 'scheduler_tick_interval'"),
    "unknown-key-long": (json.dumps({"x" * 5000: 1}), "unknown key"),
    "password-wrong-type": ('{"rq_password": 12345678}', "'rq_password' must be a string, got a int"),
}


@pytest.mark.parametrize("which", ["common", "site"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_config_files_are_refused_naming_file_and_key(bench, case, which):
    content, needle = BAD_FILES[case]
    path = bench / "sites" / ("common_site_config.json" if which == "common" else "s1/site_config.json")
    # in the common config, keep the test's own Redis and bench id; the hostile part replaces the rest
    if which == "common" and isinstance(content, str) and content.startswith("{") and case not in (
            "not-json", "trailing-comma"):
        merged = {**json.loads(path.read_text()), **json.loads(content, parse_constant=lambda c: c)}
        content = json.dumps(merged).replace('"NaN"', "NaN")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for argv in (["jobs", "list"], ["migrate"], ["set-config", "pause_scheduler", "true"], ["tick"]):
        result = refused(bench, *argv)
        assert_one_line_error(result, 2, str(path), needle)
    assert len(result.err) < 1000
    if case == "password-wrong-type":
        assert "12345678" not in result.err


@pytest.mark.parametrize(("var", "value", "needle"), [
    ("HOOKSCHEDULER_TICK_INTERVAL", "abc", "must be a whole number"),
    ("HOOKSCHEDULER_TICK_INTERVAL", "-1", "scheduler_tick_interval"),
    ("HOOKSCHEDULER_TICK_INTERVAL", "0", "scheduler_tick_interval"),
    ("HOOKSCHEDULER_TICK_INTERVAL", "1e3", "must be a whole number"),
    ("HOOKSCHEDULER_TICK_INTERVAL", "99999999999999999999999", "scheduler_tick_interval"),
    ("HOOKSCHEDULER_LOG_RETENTION_DAYS", "[30]", "must be a whole number"),
    ("HOOKSCHEDULER_TIME_ZONE", "Nowhere/Special", "unknown time zone"),
    ("HOOKSCHEDULER_REDIS_URL", "http://127.0.0.1:6379/0", "redis_queue"),
    ("HOOKSCHEDULER_DB_URL", "mysql://root:hunter2@db/x", "db_url"),
    ("HOOKSCHEDULER_BENCH_ID", "a b; rm -rf /", "bench_id"),
])
def test_bad_environment_overrides_name_the_variable(bench, monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    for argv in (["jobs", "list"], ["migrate"], ["tick"]):
        result = refused(bench, *argv)
        assert_one_line_error(result, 2, f"${var}", needle)
    assert "hunter2" not in result.err


def test_empty_and_blank_config_files_are_empty_configs(bench):
    for text in ("", "  \n\t\n"):
        (bench / "sites" / "s1" / "site_config.json").write_text(text)
        assert run(bench, "jobs", "list").code == 0


def test_empty_apps_txt_installs_no_app_and_restoring_it_loses_nothing(bench):
    assert run(bench, "jobs", "disable", "--note", "keep me", "app1.tasks.ok").code == 0
    before = {r[1]: r for r in snapshot(bench, "s1")["scheduled_job_type"]}
    (bench / "sites" / "apps.txt").write_text("")
    out = run(bench, "migrate", "--format", "json")
    assert out.code == 0 and set(out.json()[0]["removed"]) == {"app1.tasks.ok", "app1.tasks.other"}
    (bench / "sites" / "apps.txt").write_text("app1\n")
    assert run(bench, "migrate").code == 0
    after = {r[1]: r for r in snapshot(bench, "s1")["scheduled_job_type"]}
    from tests.integration.test_hostile_names import _col
    for name in ("app1.tasks.ok", "app1.tasks.other"):
        assert not after[name][_col("removed")]
        for col in ("stopped", "stopped_note", "stopped_by", "created_at"):
            assert after[name][_col(col)] == before[name][_col(col)], col


@pytest.mark.parametrize(("content", "needle"), [
    ("app1\nmy-app\n", "apps.txt:2: 'my-app' is not a valid app"),
    ("app1\n../../etc\n", "apps.txt:2"),
    ("app1\n1app\n", "apps.txt:2"),
    (b"app1\n\xff\xfe\n", "apps.txt: cannot be read"),
])
def test_bad_apps_txt_is_refused(bench, content, needle):
    (bench / "sites" / "apps.txt").write_bytes(content if isinstance(content, bytes) else content.encode())
    for argv in (["migrate"], ["jobs", "list"]):
        assert_one_line_error(refused(bench, *argv), 2, needle)


def test_apps_txt_naming_a_missing_app_refuses_migrate(bench):
    (bench / "sites" / "apps.txt").write_text("app1\nghost_app\n")
    result = refused(bench, "migrate")
    assert "ghost_app: app is listed as installed but cannot be imported" in result.err


SET_CONFIG_BAD = [
    ("scheduler_tick_interval", "abc"), ("scheduler_tick_interval", "-1"), ("scheduler_tick_interval", "0"),
    ("scheduler_tick_interval", "1.5"), ("scheduler_tick_interval", "true"), ("scheduler_tick_interval", "[60]"),
    ("workers", "[]"), ("workers", '{"q1": 5}'), ("workers", '{"long": {"timeout": 1}}'),
    ("log_retention_days", "[1]"), ("log_retention_days", '"30"'), ("time_zone", "Mars/Olympus"),
    ("time_zone", "123"), ("redis_queue", "http://x"), ("db_url", "mysql://x"), ("pause_scheduler", "maybe"),
    ("bench_id", "a b"), ("pause_schedular", "1"), ("rq_password", "123"), ("rq_password", '{"a": 1}'),
    ("scheduler_claim_ahead", "-1"), ("scheduler_claim_ahead", "60.5"), ("scheduler_claim_ahead", "soon"),
    ("scheduler_claim_ahead", "Infinity"), ("scheduler_db_connections", "10001"),
]


@pytest.mark.parametrize("common", [False, True])
@pytest.mark.parametrize(("key", "value"), SET_CONFIG_BAD)
def test_set_config_with_a_bad_value_refuses_and_leaves_the_file(bench, key, value, common):
    path = bench / "sites" / ("common_site_config.json" if common else "s1/site_config.json")
    path.write_text(json.dumps({**json.loads(path.read_text() or "{}"), "rq_results_ttl": 600}))
    os.chmod(path, 0o640)
    mode = path.stat().st_mode
    result = refused(bench, "set-config", *(["-g"] if common else []), "--", key, value)
    assert_one_line_error(result, 2, str(path), key)
    assert path.stat().st_mode == mode
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
    if key == "rq_password":  # the value is not echoed (the path may hold the same digits: pytest-123)
        assert value not in result.err.replace(str(path), "")


def test_set_config_refuses_a_default_site_that_is_no_site_and_leaves_the_file(bench):
    """Written, it made every command that picks the default site fail; refused, the bench keeps working."""
    path = bench / "sites" / "common_site_config.json"
    result = refused(bench, "set-config", "-g", "default_site", "nosuch")  # refused() checks the files' bytes
    assert_one_line_error(result, 2, str(path), "default_site 'nosuch' is not a site of this bench (s1)")
    assert run(bench, "jobs", "list").code == 0
    assert run(bench, "set-config", "-g", "default_site", "s1").code == 0
    assert json.loads(path.read_text())["default_site"] == "s1"
    assert run(bench, "set-config", "-g", "default_site", "null").code == 0  # removing it is always allowed
    assert "default_site" not in json.loads(path.read_text() or "{}")


@pytest.mark.parametrize(("key", "value"), [("default_site", "s1"), ("bench_id", "mybench")])
def test_set_config_refuses_a_bench_only_key_in_a_sites_own_file(bench, key, value):
    """There it would be merged into the site's values and never read: a change reported that changes nothing."""
    path = bench / "sites" / "s1" / "site_config.json"
    for site in (None, "s1"):
        result = refused(bench, "set-config", key, value, site=site)  # refused() checks the files' bytes
        assert_one_line_error(result, 2, str(path), f"{key!r}", f"set-config -g {key} VALUE")
    assert run(bench, "set-config", key, "null").code == 0  # removing a stray one from a site's file is allowed
    assert run(bench, "set-config", "-g", key, value).code == 0


def test_set_config_on_an_invalid_file_refuses_without_rewriting_it(bench):
    path = bench / "sites" / "s1" / "site_config.json"
    path.write_text('{"scheduler_tick_interval": "abc", "comment": "hand-written"}')
    result = refused(bench, "set-config", "pause_scheduler", "true")
    assert str(path) in result.err


def test_set_config_good_values_round_trip_and_keep_the_mode(bench):
    path = bench / "sites" / "s1" / "site_config.json"
    os.chmod(path, 0o640)
    assert run(bench, "set-config", "scheduler_tick_interval", "30").code == 0
    assert run(bench, "set-config", "time_zone", "Europe/Berlin").code == 0
    assert run(bench, "set-config", "workers", '{"q1": {"timeout": 900}}').code == 0
    data = json.loads(path.read_text())
    assert data == {"scheduler_tick_interval": 30, "time_zone": "Europe/Berlin", "workers": {"q1": {"timeout": 900}}}
    assert path.stat().st_mode & 0o777 == 0o640
    assert run(bench, "set-config", "time_zone", "null").code == 0
    assert "time_zone" not in json.loads(path.read_text())


def test_scheduler_claim_ahead_takes_fractions_and_zero_is_off_not_unset(bench):
    """0 is a value of its own (claiming ahead off), not "not set" (which is the default, 2 s)."""
    from hookscheduler.config.settings import DEFAULT_CLAIM_AHEAD, Settings

    path = bench / "sites" / "s1" / "site_config.json"
    for raw, seconds in (("0.5", 0.5), ("0", 0.0), ("60", 60.0)):
        assert run(bench, "set-config", "scheduler_claim_ahead", raw).code == 0
        assert json.loads(path.read_text())["scheduler_claim_ahead"] == seconds
        assert Settings.from_values(json.loads(path.read_text())).claim_ahead == seconds
    assert Settings.from_values({}).claim_ahead == DEFAULT_CLAIM_AHEAD == 2.0


def test_set_config_creates_a_missing_config_owner_only_whatever_the_umask(bench):
    common = bench / "sites" / "common_site_config.json"
    common.unlink()
    old_umask = os.umask(0o022)
    try:
        result = run(bench, "set-config", "-g", "rq_password", "topsecret-pw", site="s1")
    finally:
        os.umask(old_umask)
    assert result.code == 0, result.err
    assert "topsecret-pw" not in result.out + result.err and "***" in result.out
    assert common.stat().st_mode & 0o777 == 0o600
    assert json.loads(common.read_text()) == {"rq_password": "topsecret-pw"}


def test_set_config_with_a_deeply_nested_value_is_refused(bench):
    deep = "[" * 50_000 + "]" * 50_000
    for argv in (["set-config", "workers", deep], ["set-config", "-g", "workers", deep]):
        assert_one_line_error(refused(bench, *argv), 2, "nested too deeply")


@pytest.mark.parametrize("site", ["../..", "s1/../s1", "nope", "s1\n", "*", "default"])
def test_hostile_site_names_are_not_found(bench, site):
    assert_one_line_error(refused(bench, "--site", site, "jobs", "list"), 2, "not found")


def test_an_empty_site_option_is_no_site_option(bench):
    """``--site "$SITE"`` with SITE unset: as if --site were not given (the only site here; with several sites,
    commands that need one refuse with "choose one with --site")."""
    assert run(bench, "--site", "", "jobs", "list").code == 0


def test_hostile_bench_paths_are_refused(bench, tmp_path):
    for path in (str(tmp_path / "no such bench"), "/dev/null"):
        result = run(bench, "--bench", path, "jobs", "list")
        assert_one_line_error(result, 2, "does not exist")
