"""Background jobs, Frappe's ``frappe.enqueue``: the public enqueue API and the job events it publishes.

* :mod:`.api`: ``enqueue``, ``enqueue_doc``, ``enqueue_batches``, ``get_job``, ``get_job_status``, ...
  (re-exported by :mod:`hookscheduler`);
* :mod:`.events`: started / finished / failed messages on the site's pub/sub channel.
"""

__all__ = ["api", "events"]
