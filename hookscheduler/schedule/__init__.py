"""The scheduler: from due rows to runs in RQ, exactly once per slot.

* :mod:`.decide`: what to do with one due row (fire, catch up, miss, skip), pure;
* :mod:`.claim`: the pass (probe, select due rows, decide, claim, record) and the exactly-once invariants;
* :mod:`.outbox`: sending claimed runs after the commit, re-sending the ones never sent;
* :mod:`.send`: writing runs into RQ (one script call per 250 runs, RQ's unique enqueue);
* :mod:`.reconcile`: active runs against RQ: settle the ones that are over, reconcile a whole site;
* :mod:`.inactivity`: the scheduler switched off (paused, disabled, maintenance) and its stretches;
* :mod:`.judge`: is a previous run still going? The ledger against RQ, pure;
* :mod:`.orphans`: runs a dead worker took off their queue, put back;
* :mod:`.reanchor`: moving every row's next slot when the site's calendar changes;
* :mod:`.repair`: a next slot for a job that has none;
* :mod:`.step`: one site's step (sweep, pass, last tick), run by the loop and by ``hookscheduler tick``;
* :mod:`.loop`: ``hookscheduler schedule``: cycles of steps over the sites, sleeping until the next slot;
* :mod:`.ahead`: which sites the loop claims a moment before their slot (their runs held until it), pure;
* :mod:`.wake`: telling running loops that the job table changed.

The SQL is the store's (:mod:`hookscheduler.store`).
"""

__all__ = ["ahead", "claim", "decide", "judge", "loop", "orphans", "outbox", "reanchor", "reconcile", "repair", "send",
           "step", "wake"]
