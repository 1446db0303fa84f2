"""The bench, its sites and their config files.

A bench is a folder in Frappe's layout; everything in it is optional. Settings are merged, highest first:
command-line option, environment variable, ``site_config.json``, ``common_site_config.json``, default.
Config files are validated when read: an unknown key or a value of the wrong type is refused with the file
and the key named, because a typo such as ``scheduler_tick_intreval`` silently ignored is exactly the kind
of surprise an operator never finds.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..exceptions import BenchError, ConfigError, shown
from .settings import Settings

DEFAULT_SITE = "default"
SQLITE_FILENAME = "scheduler.sqlite3"

#: Built-in queues in dequeue priority order, with their default timeouts (seconds), as in Frappe.
BUILTIN_QUEUES: dict[str, int] = {"short": 300, "default": 300, "long": 1500}


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool) or (isinstance(v, int) and v in (0, 1))


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _int_upto(limit: int) -> Callable[[Any], bool]:
    """A positive whole number no larger than ``limit`` (beyond it, timedelta or an INTEGER column overflows)."""
    return lambda v: _is_pos_int(v) and v <= limit


MAX_TIMEOUT = 2**31 - 1


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _is_url(*schemes: str) -> Callable[[Any], bool]:
    return lambda v: _is_str(v) and v.split("://", 1)[0].lower() in schemes and "://" in v


#: key -> (validator, human description of the expected type)
KNOWN_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "redis_queue": (_is_url("redis", "rediss", "unix"), "a redis:// or rediss:// URL"),
    "rq_username": (_is_str, "a string"),
    "rq_password": (_is_str, "a string"),
    "db_url": (_is_url("sqlite", "postgresql", "postgres"),
               "a sqlite:///path or postgresql://user:pass@host:port/db URL"),
    "scheduler_tick_interval": (_int_upto(86400), "a whole number of seconds from 1 to 86400"),
    "workers": (lambda v: isinstance(v, dict), 'an object like {"myqueue": {"timeout": 5000}}'),
    "time_zone": (_is_str, "an IANA time zone such as Europe/Berlin"),
    "pause_scheduler": (_is_bool, "true or false"),
    "maintenance_mode": (_is_bool, "true or false"),
    "disable_scheduler": (_is_bool, "true or false"),
    "log_retention_days": (_int_upto(36500), "a whole number of days from 1 to 36500"),
    "bench_id": (lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) is not None,
                 "letters, digits, _ and - (at most 64)"),
    "rq_results_ttl": (_is_pos_int, "a positive whole number of seconds"),
    "rq_job_failure_ttl": (_is_pos_int, "a positive whole number of seconds"),
    "rq_failed_jobs_limit": (_is_pos_int, "a positive whole number"),
}

#: Keys Frappe benches commonly carry that we accept and ignore, so an existing config can be reused.
IGNORED_KEYS = frozenset({
    "db_name", "db_password", "db_type", "db_host", "db_port", "encryption_key", "host_name",
    "developer_mode", "max_queued_jobs", "background_process_niceness", "use_rq_auth", "redis_cache",
    "redis_socketio", "socketio_port", "webserver_port", "file_watcher_port", "serve_default_site",
    "default_site", "dns_multitenant", "live_reload", "restart_supervisor_on_update",
    "restart_systemd_on_update", "frappe_user", "shallow_clone", "gunicorn_workers", "scheduler_interval",
})

#: Values never echoed in a message, even when they are of the wrong type.
SECRET_KEYS = frozenset({"rq_password"})

ENV_OVERRIDES: dict[str, str] = {
    "redis_queue": "HOOKSCHEDULER_REDIS_URL",
    "db_url": "HOOKSCHEDULER_DB_URL",
    "time_zone": "HOOKSCHEDULER_TIME_ZONE",
    "scheduler_tick_interval": "HOOKSCHEDULER_TICK_INTERVAL",
    "rq_username": "HOOKSCHEDULER_RQ_USERNAME",
    "rq_password": "HOOKSCHEDULER_RQ_PASSWORD",
    "log_retention_days": "HOOKSCHEDULER_LOG_RETENTION_DAYS",
    "bench_id": "HOOKSCHEDULER_BENCH_ID",
}

_INT_KEYS = {"scheduler_tick_interval", "log_retention_days", "rq_results_ttl", "rq_job_failure_ttl",
             "rq_failed_jobs_limit"}


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and validate one JSON config file; a missing file is an empty config."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}); fix its permissions or encoding") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix the file"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: JSON nested too deeply to be a config; fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object ({{...}}), not {type(data).__name__}")
    validate_settings(data, str(path))
    return data


def validate_settings(data: Mapping[str, Any], where: str) -> None:
    """Refuse unknown keys and values of the wrong type, naming ``where`` and the key."""
    for key, value in data.items():
        if key in IGNORED_KEYS:
            continue
        if key not in KNOWN_KEYS:
            hint = difflib.get_close_matches(key[:100], list(KNOWN_KEYS), n=1)
            raise ConfigError(
                f"{where}: unknown key {shown(key)}; "
                + (f"did you mean {hint[0]!r}?" if hint else f"known keys are {', '.join(sorted(KNOWN_KEYS))}")
            )
        check, expected = KNOWN_KEYS[key]
        if not check(value):
            got = f"a {type(value).__name__}" if key in SECRET_KEYS else _json_excerpt(value)
            raise ConfigError(f"{where}: {key!r} must be {expected}, got {got}")
    if "time_zone" in data:
        load_zone(str(data["time_zone"]), f"{where}: 'time_zone'")
    if "workers" in data:
        _validate_workers(data["workers"], where)


def _json_excerpt(value: Any) -> str:
    """At most 200 characters of ``value`` as JSON (control characters escaped, so the message stays one line)."""
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = shown(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _validate_workers(workers: Mapping[str, Any], where: str) -> None:
    for name, spec in workers.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(f"{where}: 'workers' queue name {shown(name)} must be letters, digits, '_', '.', '-'")
        if name in BUILTIN_QUEUES:
            raise ConfigError(f"{where}: 'workers' cannot redefine the built-in queue {name!r}")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: 'workers'.{name} must be an object like {{\"timeout\": 5000}}")
        for k, v in spec.items():
            if k not in ("timeout", "background_workers"):
                raise ConfigError(f"{where}: 'workers'.{name} has unknown key {k!r} (timeout, background_workers)")
            if not _is_pos_int(v) or v > MAX_TIMEOUT:
                raise ConfigError(f"{where}: 'workers'.{name}.{k} must be a whole number from 1 to {MAX_TIMEOUT}")


def load_zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {shown(name)}; use an IANA name such as Europe/Berlin") from None


def system_zone_name() -> str:
    """``$TZ``, else the zone ``/etc/localtime`` links to, else UTC.

    ``$TZ`` may name a zone file rather than a zone (``TZ=:/etc/localtime`` is a common container setting):
    such a path is read like ``/etc/localtime``, through the link to its ``zoneinfo/`` name.
    """
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and not tz.startswith("/"):
        return tz
    return _zone_of_file(tz or "/etc/localtime") or "UTC"


def _zone_of_file(path: str) -> str | None:
    try:
        target = os.path.realpath(path)
    except OSError:  # pragma: no cover - realpath does not raise on a missing file
        return None
    if "zoneinfo/" in target and os.path.isfile(target):
        return target.split("zoneinfo/", 1)[1]
    return None


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings given by environment variables, converted and validated."""
    out: dict[str, Any] = {}
    for key, var in ENV_OVERRIDES.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        if key in _INT_KEYS:
            try:
                out[key] = int(raw)
            except ValueError:
                raise ConfigError(f"${var}: must be a whole number, got {raw!r}") from None
        else:
            out[key] = raw
        validate_settings({key: out[key]}, f"${var}")
    return out


