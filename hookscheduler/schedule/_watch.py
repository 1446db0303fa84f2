"""Whether a bench's config files may have changed since the loop last read them, from ``stat`` alone.

The loop re-reads the config every cycle so that a pause, a new site or a changed tick interval takes effect
without a restart; parsing the JSON files of every site costs far more than the idle step it sits in (and grows
with the sites). A fingerprint of the files' and folders' ``stat`` (modification time in nanoseconds, size,
inode: an editor's atomic replace changes the inode, a site added or removed changes its folder's time) is
compared instead, and the files are read only when it differs.

A file modified within :data:`RACY` seconds of the check gives no fingerprint (the caller reads the files): the
kernel's file times advance in coarse steps, so two writes of the same size inside one step would otherwise
look alike, and the second would go unnoticed (the problem git calls "racy" entries).

A worker checks the same way, before each job, whether the one site it runs the job for may have a new config
(:func:`site_fingerprint`: two ``stat`` calls, where the loop's check also watches for sites added or removed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

RACY = 0.5

Fingerprint = tuple[tuple[str, int, int, int], ...]


def config_fingerprint(bench: Path, sites: Iterable[str]) -> Fingerprint | None:
    """The ``stat`` of everything the loop's config read depends on, or None when it cannot be trusted."""
    sites_dir = os.path.join(bench, "sites")
    paths = [sites_dir, f"{sites_dir}/common_site_config.json", f"{sites_dir}/apps.txt", os.path.join(bench, "apps")]
    for name in sites:  # plain strings: a pathlib join per file cost more than its stat (3 files a site)
        folder = f"{sites_dir}/{name}"
        paths += [folder, f"{folder}/site_config.json", f"{folder}/apps.txt"]
    return stat_fingerprint(paths)


def site_fingerprint(bench: Path, site: str) -> Fingerprint | None:
    """The ``stat`` of the two files one site's settings are read from (the bench's and the site's config), or
    None when it cannot be trusted: what a worker checks before each job
    (:func:`~hookscheduler.worker.runner.worker_site`), where every ``stat`` is paid per job."""
    sites_dir = os.path.join(bench, "sites")
    return stat_fingerprint([f"{sites_dir}/common_site_config.json", f"{sites_dir}/{site}/site_config.json"])


def stat_fingerprint(paths: Iterable[str]) -> Fingerprint | None:
    """Modification time, size and inode of each path (a missing one included as such), or None when a path
    cannot be stat'ed or was modified within :data:`RACY` seconds (the caller then reads the files)."""
    out = []
    fresh = (time.time() - RACY) * 1e9
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            out.append((path, -1, -1, -1))
            continue
        except OSError:
            return None
        if st.st_mtime_ns >= fresh:
            return None
        out.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


__all__ = ["RACY", "Fingerprint", "config_fingerprint", "site_fingerprint", "stat_fingerprint"]
