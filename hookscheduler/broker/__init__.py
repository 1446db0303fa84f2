"""The Redis that RQ uses: connecting to it, and the names of everything hookscheduler keeps in it.

* :mod:`.connection`: a site's client (credentials, TLS), the reachability check, bench teardown;
* :mod:`.keys`: queue names, deterministic job ids, and the keys of heartbeats, last ticks, events and marks.
"""

__all__ = ["connection", "keys"]
