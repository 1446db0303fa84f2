"""The ``scheduler_events`` sections and what each means: Frappe's frequency, cron string and queue.

Pure data and lookups, shared by the hooks loader (to normalise declarations) and the tick (to compute slots).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..states import CatchUp, Overlap


@dataclass(frozen=True)
class Section:
    """One ``scheduler_events`` key."""

    key: str
    frequency: str  # Frappe's title-case value, stored in scheduled_job_type.frequency
    cron: str | None  # the frequency's cron string; None for ``all`` (interval) and the cron sections
    is_cron: bool = False
    maintenance: bool = False

    @property
    def default_queue(self) -> str:
        return "long" if ("Long" in self.frequency or self.maintenance) else "default"


_SECTIONS = (
    Section("all", "All", None),
    Section("hourly", "Hourly", "0 * * * *"),
    Section("hourly_long", "Hourly Long", "0 * * * *"),
    Section("hourly_maintenance", "Hourly Maintenance", "0 * * * *", maintenance=True),
    Section("daily", "Daily", "0 0 * * *"),
    Section("daily_long", "Daily Long", "0 0 * * *"),
    Section("daily_maintenance", "Daily Maintenance", "0 0 * * *", maintenance=True),
    Section("weekly", "Weekly", "0 0 * * 0"),
    Section("weekly_long", "Weekly Long", "0 0 * * 0"),
    Section("monthly", "Monthly", "0 0 1 * *"),
    Section("monthly_long", "Monthly Long", "0 0 1 * *"),
    Section("yearly", "Yearly", "0 0 1 1 *"),
    Section("annual", "Annual", "0 0 1 1 *"),
    Section("cron", "Cron", None, is_cron=True),
    Section("cron_long", "Cron Long", None, is_cron=True),
)

SECTIONS: dict[str, Section] = {s.key: s for s in _SECTIONS}
BY_FREQUENCY: dict[str, Section] = {s.frequency: s for s in _SECTIONS}
FREQUENCIES: tuple[str, ...] = tuple(s.frequency for s in _SECTIONS)

CATCHUP_POLICIES: tuple[str, ...] = tuple(p.value for p in CatchUp)
OVERLAP_POLICIES: tuple[str, ...] = tuple(p.value for p in Overlap)


def cron_for(frequency: str, cron_format: str) -> str | None:
    """The cron string a row fires on (None for ``All``, which fires every ``scheduler_tick_interval``)."""
    section = BY_FREQUENCY[frequency]
    return cron_format if section.is_cron else section.cron


def is_maintenance(frequency: str) -> bool:
    return BY_FREQUENCY[frequency].maintenance


def event_of(frequency: str) -> str:
    """The event a frequency belongs to for ``trigger-scheduler-event`` (``Daily Long`` -> ``daily``)."""
    return frequency.split(" ")[0].lower()


def fires_within_hour(frequency: str, cron_format: str) -> bool:
    """Does the job fire more than once in some hour? ``All`` does (every ``scheduler_tick_interval``), and so
    does a cron whose minute field (or seconds field, when it has six) names more than one value: ``*/5``,
    ``0,30``, ``0-10``. Read from the cron text alone, so it costs no slot arithmetic; it decides how long a
    job's successful runs are kept in full (:mod:`hookscheduler.ops.retention`) and in Redis."""
    cron = cron_for(frequency, cron_format)
    if cron is None:
        return True
    fields = cron.split()
    many = [f for f in fields[:1] + fields[5:6] if not f.isdigit()]
    return bool(many)
