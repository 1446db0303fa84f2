"""The bench, its sites and their config files.

A bench is a folder in Frappe's layout; everything in it is optional. Settings are merged, highest first:
command-line option, environment variable, ``site_config.json``, ``common_site_config.json``, default.
Config files are validated when read: a misspelt key (a near miss of one of hookscheduler's) or a value of the
wrong type is refused with the file and the key named, because a typo such as ``scheduler_tick_intreval``
silently ignored is exactly the kind of surprise an operator never finds. Keys of Frappe and of Frappe apps are
accepted (:mod:`.frappe_keys`; ``doctor`` lists the ones it does not know).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..exceptions import BenchError, ConfigError, shown
from ..security.redact import holds_secret
from .frappe_keys import FRAPPE_KEYS, ignored_notes
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


MAX_TTL = 10 * 365 * 86400
MAX_FAILED_JOBS = 10_000_000

#: key -> (validator, human description of the expected type)
KNOWN_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "redis_queue": (_is_url("redis", "rediss", "unix"), "a redis:// or rediss:// URL"),
    "rq_username": (_is_str, "a string"),
    "rq_password": (_is_str, "a string"),
    "db_url": (_is_url("sqlite", "postgresql", "postgres"),
               "a sqlite:///path or postgresql://user:pass@host:port/db URL"),
    "scheduler_tick_interval": (_int_upto(86400), "a whole number of seconds from 1 to 86400"),
    "scheduler_db_connections": (_int_upto(10_000), "a whole number from 1 to 10000 (PostgreSQL connections one "
                                                    "schedule process keeps open)"),
    "scheduler_claim_ahead": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 60,
                              "a number of seconds from 0 to 60 (how far ahead of a slot it may be claimed; 0: "
                              "at its time)"),
    "workers": (lambda v: isinstance(v, dict), 'an object like {"myqueue": {"timeout": 5000}}'),
    "time_zone": (_is_str, "an IANA time zone such as Europe/Berlin"),
    "pause_scheduler": (_is_bool, "true or false"),
    "maintenance_mode": (_is_bool, "true or false"),
    "disable_scheduler": (_is_bool, "true or false"),
    "log_retention_days": (_int_upto(36500), "a whole number of days from 1 to 36500"),
    "bench_id": (lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) is not None,
                 "letters, digits, _ and - (at most 64)"),
    # bounded: Redis refuses an expiry past its own range, and a job kept for centuries is a typo
    "rq_results_ttl": (_int_upto(MAX_TTL), f"a whole number of seconds from 1 to {MAX_TTL} (10 years)"),
    "rq_job_failure_ttl": (_int_upto(MAX_TTL), f"a whole number of seconds from 1 to {MAX_TTL} (10 years)"),
    "rq_failed_jobs_limit": (_int_upto(MAX_FAILED_JOBS), f"a whole number from 1 to {MAX_FAILED_JOBS}"),
    "scheduler_interval": (lambda v: _is_pos_int(v) and v % 60 == 0 and v <= 3600,
                           "a whole number of minutes in seconds (60, 120, ..., 3600): Frappe's `all` runs on "
                           "`*/<minutes> * * * *`"),
    "background_workers": (_int_upto(64), "a whole number from 1 to 64 (workers per built-in queue in `start`)"),
    "metrics_job_histograms": (_is_bool, "true or false (false: lateness and duration histograms per site only)"),
    "default_site": (lambda v: isinstance(v, str) and _is_site_name(v), "a site name (a folder under sites/)"),
}

#: Keys read from ``common_site_config.json`` only (the bench's, not a site's): key -> what it is, for the error.
#: In a site's own file such a key is merged into that site's values and then never read, so ``set-config``
#: without ``-g`` refuses it rather than report a change that changes nothing. (Every other key is honoured per
#: site: ``background_workers`` too, as ``start`` runs the most any site asks for.) Files already holding one are
#: still read, so that an existing bench keeps working; ``set-config KEY null`` removes it.
BENCH_ONLY_KEYS: dict[str, str] = {
    "default_site": "the site a command acts on when none is named",
    "bench_id": "the prefix of the whole bench's queues and job ids",
}

#: Keys Frappe benches carry that are not hookscheduler's own: accepted (see :mod:`.frappe_keys`).
IGNORED_KEYS = FRAPPE_KEYS

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

_INT_KEYS = {"scheduler_tick_interval", "scheduler_db_connections", "log_retention_days", "rq_results_ttl",
             "rq_job_failure_ttl", "rq_failed_jobs_limit"}


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


def _is_site_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name and name.isprintable()


def validate_settings(data: Mapping[str, Any], where: str) -> None:
    """Refuse misspelt keys and values of the wrong type, naming ``where`` and the key.

    A key that is neither hookscheduler's nor a known Frappe key is accepted as an app's own (Frappe apps keep
    their settings in these files and read them with ``frappe.conf.get``), unless it is a near miss of one of
    hookscheduler's keys (``pause_schedular``) or does not look like a config key at all (:func:`foreign_keys`).
    Every refused key of ``data`` is reported in the one error (each with its closest key), so that a config is
    fixed in one edit, not one run per key.
    """
    refused = [key for key in data if key not in IGNORED_KEYS and key not in KNOWN_KEYS and not _app_key(key)]
    if refused:
        raise ConfigError(f"{where}: {unknown_keys_message(refused)}")
    for key, value in data.items():
        if key not in KNOWN_KEYS:
            continue
        check, expected = KNOWN_KEYS[key]
        if not check(value):
            got = f"a {type(value).__name__}" if key in SECRET_KEYS else _json_excerpt(value)
            raise ConfigError(f"{where}: {key!r} must be {expected}, got {got}")
    if "time_zone" in data:
        load_zone(str(data["time_zone"]), f"{where}: 'time_zone'")
    if "workers" in data:
        _validate_workers(data["workers"], where)


#: What an app's own config key looks like: Frappe's keys and apps' are snake_case words.
_APP_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")


#: How alike (difflib's ratio) a key must be to one of hookscheduler's to be taken for a typo of it: a slip of a
#: letter or two (``pause_schedular`` 0.93, ``timezone`` 0.94) or a word left off (``maintenance`` 0.81) is;
#: an app's own key that merely shares a word (``max_workers`` 0.78 to ``workers``) is not, and is accepted.
NEAR_MISS = 0.8


def _near_miss(key: str) -> str | None:
    """The hookscheduler key ``key`` is a close match of (as difflib judges it), or None."""
    import difflib  # only for keys that are not in any list

    close = difflib.get_close_matches(key[:100], list(KNOWN_KEYS), n=1, cutoff=NEAR_MISS)
    return close[0] if close else None


def _app_key(key: str) -> bool:
    """A key that is not hookscheduler's nor a known Frappe key, taken as an app's own: shaped like a config key
    and not a near miss of one of hookscheduler's keys (that is a typo, refused with a did-you-mean)."""
    return _APP_KEY.fullmatch(key) is not None and _near_miss(key) is None


