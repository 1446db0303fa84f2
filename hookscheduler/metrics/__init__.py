"""Prometheus metrics: counters derived from the ledger (kept monotonic in Redis), live gauges, alert rules.

``hookscheduler metrics --port N`` serves them alone; the dashboard serves them at ``/metrics``. The design
(why the ledger, why Redis, the reset semantic) is in :mod:`.ledger_counts` and ``docs/metrics.md``.
Needs the ``prometheus_client`` package (``pip install 'hookscheduler[web]'``).
"""

from __future__ import annotations

from pathlib import Path

#: The alert rules file shipped with the package.
ALERT_RULES = Path(__file__).with_name("alerts.yml")

__all__ = ["ALERT_RULES"]
