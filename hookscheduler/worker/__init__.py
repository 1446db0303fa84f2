"""The worker side: RQ workers for a bench, and what a work horse does around each job.

* :mod:`.process`: ``hookscheduler worker`` / ``worker-pool``: RQ's worker classes with the bench around them;
* :mod:`.runner`: the work horse: resolve the method, record the run, run it, publish events;
* :mod:`.ledger`: the run's ledger transitions ``queued -> started -> complete | failed``;
* :mod:`.marks`: the run's start mark (and refusal mark) in Redis: one delivery may start a run, ever;
* :mod:`.warm`: the warm PostgreSQL connection a worker lends to each work horse.
"""

__all__ = ["ledger", "marks", "process", "runner", "warm"]
