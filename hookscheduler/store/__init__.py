"""The site's database: its tables, connecting to it, its versioned schema and the scheduler's state keys.

* :mod:`.models`: ``scheduled_job_type``, ``scheduled_job_log`` (the ledger) and ``scheduler_state``;
* :mod:`.database`: opening SQLite / PostgreSQL, write transactions, schema versions, state keys.
"""

__all__ = ["database", "models"]