@dataclass(frozen=True)
class Bench:
    """A bench folder: apps, sites and the bench-wide config."""

    path: Path
    common_config: dict[str, Any]
    apps: tuple[str, ...]

    @property
    def apps_path(self) -> Path:
        return self.path / "apps"

    @property
    def sites_path(self) -> Path:
        return self.path / "sites"

    @cached_property
    def bench_id(self) -> str:
        """Namespaces this bench's queues and job ids in a shared Redis."""
        explicit = os.environ.get("HOOKSCHEDULER_BENCH_ID") or self.common_config.get("bench_id")
        if explicit:
            return str(explicit)
        digest = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:8]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.path.resolve().name).strip("-")[:24] or "bench"
        return f"{slug}-{digest}"

    def site_names(self) -> list[str]:
        """Every site folder holding a ``site_config.json``; ``['default']`` when there is none."""
        names = []
        if self.sites_path.is_dir():
            names = sorted(
                p.name for p in self.sites_path.iterdir() if p.is_dir() and (p / "site_config.json").is_file()
            )
        return names or [DEFAULT_SITE]


def load_bench(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Bench:
    """Find the bench: ``path``, else ``$HOOKSCHEDULER_BENCH``, else the current directory."""
    env = os.environ if environ is None else environ
    raw = path if path is not None else env.get("HOOKSCHEDULER_BENCH") or os.getcwd()
    bench_path = Path(raw).expanduser().resolve()
    if not bench_path.is_dir():
        raise BenchError(f"bench {bench_path} does not exist; pass --bench PATH or set $HOOKSCHEDULER_BENCH")
    common = read_config_file(bench_path / "sites" / "common_site_config.json")
    return Bench(path=bench_path, common_config=common, apps=tuple(_installed_apps(bench_path)))


def _installed_apps(bench_path: Path) -> list[str]:
    apps_txt = bench_path / "sites" / "apps.txt"
    if apps_txt.is_file():
        seen: list[str] = []
        try:
            text = apps_txt.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{apps_txt}: cannot be read ({exc}); it lists app names, one a line") from None
        for lineno, line in enumerate(text.splitlines(), 1):
            name = line.split("#", 1)[0].strip()
            if not name:
                continue
            if not name.isidentifier():
                raise ConfigError(f"{apps_txt}:{lineno}: {name!r} is not a valid app (package) name")
            if name not in seen:
                seen.append(name)
        return seen
    apps_dir = bench_path / "apps"
    if not apps_dir.is_dir():
        return []
    return sorted(p.name for p in apps_dir.iterdir() if (p / "hooks.py").is_file() and p.name.isidentifier())


@dataclass(frozen=True)
class Site:
    """One tenant: its own database, its own settings, sharing the bench's Redis and apps."""

    bench: Bench
    name: str
    #: the merged, validated config values (files, environment, command line); :attr:`settings` types them
    values: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_values(self.values)

    @property
    def path(self) -> Path:
        return self.bench.sites_path / self.name

    @property
    def config_path(self) -> Path:
        return self.path / "site_config.json"

    @property
    def db_url(self) -> str:
        url = self.settings.db_url
        return url if url else f"sqlite:///{self.path / SQLITE_FILENAME}"

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    @property
    def time_zone(self) -> ZoneInfo:
        name = self.settings.time_zone
        if name:
            return load_zone(name, f"site {self.name}: time_zone")
        return load_zone(system_zone_name(), f"site {self.name}: $TZ (no time_zone is configured; set one in "
                                             "common_site_config.json or fix $TZ)")

    @property
    def tick_interval(self) -> int:
        return self.settings.tick_interval

    @property
    def log_retention_days(self) -> int:
        return self.settings.log_retention_days

    @property
    def queues(self) -> dict[str, int]:
        """Queue name -> default timeout, in dequeue priority order (built-ins, then custom)."""
        out = dict(BUILTIN_QUEUES)
        for name, spec in self.settings.workers.items():
            out[name] = int(spec.get("timeout", 300))
        return out

    @property
    def inactive_reason(self) -> str | None:
        """Why the site's scheduler is inactive from config alone (see :attr:`Settings.inactive_reason`)."""
        return self.settings.inactive_reason


def load_site(
    bench: Bench,
    name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Site:
    """One site with its merged settings; ``name`` None means ``$HOOKSCHEDULER_SITE`` or the only site."""
    env = os.environ if environ is None else environ
    names = bench.site_names()
    chosen = name or env.get("HOOKSCHEDULER_SITE")
    if not chosen:
        if len(names) > 1:
            raise BenchError(
                f"bench {bench.path} has several sites ({', '.join(names)}); choose one with --site NAME"
            )
        chosen = names[0]
    if chosen not in names:
        raise BenchError(
            f"site {chosen!r} not found in {bench.sites_path}; sites: {', '.join(names)}"
            " (a site is a folder sites/<name>/ holding site_config.json)"
        )
    site_conf = read_config_file(bench.sites_path / chosen / "site_config.json")
    merged: dict[str, Any] = {}
    merged.update(bench.common_config)
    merged.update(site_conf)
    merged.update(env_settings(env))
    if overrides:
        merged.update({k: v for k, v in overrides.items() if v is not None})
    return Site(bench=bench, name=chosen, values=merged)


def load_sites(
    bench: Bench, name: str | None = None, overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Site]:
    """The chosen site, else every site (for loops such as ``tick`` and ``schedule``)."""
    env = os.environ if environ is None else environ
    chosen = name or env.get("HOOKSCHEDULER_SITE")
    if chosen:
        return [load_site(bench, chosen, overrides, env)]
    return [load_site(bench, n, overrides, env) for n in bench.site_names()]


def update_site_config(site: Site, changes: Mapping[str, Any], common: bool = False) -> Path:
    """Write keys into ``site_config.json`` (or the common config) atomically: temp file + rename."""
    path = site.bench.sites_path / "common_site_config.json" if common else site.config_path
    current = read_config_file(path)
    current.update(changes)
    for k in [k for k, v in current.items() if v is None]:
        del current[k]
    validate_settings(current, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # A config may hold db_url or rq_password: keep the file's mode, and make a new one owner-only. A unique
    # temp file keeps two concurrent writers from interleaving into one file.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(current, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
