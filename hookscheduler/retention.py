"""The built-in maintenance job, under the dotted path stored as its ``method`` and ``name``.

``hookscheduler.retention.prune_logs`` is a persisted name (a row of every site's ``scheduled_job_type``, and
what operators type in ``jobs disable``), so it stays importable here. The code lives in
:mod:`hookscheduler.ops.retention`.
"""

from __future__ import annotations

from .ops.retention import prune_logs

__all__ = ["prune_logs"]
