"""Declared jobs: reading the apps' ``scheduler_events`` and syncing them into ``scheduled_job_type``.

* :mod:`.hooks`: every app's hooks as validated :class:`~.hooks.JobSpec` s (all problems listed at once);
* :mod:`.builtin`: hookscheduler's own jobs (the daily log pruning);
* :mod:`.migrate`: the plan (added / updated / removed) and its application, with column ownership.
"""

__all__ = ["builtin", "hooks", "migrate"]
