"""Bench and site config (README "The bench"): precedence, zero-config, several sites, apps.txt, and refused input.

Benches are plain folders under tmp_path; environments are passed explicitly (``environ=``) wherever the API
takes one, so the tests do not depend on the caller's environment.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hookscheduler.config import (
    DEFAULT_REDIS_URL,
    Bench,
    Site,
    config_notes,
    load_bench,
    load_site,
    load_sites,
    system_zone_name,
    unknown_key_notes,
    update_site_config,
    validate_settings,
)
from hookscheduler.exceptions import BenchError, ConfigError
from hookscheduler.store.database import connect


def make_bench(root: Path, common: Any = None, sites: dict[str, Any] | None = None,
               apps_txt: str | None = None, apps: tuple[str, ...] = ()) -> Path:
    """A bench folder; ``common``/site values that are str are written verbatim (to test malformed files)."""
    bench = root / "bench"
    (bench / "sites").mkdir(parents=True)
    (bench / "apps").mkdir()
    for app in apps:
        (bench / "apps" / app).mkdir()
        (bench / "apps" / app / "hooks.py").write_text("")
    if common is not None:
        _write(bench / "sites" / "common_site_config.json", common)
    for name, conf in (sites or {}).items():
        (bench / "sites" / name).mkdir()
        _write(bench / "sites" / name / "site_config.json", conf)
    if apps_txt is not None:
        (bench / "sites" / "apps.txt").write_text(apps_txt)
    return bench


def _write(path: Path, conf: Any) -> None:
    path.write_text(conf if isinstance(conf, str) else json.dumps(conf))


def site_of(bench: Path, name: str | None = None, overrides: dict[str, Any] | None = None,
            env: dict[str, str] | None = None) -> Site:
    return load_site(load_bench(bench, environ={}), name, overrides, environ=env or {})


# --- precedence -----------------------------------------------------------------------------------------------------

def test_precedence_cli_over_env_over_site_over_common_over_default(tmp_path):
    bench = make_bench(tmp_path, common={"redis_queue": "redis://common:6379/0", "scheduler_tick_interval": 10,
                                         "time_zone": "Asia/Tokyo", "log_retention_days": 7},
                       sites={"s1": {"redis_queue": "redis://site:6379/0", "scheduler_tick_interval": 20,
                                     "time_zone": "Europe/Berlin"}})
    env = {"HOOKSCHEDULER_REDIS_URL": "redis://env:6379/0", "HOOKSCHEDULER_TICK_INTERVAL": "30"}

    assert site_of(bench, "s1").redis_url == "redis://site:6379/0"
    assert site_of(bench, "s1", env=env).redis_url == "redis://env:6379/0"
    assert site_of(bench, "s1", {"redis_queue": "redis://cli:6379/0"}, env).redis_url == "redis://cli:6379/0"
    assert site_of(bench, "s1", {"redis_queue": None}, env).redis_url == "redis://env:6379/0"  # None: not given

    assert site_of(bench, "s1").tick_interval == 20
    assert site_of(bench, "s1", env=env).tick_interval == 30
    assert site_of(bench, "s1").time_zone.key == "Europe/Berlin"  # site over common
    assert site_of(bench, "s1").log_retention_days == 7  # common over default

    bare = make_bench(tmp_path / "bare")
    s = site_of(bare)
    assert (s.redis_url, s.tick_interval, s.log_retention_days) == (DEFAULT_REDIS_URL, 60, 30)
    assert s.inactive_reason is None


def test_every_env_override(tmp_path):
    bench = make_bench(tmp_path)
    env = {"HOOKSCHEDULER_REDIS_URL": "rediss://r:6380/1", "HOOKSCHEDULER_DB_URL": "sqlite:///x.db",
           "HOOKSCHEDULER_TIME_ZONE": "America/New_York", "HOOKSCHEDULER_TICK_INTERVAL": "15",
           "HOOKSCHEDULER_RQ_USERNAME": "u", "HOOKSCHEDULER_RQ_PASSWORD": "p",
           "HOOKSCHEDULER_LOG_RETENTION_DAYS": "3", "HOOKSCHEDULER_BENCH_ID": "mybench"}
    s = site_of(bench, env=env)
    assert (s.redis_url, s.db_url, s.time_zone.key, s.tick_interval, s.log_retention_days) == (
        "rediss://r:6380/1", "sqlite:///x.db", "America/New_York", 15, 3)
    assert (s.settings.rq_username, s.settings.rq_password, s.values["bench_id"]) == ("u", "p", "mybench")
    # empty variables count as unset
    assert site_of(bench, env=dict.fromkeys(env, "")).tick_interval == 60


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("HOOKSCHEDULER_TICK_INTERVAL", "abc", "$HOOKSCHEDULER_TICK_INTERVAL: must be a whole number, got 'abc'"),
    ("HOOKSCHEDULER_TICK_INTERVAL", "0", "$HOOKSCHEDULER_TICK_INTERVAL: 'scheduler_tick_interval' must be"),
    ("HOOKSCHEDULER_TIME_ZONE", "Mars/Base", "$HOOKSCHEDULER_TIME_ZONE: 'time_zone': unknown time zone 'Mars/Base'"),
    ("HOOKSCHEDULER_DB_URL", "mysql://x", "$HOOKSCHEDULER_DB_URL: 'db_url' must be a sqlite:///path or"),
    ("HOOKSCHEDULER_BENCH_ID", "has space", "$HOOKSCHEDULER_BENCH_ID: 'bench_id' must be letters"),
])
def test_bad_env_values_name_the_variable(tmp_path, var, value, expected):
    bench = make_bench(tmp_path)
    with pytest.raises(ConfigError) as info:
        site_of(bench, env={var: value})
    assert expected in str(info.value)
    assert info.value.exit_code == 2


def test_bench_id_env_beats_common(tmp_path, monkeypatch):
    bench = make_bench(tmp_path, common={"bench_id": "fromcommon"})
    monkeypatch.delenv("HOOKSCHEDULER_BENCH_ID", raising=False)
    assert load_bench(bench).bench_id == "fromcommon"
    monkeypatch.setenv("HOOKSCHEDULER_BENCH_ID", "fromenv")
    assert load_bench(bench).bench_id == "fromenv"


def test_bench_id_default_is_stable_and_per_path(tmp_path, monkeypatch):
    monkeypatch.delenv("HOOKSCHEDULER_BENCH_ID", raising=False)
    a = make_bench(tmp_path / "a")
    b = make_bench(tmp_path / "b")
    assert load_bench(a).bench_id == load_bench(a).bench_id != load_bench(b).bench_id
    assert load_bench(a).bench_id.startswith("bench-")


# --- finding the bench and its sites --------------------------------------------------------------------------------

def test_bench_from_argument_env_or_cwd(tmp_path, monkeypatch):
    bench = make_bench(tmp_path)
    assert load_bench(bench, environ={}).path == bench.resolve()
    assert load_bench(None, environ={"HOOKSCHEDULER_BENCH": str(bench)}).path == bench.resolve()
    monkeypatch.chdir(bench)
    assert load_bench(None, environ={}).path == bench.resolve()


def test_missing_bench_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError) as info:
        load_bench(tmp_path / "nope", environ={})
    assert str(info.value) == (f"bench {tmp_path / 'nope'} does not exist; "
                               "pass --bench PATH or set $HOOKSCHEDULER_BENCH")
    assert info.value.exit_code == 2


def test_zero_config_default_site(tmp_path):
    bench = tmp_path / "empty"
    bench.mkdir()  # no sites/, no apps/, nothing
    b = load_bench(bench, environ={})
    assert (b.site_names(), b.apps, b.common_config) == (["default"], (), {})
    site = load_site(b, environ={})
    assert site.name == "default"
    assert site.db_url == f"sqlite:///{bench.resolve()}/sites/default/scheduler.sqlite3"
    # a sites/ with only the common config and apps.txt is still zero-config
    bench2 = make_bench(tmp_path / "two", common={}, apps_txt="")
    (bench2 / "sites" / "assets").mkdir()  # a folder without site_config.json is not a site
    assert load_bench(bench2, environ={}).site_names() == ["default"]


def test_several_sites(tmp_path):
    bench = make_bench(tmp_path, common={"scheduler_tick_interval": 10},
                       sites={"b.site": {"scheduler_tick_interval": 5}, "a.site": {}})
    b = load_bench(bench, environ={})
    assert b.site_names() == ["a.site", "b.site"]
    assert [s.name for s in load_sites(b, environ={})] == ["a.site", "b.site"]
    assert [s.tick_interval for s in load_sites(b, environ={})] == [10, 5]
    assert [s.name for s in load_sites(b, "b.site", environ={})] == ["b.site"]
    assert [s.name for s in load_sites(b, environ={"HOOKSCHEDULER_SITE": "a.site"})] == ["a.site"]
    assert load_site(b, environ={"HOOKSCHEDULER_SITE": "b.site"}).name == "b.site"
    # the two sites have two databases
    assert load_site(b, "a.site", environ={}).db_url != load_site(b, "b.site", environ={}).db_url
    with pytest.raises(BenchError) as info:
        load_site(b, environ={})
    assert "has several sites (a.site, b.site); choose one with --site NAME" in str(info.value)


def test_unknown_site_is_a_clear_error(tmp_path):
    bench = make_bench(tmp_path, sites={"s1": {}})
    b = load_bench(bench, environ={})
    for call in (lambda: load_site(b, "nope", environ={}), lambda: load_sites(b, "nope", environ={})):
        with pytest.raises(BenchError) as info:
            call()
        assert str(info.value).startswith(f"site 'nope' not found in {b.sites_path}; sites: s1")
        assert info.value.exit_code == 2


# --- apps.txt -------------------------------------------------------------------------------------------------------

def test_apps_txt_order_comments_blanks_and_duplicates(tmp_path):
    bench = make_bench(tmp_path, apps_txt="# installed apps\nzeta\n\n  alpha  \nzeta\nbeta # inline comment\n",
                       apps=("alpha", "beta", "zeta", "unlisted"))
    assert load_bench(bench, environ={}).apps == ("zeta", "alpha", "beta")


def test_without_apps_txt_every_app_with_hooks_sorted(tmp_path):
    bench = make_bench(tmp_path, apps=("zeta", "alpha"))
    (bench / "apps" / "no_hooks").mkdir()
    (bench / "apps" / "not-an-identifier").mkdir()
    (bench / "apps" / "not-an-identifier" / "hooks.py").write_text("")
    assert load_bench(bench, environ={}).apps == ("alpha", "zeta")


def test_empty_apps_txt_means_no_apps(tmp_path):
    bench = make_bench(tmp_path, apps_txt="", apps=("alpha",))
    assert load_bench(bench, environ={}).apps == ()


@pytest.mark.parametrize(("content", "expected"), [
    ("good\nbad-name\n", "apps.txt:2: 'bad-name' is not a valid app (package) name"),
    ("good\nmy app\n", "apps.txt:2: 'my app' is not a valid app (package) name"),
    (b"\xff\xfe\x00", "apps.txt: cannot be read"),
])
def test_bad_apps_txt(tmp_path, content, expected):
    bench = make_bench(tmp_path)
    path = bench / "sites" / "apps.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as info:
        load_bench(bench, environ={})
    assert str(path) in str(info.value) and expected in str(info.value)


# --- refused config files -------------------------------------------------------------------------------------------

BAD_FILES = [
    ("{not json", "not valid JSON (line 1, column 2"),
    ('{"a": 1,}', "not valid JSON"),
    ("[1, 2]", "must hold a JSON object ({...}), not list"),
    ('"text"', "must hold a JSON object ({...}), not str"),
    ("null", "must hold a JSON object ({...}), not NoneType"),
    ({"scheduler_tick_intreval": 5}, "unknown key 'scheduler_tick_intreval'; did you mean 'scheduler_tick_interval'?"),
    ({"_zzz": 1}, "unknown key '_zzz'; a config key is a letter then letters, digits or underscores"),
    ({"scheduler_tick_interval": "60"}, "'scheduler_tick_interval' must be a whole number of seconds from 1 to 86400, "
                                        'got "60"'),
    ({"scheduler_tick_interval": 0}, "'scheduler_tick_interval' must be a whole number"),
    ({"scheduler_tick_interval": 1.5}, "'scheduler_tick_interval' must be a whole number"),
    ({"scheduler_tick_interval": True}, "'scheduler_tick_interval' must be a whole number"),
    ({"log_retention_days": -1}, "'log_retention_days' must be a whole number of days from 1 to 36500"),
    ({"scheduler_tick_interval": 10**20}, "must be a whole number of seconds from 1 to 86400"),
    ({"workers": {"q": {"timeout": 2**31}}}, "'workers'.q.timeout must be a whole number from 1 to 2147483647"),
    ({"redis_queue": 6379}, "'redis_queue' must be a redis:// or rediss:// URL, got 6379"),
    ({"redis_queue": "localhost:6379"}, "'redis_queue' must be a redis:// or rediss:// URL"),
    ({"db_url": ""}, "'db_url' must be a sqlite:///path or postgresql://"),
    ({"db_url": "mysql://u@h/db"}, "'db_url' must be a sqlite:///path or postgresql://"),
    ({"time_zone": "Europe/Nowhere"}, "'time_zone': unknown time zone 'Europe/Nowhere'"),
    ({"time_zone": 1}, "'time_zone' must be an IANA time zone"),
    ({"pause_scheduler": "yes"}, "'pause_scheduler' must be true or false"),
    ({"maintenance_mode": 2}, "'maintenance_mode' must be true or false"),
    ({"workers": []}, "'workers' must be an object like"),
    ({"workers": {"long": {"timeout": 5}}}, "'workers' cannot redefine the built-in queue 'long'"),
    ({"workers": {"bad name": {}}}, "'workers' queue name 'bad name' must be"),
    ({"workers": {"q": 5}}, "'workers'.q must be an object"),
    ({"workers": {"q": {"timeout": 0}}}, "'workers'.q.timeout must be a whole number from 1"),
    ({"workers": {"q": {"timeot": 5}}}, "'workers'.q has unknown key 'timeot'"),
    ({"bench_id": "a/b"}, "'bench_id' must be letters, digits"),
]


@pytest.mark.parametrize(("content", "expected"), BAD_FILES)
def test_bad_common_config_names_file_and_key(tmp_path, content, expected):
    bench = make_bench(tmp_path, common=content)
    with pytest.raises(ConfigError) as info:
        load_bench(bench, environ={})
    assert str(info.value).startswith(f"{bench.resolve() / 'sites' / 'common_site_config.json'}: ")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("content", "expected"), BAD_FILES[:8])
def test_bad_site_config_names_file_and_key(tmp_path, content, expected):
    bench = make_bench(tmp_path, sites={"s1": content, "s2": {}})
    b = load_bench(bench, environ={})
    assert load_site(b, "s2", environ={}).name == "s2"  # the other site still works alone
    with pytest.raises(ConfigError) as info:
        load_site(b, "s1", environ={})
    assert str(info.value).startswith(f"{b.sites_path / 's1' / 'site_config.json'}: ")
    assert expected in str(info.value)
    with pytest.raises(ConfigError):
        load_sites(b, environ={})  # every-site commands refuse the whole bench


def test_secret_of_the_wrong_type_is_not_echoed(tmp_path):
    bench = make_bench(tmp_path, common={"rq_password": 123456789})
    with pytest.raises(ConfigError) as info:
        load_bench(bench, environ={})
    assert "123456789" not in str(info.value)
    assert "'rq_password' must be a string, got a int" in str(info.value)


def test_unreadable_and_directory_config(tmp_path):
    bench = make_bench(tmp_path)
    (bench / "sites" / "common_site_config.json").mkdir()
    with pytest.raises(ConfigError) as info:
        load_bench(bench, environ={})
    assert "common_site_config.json: cannot be read" in str(info.value)
    bench2 = make_bench(tmp_path / "2")
    (bench2 / "sites" / "common_site_config.json").write_bytes(b'{"time_zone": "\xff"}')
    with pytest.raises(ConfigError) as info:
        load_bench(bench2, environ={})
    assert "common_site_config.json: cannot be read" in str(info.value)


def test_empty_config_files_are_empty_configs(tmp_path):
    """``touch sites/x/site_config.json`` is how one makes a site: an empty (or blank) file is ``{}``."""
    bench = make_bench(tmp_path, common="", sites={"x": "  \n"})
    b = load_bench(bench, environ={})
    assert b.common_config == {}
    assert load_site(b, environ={}).name == "x"


def test_frappe_keys_are_accepted_and_ignored(tmp_path):
    bench = make_bench(tmp_path, common={"db_host": "h", "socketio_port": 9000, "developer_mode": 1},
                       sites={"s": {"db_name": "x", "db_password": "y", "encryption_key": "z"}})
    assert site_of(bench, "s").name == "s"


def test_an_apps_own_keys_are_accepted_and_listed_a_near_miss_of_ours_is_refused(tmp_path):
    """Frappe apps keep their settings in site_config.json (``frappe.conf.get("...")``): not ours to refuse."""
    app_keys = {"erpnext_api_key": "k", "hrms_settings": {"a": 1}, "zzz": 1}
    bench = make_bench(tmp_path, common={"payments_enabled": True}, sites={"s": app_keys})
    site = site_of(bench, "s")
    assert [n.split(": ", 1)[1] for n in unknown_key_notes(site)] == [
        "not hookscheduler's nor Frappe's, not read: 'payments_enabled'",
        "not hookscheduler's nor Frappe's, not read: 'erpnext_api_key', 'hrms_settings', 'zzz'",
    ]
    assert config_notes(site) == []  # the commands that run jobs stay quiet about them
    for typo, ours in (("pause_schedular", "pause_scheduler"), ("maintenance", "maintenance_mode"),
                       ("timezone", "time_zone")):
        with pytest.raises(ConfigError, match=f"unknown key '{typo}'; did you mean '{ours}'"):
            validate_settings({typo: 1}, "f.json")
    # an app's key that only shares a word with one of ours is the app's
    validate_settings({"max_workers": 4, "worker_count": 2, "scheduler_enabled_for_reports": True}, "f.json")


# --- time zone ------------------------------------------------------------------------------------------------------

def test_time_zone_defaults_to_tz(tmp_path, monkeypatch):
    bench = make_bench(tmp_path)
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert site_of(bench).time_zone.key == "Europe/Berlin"
    monkeypatch.setenv("TZ", ":America/New_York")
    assert site_of(bench).time_zone.key == "America/New_York"
    bench2 = make_bench(tmp_path / "2", common={"time_zone": "Asia/Tokyo"})
    assert site_of(bench2).time_zone.key == "Asia/Tokyo"  # config beats $TZ


def test_tz_naming_a_zone_file(tmp_path, monkeypatch):
    zoneinfo = tmp_path / "usr" / "share" / "zoneinfo" / "Europe"
    zoneinfo.mkdir(parents=True)
    src = Path("/usr/share/zoneinfo/Europe/Berlin")
    (zoneinfo / "Berlin").write_bytes(src.read_bytes())
    link = tmp_path / "localtime"
    link.symlink_to(zoneinfo / "Berlin")
    monkeypatch.setenv("TZ", f":{link}")
    assert system_zone_name() == "Europe/Berlin"
    monkeypatch.setenv("TZ", ":/no/such/file")
    assert system_zone_name() == "UTC"


def test_without_tz_the_zone_of_etc_localtime_else_utc(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    target = os.path.realpath("/etc/localtime")
    expected = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target and os.path.isfile(target) else "UTC"
    assert system_zone_name() == expected


def test_bad_tz_is_a_clear_error_naming_tz(tmp_path, monkeypatch):
    bench = make_bench(tmp_path)
    monkeypatch.setenv("TZ", "Mars/Olympus")
    with pytest.raises(ConfigError) as info:
        _ = site_of(bench).time_zone
    assert "$TZ" in str(info.value) and "'Mars/Olympus'" in str(info.value)
    assert "set one in common_site_config.json" in str(info.value)


# --- inactive sites, queues -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("conf", "reason"), [
    ({"maintenance_mode": 1, "pause_scheduler": 1}, "maintenance_mode is set"),
    ({"pause_scheduler": True}, "pause_scheduler is set"),
    ({"disable_scheduler": 1}, "disable_scheduler is set"),
    ({"pause_scheduler": 0}, None),
])
def test_inactive_reason(tmp_path, conf, reason):
    bench = make_bench(tmp_path, sites={"s": conf})
    assert site_of(bench).inactive_reason == reason


def test_queues_in_priority_order_with_custom_timeouts(tmp_path):
    bench = make_bench(tmp_path, common={"workers": {"reports": {"timeout": 5000}, "bulk": {"background_workers": 2}}})
    assert site_of(bench).queues == {"short": 300, "default": 300, "long": 1500, "reports": 5000, "bulk": 300}


# --- writing config, SQLite file modes ------------------------------------------------------------------------------

def test_update_site_config_is_atomic_validated_and_keeps_mode(tmp_path):
    bench = make_bench(tmp_path, common={"scheduler_tick_interval": 10}, sites={"s": {"pause_scheduler": False}})
    site = site_of(bench)
    conf = bench / "sites" / "s" / "site_config.json"
    conf.chmod(0o640)
    update_site_config(site, {"pause_scheduler": True, "time_zone": "Europe/Berlin"})
    assert json.loads(conf.read_text()) == {"pause_scheduler": True, "time_zone": "Europe/Berlin"}
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    update_site_config(site, {"time_zone": None})  # None deletes the key
    assert json.loads(conf.read_text()) == {"pause_scheduler": True}
    with pytest.raises(ConfigError):
        update_site_config(site, {"scheduler_tick_interval": "x"})
    assert json.loads(conf.read_text()) == {"pause_scheduler": True}
    update_site_config(site, {"log_retention_days": 9}, common=True)
    common = bench / "sites" / "common_site_config.json"
    assert json.loads(common.read_text()) == {"scheduler_tick_interval": 10, "log_retention_days": 9}
    assert sorted(p.name for p in (bench / "sites").rglob("*tmp*")) == []


def test_update_site_config_refuses_bench_only_keys_where_they_mean_nothing(tmp_path):
    """A ``default_site`` naming no site breaks every command that picks the default site; ``default_site`` or
    ``bench_id`` in a site's own file is never read. Both are refused before anything is written."""
    bench = make_bench(tmp_path, sites={"s1": {}, "s2": {}})
    site = site_of(bench, "s1")
    common = bench / "sites" / "common_site_config.json"
    own = bench / "sites" / "s1" / "site_config.json"
    before = (common.read_bytes() if common.exists() else None, own.read_bytes())
    with pytest.raises(ConfigError, match=r"default_site 'nosuch' is not a site of this bench \(s1, s2\)"):
        update_site_config(site, {"default_site": "nosuch"}, common=True)
    for key, value in (("default_site", "s2"), ("bench_id", "b1")):
        with pytest.raises(ConfigError, match=f"set-config -g {key} VALUE"):
            update_site_config(site, {key: value})
    assert (common.read_bytes() if common.exists() else None, own.read_bytes()) == before
    update_site_config(site, {"default_site": "s2", "bench_id": "b1"}, common=True)
    assert site_of(bench).name == "s2"
    update_site_config(site, {"default_site": None, "bench_id": None})  # removing is the fix: always allowed


