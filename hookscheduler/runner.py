"""The functions RQ calls, under the dotted paths written into every job hash.

``hookscheduler.runner.run_scheduled_job`` (a scheduled, manual or event run), ``...execute_job`` (a background
job) and ``...run_doc_method`` (``enqueue_doc``) are persisted names: jobs already in Redis carry them, so they
stay importable here whatever the package layout. The code lives in :mod:`hookscheduler.worker.runner`.
"""

from __future__ import annotations

from .worker.runner import execute_job, run_doc_method, run_scheduled_job

__all__ = ["execute_job", "run_doc_method", "run_scheduled_job"]