def foreign_keys(data: Mapping[str, Any]) -> list[str]:
    """The keys of an accepted config that are neither hookscheduler's nor known Frappe keys: an app's own,
    which hookscheduler does not read (``doctor`` lists them)."""
    return sorted(key for key in data if key not in KNOWN_KEYS and key not in IGNORED_KEYS)


def unknown_keys_message(keys: list[str]) -> str:
    """``unknown key 'x'; did you mean 'y'?`` for one key; for several, each with its hint, at most 20 named."""
    if len(keys) == 1:
        close = _near_miss(keys[0])
        return f"unknown key {shown(keys[0])}; " + (
            f"did you mean {close!r}?" if close else
            "a config key is a letter then letters, digits or underscores (at most 100); "
            f"hookscheduler's keys are {', '.join(sorted(KNOWN_KEYS))}")
    named = []
    for key in keys[:20]:
        close = _near_miss(key)
        named.append(shown(key) + (f" (did you mean {close!r}?)" if close else ""))
    more = f" and {len(keys) - 20} more" if len(keys) > 20 else ""
    return (f"{len(keys)} unknown keys: {', '.join(named)}{more}; "
            f"hookscheduler's keys are {', '.join(sorted(KNOWN_KEYS))}")


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

    def require_bench(self, doing: str, elsewhere: str = "pass --bench PATH or set $HOOKSCHEDULER_BENCH") -> None:
        """Refuse a folder without ``apps/``: ``migrate`` there would create a stray site and report success, and
        a command reading the database there would send the user to ``migrate``, which refuses it.
        ``doing``: what to do in the bench folder instead ("run migrate"); ``elsewhere``: how to name the bench
        from another folder (the CLI's options by default; the Python API has its own)."""
        if not self.apps_path.is_dir():
            raise BenchError(f"{self.path} is not a bench (it has no apps/ folder); {doing} in your bench folder, "
                             f"{elsewhere} (a bench holds apps/<app>/ and sites/)")

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
        return read_apps_txt(apps_txt)
    apps_dir = bench_path / "apps"
    if not apps_dir.is_dir():
        return []
    return sorted(p.name for p in apps_dir.iterdir() if p.name.isidentifier() and hooks_file(apps_dir, p.name))


