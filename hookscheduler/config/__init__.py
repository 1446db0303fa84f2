"""The bench, its sites and their settings.

A bench is a folder in Frappe's layout; everything in it is optional. Settings are merged, highest first:
command-line option, environment variable, ``site_config.json``, ``common_site_config.json``, default.

* :mod:`._bench`: finding the bench and its sites, reading and validating the config files, writing them;
* :mod:`.settings`: :class:`Settings`, a site's settings typed, with their defaults.
"""

from ._bench import (
    ALL_SITES,
    BENCH_ONLY_KEYS,
    BUILTIN_QUEUES,
    DEFAULT_SITE,
    KNOWN_KEYS,
    MAX_TIMEOUT,
    Bench,
    Site,
    config_notes,
    env_settings,
    hooks_file,
    load_bench,
    load_site,
    load_sites,
    load_zone,
    read_config_file,
    system_zone_name,
    unknown_key_notes,
    update_site_config,
    validate_settings,
)
from .settings import (
    DEFAULT_FAILED_JOBS_LIMIT,
    DEFAULT_FAILURE_TTL,
    DEFAULT_LOG_RETENTION_DAYS,
    DEFAULT_REDIS_URL,
    DEFAULT_RESULT_TTL,
    DEFAULT_TICK_INTERVAL,
    Settings,
)

__all__ = [
    "ALL_SITES",
    "BENCH_ONLY_KEYS", "BUILTIN_QUEUES", "DEFAULT_FAILED_JOBS_LIMIT", "DEFAULT_FAILURE_TTL",
    "DEFAULT_LOG_RETENTION_DAYS", "DEFAULT_REDIS_URL", "DEFAULT_RESULT_TTL", "DEFAULT_SITE", "DEFAULT_TICK_INTERVAL",
    "KNOWN_KEYS", "MAX_TIMEOUT",
    "Bench", "Settings", "Site", "config_notes", "env_settings",
    "hooks_file", "load_bench", "load_site", "load_sites", "load_zone",
    "read_config_file", "system_zone_name", "unknown_key_notes", "update_site_config", "validate_settings",
]
