"""The scheduler: from due rows to runs in RQ, exactly once per slot.

* :mod:`.decide`: what to do with one due row (fire, catch up, miss, skip), pure;
* :mod:`.claim`: the pass: probe, select due rows, decide, claim, record, send; the outbox; settling runs;
* :mod:`.send`: writing claimed runs into RQ (one pipeline, RQ's unique enqueue);
* :mod:`.judge`: is a job's previous run still going? The ledger against RQ, pure;
* :mod:`.orphans`: runs a dead worker took off their queue, put back;
* :mod:`.reanchor`: moving every row's next slot when the site's calendar changes;
* :mod:`.step`: one site's step (sweep, pass, last tick), run by the loop and by ``hookscheduler tick``;
* :mod:`.loop`: ``hookscheduler schedule``: cycles of steps over the sites, sleeping until the next slot;
* :mod:`.wake`: telling running loops that the job table changed.
"""

__all__ = ["claim", "decide", "judge", "loop", "orphans", "reanchor", "send", "step", "wake"]
