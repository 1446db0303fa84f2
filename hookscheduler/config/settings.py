"""A site's settings, typed: each key of the config files with its type and its default, in one place.

The config files are read and validated by :mod:`._bench` (unknown keys and wrong types are refused there); a
:class:`Settings` is built from the merged values. A key that is missing takes its default here, once, instead
of ``site.get(key) or default`` at every place that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..security.redact import register_secret, register_url_secret

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TICK_INTERVAL = 60
DEFAULT_LOG_RETENTION_DAYS = 30
DEFAULT_RESULT_TTL = 600  # seconds RQ keeps a finished job
DEFAULT_FAILURE_TTL = 7 * 24 * 3600  # seconds RQ keeps a failed job
DEFAULT_FAILED_JOBS_LIMIT = 1000  # failed jobs kept per queue, as Frappe
#: PostgreSQL connections one ``schedule`` process keeps open between its sites' steps: a server's default
#: ``max_connections`` is 100, shared with the workers, the dashboard and other schedule processes.
DEFAULT_DB_CONNECTIONS = 20
#: The longest (real seconds) a ``schedule`` process claims a slot ahead of its time
#: (:mod:`hookscheduler.schedule.ahead`): the window grows with the measured cost of the passes due at a slot (many
#: sites sharing it) up to this; 0 turns claiming ahead off (every slot is then claimed at its time).
DEFAULT_CLAIM_AHEAD = 2.0


@dataclass(frozen=True)
class Settings:
    """The settings a site runs with (config file keys in the comments where the names differ)."""

    redis_url: str = DEFAULT_REDIS_URL  # redis_queue
    rq_username: str | None = None
    rq_password: str | None = None
    db_url: str | None = None  # None: the site's own SQLite file
    tick_interval: int = DEFAULT_TICK_INTERVAL  # scheduler_tick_interval
    #: PostgreSQL connections a ``schedule`` process keeps open (the least recently used are closed past it)
    db_connections: int = DEFAULT_DB_CONNECTIONS  # scheduler_db_connections
    #: the most seconds a slot is claimed (decided and committed) ahead of its time, its runs held until it
    claim_ahead: float = DEFAULT_CLAIM_AHEAD  # scheduler_claim_ahead
    #: Frappe's ``scheduler_interval``: ``all`` jobs fire on ``*/<minutes> * * * *`` (wall-clock aligned) instead
    #: of every ``tick_interval`` seconds from their creation; None: not set
    scheduler_interval: int | None = None
    #: workers ``start`` runs per built-in queue (Frappe's ``background_workers``)
    background_workers: int = 1
    time_zone: str | None = None  # None: the system's zone
    #: custom queues: name -> {"timeout": seconds, "background_workers": n}
    workers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    pause_scheduler: bool = False
    maintenance_mode: bool = False
    disable_scheduler: bool = False
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    rq_results_ttl: int = DEFAULT_RESULT_TTL
    rq_job_failure_ttl: int = DEFAULT_FAILURE_TTL
    rq_failed_jobs_limit: int = DEFAULT_FAILED_JOBS_LIMIT
    #: per-job lateness/duration histograms on /metrics (about 22 series a job); false keeps the site's only
    metrics_job_histograms: bool = True

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Settings:
        """From merged, validated config values. An empty value (``""``, 0, null) counts as not set."""
        def given(key: str, default: Any) -> Any:
            value = values.get(key)
            return value if value else default

        settings = cls(
            redis_url=str(given("redis_queue", DEFAULT_REDIS_URL)),
            rq_username=given("rq_username", None),
            rq_password=given("rq_password", None),
            db_url=given("db_url", None),
            tick_interval=int(given("scheduler_tick_interval", DEFAULT_TICK_INTERVAL)),
            db_connections=int(given("scheduler_db_connections", DEFAULT_DB_CONNECTIONS)),
            # 0 is a value here (claiming ahead off), not "not set"
            claim_ahead=float(DEFAULT_CLAIM_AHEAD if values.get("scheduler_claim_ahead") is None
                              else values["scheduler_claim_ahead"]),
            scheduler_interval=given("scheduler_interval", None),
            background_workers=int(given("background_workers", 1)),
            time_zone=given("time_zone", None),
            workers=dict(given("workers", {})),
            pause_scheduler=bool(values.get("pause_scheduler")),
            maintenance_mode=bool(values.get("maintenance_mode")),
            disable_scheduler=bool(values.get("disable_scheduler")),
            log_retention_days=int(given("log_retention_days", DEFAULT_LOG_RETENTION_DAYS)),
            rq_results_ttl=int(given("rq_results_ttl", DEFAULT_RESULT_TTL)),
            rq_job_failure_ttl=int(given("rq_job_failure_ttl", DEFAULT_FAILURE_TTL)),
            rq_failed_jobs_limit=int(given("rq_failed_jobs_limit", DEFAULT_FAILED_JOBS_LIMIT)),
            metrics_job_histograms=values.get("metrics_job_histograms") is not False,
        )
        # every password a site is configured with is redacted wherever it appears, whatever characters it holds
        register_secret(settings.rq_password)
        register_url_secret(settings.redis_url)
        register_url_secret(settings.db_url)
        return settings

    @property
    def inactive_reason(self) -> str | None:
        """Why the site's scheduler is inactive from config alone, as Frappe checks it (order matters)."""
        if self.maintenance_mode:
            return "maintenance_mode is set"
        if self.pause_scheduler:
            return "pause_scheduler is set"
        if self.disable_scheduler:
            return "disable_scheduler is set"
        return None

    @property
    def all_cron(self) -> str | None:
        """The cron string ``all`` jobs fire on when ``scheduler_interval`` is set (Frappe's
        ``*/<minutes> * * * *``); None: every ``scheduler_tick_interval`` seconds from the job's creation."""
        if not self.scheduler_interval:
            return None
        minutes = self.scheduler_interval // 60
        return "0 * * * *" if minutes >= 60 else f"*/{minutes} * * * *"

    @property
    def rq_ttls(self) -> dict[str, int]:
        """RQ's ``result_ttl`` and ``failure_ttl`` for the jobs the site sends."""
        return {"result_ttl": self.rq_results_ttl, "failure_ttl": self.rq_job_failure_ttl}


__all__ = ["DEFAULT_CLAIM_AHEAD", "DEFAULT_DB_CONNECTIONS",
           "DEFAULT_FAILED_JOBS_LIMIT", "DEFAULT_FAILURE_TTL", "DEFAULT_LOG_RETENTION_DAYS", "DEFAULT_REDIS_URL",
           "DEFAULT_RESULT_TTL", "DEFAULT_TICK_INTERVAL", "Settings"]