def test_update_site_config_creates_new_files_owner_only(tmp_path):
    bench = tmp_path / "b"
    bench.mkdir()
    site = site_of(bench)
    path = update_site_config(site, {"db_url": "postgresql://u:secret@h/db"})
    assert path == bench.resolve() / "sites" / "default" / "site_config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sqlite_file_and_folder_created_owner_only(tmp_path):
    bench = tmp_path / "b"
    bench.mkdir()
    site = site_of(bench)
    db = connect(site.db_url, base_dir=bench, create=True)
    try:
        db.execute_sql("CREATE TABLE t (x INTEGER)")  # makes SQLite write its -wal / -shm files
        folder = bench / "sites" / "default"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = sorted(folder.iterdir())
        assert files[0].name == "scheduler.sqlite3"
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        db.close()


def test_bench_is_frozen():
    assert Bench.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_config_notes_come_from_the_files_as_loaded_not_read_again(tmp_path):
    from dataclasses import replace

    from hookscheduler.config import config_notes

    bench = make_bench(tmp_path, sites={"s1": {"background_process_niceness": 10}})
    site = site_of(bench, "s1")
    (bench / "sites" / "s1" / "site_config.json").unlink()  # gone (or rewritten) after the load
    [note] = config_notes(site)
    assert "site_config.json: 'background_process_niceness' is ignored" in note
    assert config_notes(replace(site, values={**site.values, "pause_scheduler": True})) == [note]  # a switched copy
