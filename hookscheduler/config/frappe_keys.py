"""The keys a stock Frappe bench writes into its config files, and what hookscheduler does with each.

A bench moved over from Frappe keeps its ``common_site_config.json`` (``bench init`` writes it) and its sites'
``site_config.json`` files. Refusing their keys would make every command fail; accepting a typo such as
``pause_schedular`` would let it pass unnoticed. So the keys Frappe and bench read or write are listed here,
in one of two classes, and a key in neither list is accepted as a Frappe app's own unless it is a near miss of
one of hookscheduler's keys (:func:`hookscheduler.config._bench.validate_settings`; ``doctor`` lists such keys):

* :data:`FRAPPE_IGNORED`: about the web server, the database of the Frappe site, sockets, mail, the dev tools.
  They do not touch scheduling, so they are accepted silently.
* :data:`FRAPPE_NOTED`: keys that change how *Frappe* runs background jobs but that hookscheduler does not honour.
  They are accepted, but never silently: :func:`ignored_notes` says what each would have done, and ``doctor``,
  ``migrate``, ``schedule``, ``tick``, ``start`` and ``worker`` print those notes.

Keys Frappe shares with hookscheduler and that are honoured (``redis_queue``, ``scheduler_interval``,
``scheduler_tick_interval``, ``pause_scheduler``, ``maintenance_mode``, ``disable_scheduler``, ``workers``,
``background_workers``, ``rq_username``, ``rq_password``, ``default_site``, ...) live in
:data:`hookscheduler.config._bench.KNOWN_KEYS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Frappe / bench keys with no bearing on scheduling: accepted and ignored without a word.
FRAPPE_IGNORED = frozenset({
    # bench init (bench/config/common_site_config.py) and its port allocation
    "restart_supervisor_on_update", "restart_systemd_on_update", "serve_default_site", "rebase_on_pull",
    "frappe_user", "shallow_clone", "use_redis_auth", "live_reload", "gunicorn_workers", "redis_cache",
    "redis_socketio", "webserver_port", "socketio_port", "file_watcher_port",
    # bench setup / production (bench/config/nginx.py, supervisor.py, production_setup.py)
    "dns_multitenant", "http_timeout", "ssl_certificate", "ssl_certificate_key", "nginx_port", "domains",
    "wildcard", "strict_nginx", "release_bench", "supervisor_restart_cmd", "maxmemory", "cache_maxmemory",
    "allow_rate_limiting", "webserver_max_requests", "webserver_max_requests_jitter",
    # a site's database and identity (frappe new-site; frappe/__init__.py connect, frappe/database)
    "db_name", "db_password", "db_type", "db_host", "db_port", "db_user", "db_socket", "db_ssl_ca",
    "db_ssl_cert", "db_ssl_key", "root_login", "root_password", "admin_password", "encryption_key", "host_name",
    "installed_apps", "user_type_doctype_limit", "use_mysqlclient",
    # read replicas (frappe/__init__.py connect_replica, read_only; frappe/app.py)
    "read_from_replica", "replica_host", "replica_db_port", "replica_db_name", "replica_db_user",
    "replica_db_password", "different_credentials_for_replica",
    # requests, sessions and maintenance reads (frappe/app.py, auth.py, sessions.py, rate_limiter.py)
    "rate_limit", "deny_multiple_sessions", "disable_session_cache", "disable_async",
    "allow_reads_during_maintenance", "http_port", "lang",
    # development and the web application
    "developer_mode", "allow_tests", "server_script_enabled", "disable_website_cache", "ignore_csrf",
    "allow_cors", "mute_emails", "auto_email_id", "mail_server", "mail_port", "mail_login", "mail_password",
    "use_ssl", "use_tls", "always_use_account_email_id_as_sender", "always_use_account_name_as_sender_name",
    "limits", "max_file_size", "enable_frappe_logger", "logging", "monitor", "skip_setup_wizard",
    "max_reports_per_user", "disable_global_search", "jenv",
    # backups and their off-site copies (frappe/utils/backups.py, integrations' Dropbox settings)
    "keep_backups_for_hours", "backup_path", "backup", "backup_encryption_key", "dropbox_access_key",
    "dropbox_secret_key", "dropbox_broker_site",
    # error reporting and telemetry (Sentry, PostHog)
    "sentry_dsn", "posthog_host", "posthog_project_id", "enable_telemetry",
    # the cache and realtime servers
    "redis_cache_sentinel_enabled", "redis_cache_sentinels", "redis_cache_master_name", "socketio_ping_interval",
    "socketio_ping_timeout",
})

#: Frappe keys that change how Frappe runs background work and that hookscheduler does not honour: accepted,
#: with what they would have done (printed by the commands that run jobs, and by ``doctor``).
FRAPPE_NOTED: dict[str, str] = {
    "background_process_niceness": "Frappe renices its workers; hookscheduler runs them at the niceness they "
                                   "were started with (use your supervisor's nice setting)",
    "max_queued_jobs": "Frappe refuses to enqueue past this many queued jobs; hookscheduler has no such cap",
    "use_rq_auth": "Frappe authenticates workers only when this is set; hookscheduler authenticates whenever "
                   "rq_username / rq_password are set",
    "redis_queue_sentinel_enabled": "Redis Sentinel is not supported: hookscheduler connects to redis_queue "
                                    "directly",
    "redis_queue_sentinels": "Redis Sentinel is not supported: hookscheduler connects to redis_queue directly",
    "redis_queue_master_name": "Redis Sentinel is not supported: hookscheduler connects to redis_queue directly",
    "dormant_days": "Frappe runs the jobs of a dormant site once a day only; hookscheduler always runs them on "
                    "schedule",
}

#: Every key a Frappe bench may carry that is not one of hookscheduler's own.
FRAPPE_KEYS = FRAPPE_IGNORED | frozenset(FRAPPE_NOTED)


def ignored_notes(values: Mapping[str, Any], where: str) -> list[str]:
    """One line per key of ``values`` that Frappe would honour and hookscheduler does not (truthy values only:
    ``"use_rq_auth": false`` changes nothing)."""
    return [f"{where}: {key!r} is ignored: {FRAPPE_NOTED[key]}"
            for key in sorted(values) if key in FRAPPE_NOTED and values[key]]


__all__ = ["FRAPPE_IGNORED", "FRAPPE_KEYS", "FRAPPE_NOTED", "ignored_notes"]