def hooks_file(apps_dir: Path, app: str) -> Path | None:
    """Where an app's ``hooks.py`` is: ``apps/<app>/hooks.py`` (a flat package), or ``apps/<app>/<app>/hooks.py``
    (Frappe's layout: the app's repository holding its package); None when it has none."""
    for candidate in (apps_dir / app / "hooks.py", apps_dir / app / app / "hooks.py"):
        if candidate.is_file():
            return candidate
    return None


def read_apps_txt(apps_txt: Path) -> list[str]:
    """App names of an ``apps.txt``, one a line, in order, without duplicates (``#`` starts a comment)."""
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


@dataclass(frozen=True)
class Site:
    """One tenant: its own database, its own settings, sharing the bench's Redis and apps."""

    bench: Bench
    name: str
    #: the merged, validated config values (files, environment, command line); :attr:`settings` types them
    values: dict[str, Any] = field(default_factory=dict)
    #: ``site_config.json`` as :func:`load_site` read it (for :func:`config_notes`, which names the file)
    own_config: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_values(self.values)

    @property
    def path(self) -> Path:
        return self.bench.sites_path / self.name

    @cached_property
    def apps(self) -> tuple[str, ...]:
        """The site's installed apps: ``sites/<site>/apps.txt`` when it exists (in Frappe apps are installed
        per site), else the bench's list."""
        own = self.path / "apps.txt"
        return tuple(read_apps_txt(own)) if own.is_file() else self.bench.apps

    @property
    def config_path(self) -> Path:
        return self.path / "site_config.json"

    @cached_property
    def db_url(self) -> str:
        # cached (the site is immutable): the loop compares it for every site a slot releases, and building the
        # SQLite path each time cost ~20 ms of a slot shared by 1,000 sites
        url = self.settings.db_url
        return url if url else f"sqlite:///{self.path / SQLITE_FILENAME}"

    @cached_property
    def on_postgres(self) -> bool:
        """Whether the site's database is a PostgreSQL server (by its URL's scheme; nothing is opened)."""
        return self.db_url.partition(":")[0].lower() in ("postgresql", "postgres")

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


#: ``--site all``: every site of the bench, as in Frappe.
ALL_SITES = "all"


