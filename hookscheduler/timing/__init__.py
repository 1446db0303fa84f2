"""Time: when jobs fire (pure slot maths), what "now" is, and the moments operators type.

* :mod:`.cron`: cron and interval slots as UTC instants under the DST contract (pure);
* :mod:`.frequencies`: the ``scheduler_events`` sections, their frequency, cron and default queue (pure data);
* :mod:`.calendar`: a site's calendar (zone, ``all`` interval, maintenance offset) and a row's slots in it;
* :mod:`.clock`: the source of "now" for every timestamp the scheduler and the worker write;
* :mod:`.moments`: ``--since`` / ``--at`` (ISO or relative) as naive UTC.
"""

__all__ = ["calendar", "clock", "cron", "frequencies", "moments"]
