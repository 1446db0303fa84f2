"""The operator library: every action and query the CLI (or a dashboard) offers, as plain functions.

* :mod:`.jobs`: list, enable / disable, skip-next, next fire times, events;
* :mod:`.manual`: ``jobs run`` and ``trigger-scheduler-event`` (through the ledger and the outbox);
* :mod:`.history`: run history and missed / skipped slots;
* :mod:`.explain`: why a job did or did not run at a moment;
* :mod:`.scheduler`: the site's scheduler: status, pause / resume, enable / disable, liveness;
* :mod:`.queues`: a site's share of the queues: counts, purge, readiness;
* :mod:`.rq_view`: RQ's jobs and workers (list, show, cancel, stop, delete);
* :mod:`.doctor`: every check at once;
* :mod:`.retention`: pruning the ledger and bounding RQ's failed registries;
* :mod:`.supervisor`: ``hookscheduler start`` (development).
"""

__all__ = ["doctor", "explain", "history", "jobs", "manual", "queues", "retention", "rq_view", "scheduler",
           "supervisor"]