def load_site(
    bench: Bench,
    name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    names: list[str] | None = None,
) -> Site:
    """One site with its merged settings.

    ``name`` None means ``$HOOKSCHEDULER_SITE``, else the site ``bench use`` chose (``sites/currentsite.txt``),
    else ``default_site`` of ``common_site_config.json``, else the only site. ``names``: the bench's sites
    when the caller already listed them (:func:`load_sites` over 1,000 sites would list them 1,000 times).
    """
    env = os.environ if environ is None else environ
    names = bench.site_names() if names is None else names
    chosen = name or env.get("HOOKSCHEDULER_SITE") or _current_site(bench, names)
    if chosen == ALL_SITES:
        raise BenchError(f"--site all is not supported by this command; name one site ({', '.join(names)})")
    if not chosen:
        if len(names) > 1:
            raise BenchError(
                f"bench {bench.path} has several sites ({', '.join(names)}); choose one with --site NAME "
                "(or `echo NAME > sites/currentsite.txt`, as `bench use NAME` does)"
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
    return Site(bench=bench, name=chosen, values=merged, own_config=site_conf)


def _current_site(bench: Bench, names: list[str]) -> str | None:
    """The site of ``sites/currentsite.txt`` (``bench use``), else ``default_site``; checked against the sites."""
    path = bench.sites_path / "currentsite.txt"
    if path.is_file():
        try:
            current = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read ({exc}); it holds one site name") from None
        if current:
            if current not in names:
                raise BenchError(f"{path} names site {shown(current)}, which is not a site of this bench "
                                 f"({', '.join(names)}); fix the file or pass --site NAME")
            return current
    default = bench.common_config.get("default_site")
    if default:
        if default not in names:
            raise BenchError(f"{bench.sites_path / 'common_site_config.json'}: default_site {shown(default)} is "
                             f"not a site of this bench ({', '.join(names)}); fix it or pass --site NAME")
        return str(default)
    return None


def load_sites(
    bench: Bench, name: str | None = None, overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Site]:
    """The chosen site, else every site (for loops such as ``tick`` and ``schedule``); ``all``: every site."""
    env = os.environ if environ is None else environ
    chosen = name or env.get("HOOKSCHEDULER_SITE")
    if chosen and chosen != ALL_SITES:
        return [load_site(bench, chosen, overrides, env)]
    names = bench.site_names()
    return [load_site(bench, n, overrides, env, names) for n in names]


def unknown_key_notes(site: Site) -> list[str]:
    """One line per config file of the site that holds keys hookscheduler does not know (an app's own keys,
    accepted and not read), naming the file and the keys."""
    common = site.bench.sites_path / "common_site_config.json"
    out = []
    for path, values in ((common, site.bench.common_config), (site.config_path, site.own_config)):
        keys = foreign_keys(values)
        if keys:
            out.append(f"{path}: not hookscheduler's nor Frappe's, not read: {', '.join(map(shown, keys))}")
    return out


def config_notes(site: Site) -> list[str]:
    """The keys of the site's config files that Frappe would act on and hookscheduler ignores, one line each,
    naming the file: from the files as they were read when the site was loaded (not read again)."""
    common = site.bench.sites_path / "common_site_config.json"
    return [*ignored_notes(site.bench.common_config, str(common)),
            *ignored_notes(site.own_config, str(site.config_path))]


def update_site_config(site: Site, changes: Mapping[str, Any], common: bool = False) -> Path:
    """Write keys into ``site_config.json`` (or the common config) atomically: temp file + rename.

    Refused before anything is written (:class:`ConfigError`, the file untouched): what :func:`validate_settings`
    refuses, a key of :data:`BENCH_ONLY_KEYS` written into a site's own file (it would do nothing there), and a
    ``default_site`` naming no site of the bench (every command that picks the default site would then fail).

    The file keeps its mode, and a new one is owner-only (0600), except that writing a secret (``rq_password``,
    a URL with a password: :func:`~hookscheduler.security.redact.holds_secret`) makes a file that group or others
    can read owner-only: the README's ``touch`` under a umask of 022 leaves 0644, and the password would be
    readable by every user. (``doctor`` reports such a file; it is the caller's to say the mode changed.)
    """
    path = site.bench.sites_path / "common_site_config.json" if common else site.config_path
    _check_placement(site.bench, changes, path, common)
    current = read_config_file(path)
    current.update(changes)
    for k in [k for k, v in current.items() if v is None]:
        del current[k]
    validate_settings(current, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # A config may hold db_url or rq_password: keep the file's mode, make a new one owner-only, and take group and
    # others' access away when a secret is written. A unique temp file keeps two concurrent writers from
    # interleaving into one file.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    if holds_secret(dict(changes)):
        mode = (mode & 0o700) | 0o600
    import tempfile  # only a command that writes the config imports it (with shutil, random, bz2...)

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


def _check_placement(bench: Bench, changes: Mapping[str, Any], path: Path, common: bool) -> None:
    """Refuse the bench-wide keys where they mean nothing: the type checks cannot see either case.

    Only the keys being set are checked (removing one with None is always allowed, being the fix), so a stale
    ``default_site`` left by a deleted site does not block ``set-config -g`` of an unrelated key.
    """
    if not common:
        misplaced = [k for k, v in changes.items() if k in BENCH_ONLY_KEYS and v is not None]
        if misplaced:
            key = misplaced[0]
            raise ConfigError(f"{path}: {key!r} ({BENCH_ONLY_KEYS[key]}) is read only from common_site_config.json "
                              "and has no effect in a site's own file; set it for the bench with "
                              f"`hookscheduler set-config -g {key} VALUE`")
        return
    default = changes.get("default_site")
    if isinstance(default, str) and default not in (names := bench.site_names()):
        raise ConfigError(f"{path}: default_site {shown(default)} is not a site of this bench ({', '.join(names)});"
                          " name one of them (a site is a folder sites/<name>/ holding site_config.json)")
