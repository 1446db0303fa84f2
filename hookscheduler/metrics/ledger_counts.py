"""Prometheus counters derived from the ledger, folded incrementally into Redis so they are monotonic and shared.

Counted from ``scheduled_job_log`` because every outcome is already written there, by whichever process
decided it; kept in Redis because the ledger is pruned (a counter must never drop) and several exporters must
agree. One Redis hash per site holds a ``cursor``, a set the ``pending`` ids of rows still active, and a hash
the ``growing`` skipped rows (row id -> slots counted): a pass extends a job's newest ``skipped`` row while the
job stays stopped, so such a row is re-read until a newer row of its job passes the cursor, and its new slots
are counted then (at most one row per job, read by primary key: cheap however long the ledger). A collection is
one ``WATCH`` transaction, so two exporters never count a row, or a row's growth, twice. The design, the corner
cases (SQLite id reuse, PostgreSQL commit order) and the reset semantic: docs/metrics.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from ..broker.keys import site_tag
from ..ops import history
from ..store import ledger_reads
from ..store.models import utcnow

#: Histogram bucket bounds (seconds): lateness is enqueue minus slot, duration is the run's own.
LATENESS_BUCKETS = (0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
RUN_STATUSES = ("complete", "failed")
NOT_RUN_STATUSES = ("missed", "skipped")
TERMINAL = RUN_STATUSES + NOT_RUN_STATUSES
BATCH = 5000


def counts_key(bench_id: str, site: str) -> str:
    return f"hookscheduler:{bench_id}:{site_tag(site)}:metrics"


def pending_key(bench_id: str, site: str) -> str:
    return f"hookscheduler:{bench_id}:{site_tag(site)}:metrics:pending"


def growing_key(bench_id: str, site: str) -> str:
    """The hash of the counted ``skipped`` rows that may still grow (row id -> slots counted so far)."""
    return f"hookscheduler:{bench_id}:{site_tag(site)}:metrics:growing"


#: Joins a series' kind and labels into a hash field: a control character, which job names (printable, as
#: migrate checks) and the fixed label words never hold; splitting on it is much cheaper than JSON at scrape time.
SEP = "\x1f"


#: How many labels follow the job name in each kind of field.
_LABELS_AFTER_JOB = {"runs": 1, "slots": 2, "off_time": 0, "late_b": 1, "dur_b": 1, "late_sum": 0, "dur_sum": 0,
                     "last_ok": 0, "last_run": 0}


def field_name(*parts: str) -> str:
    """A hash field for a series: its kind and labels."""
    return SEP.join(parts)


def _bucket(value: float, bounds: Sequence[float]) -> str:
    """The first bound ``value`` fits under, or ``+Inf``: buckets are stored non-cumulative."""
    for bound in bounds:
        if value <= bound:
            return repr(bound)
    return "+Inf"


def _epoch(value: datetime) -> float:
    return value.replace(tzinfo=timezone.utc).timestamp()


@dataclass
class Fold:
    """What a batch of ended ledger rows adds: integer and float increments, and per-job latest facts."""

    ints: dict[str, int] = field(default_factory=dict)
    floats: dict[str, float] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)  # job -> epoch seconds
    last_run: dict[str, tuple[int, str]] = field(default_factory=dict)  # job -> (row id, status)

    def add(self, name: str, by: int = 1) -> None:
        self.ints[name] = self.ints.get(name, 0) + by

    def add_float(self, name: str, by: float) -> None:
        self.floats[name] = self.floats.get(name, 0.0) + by


def fold(rows: Iterable[dict[str, Any]], into: Fold | None = None) -> Fold:
    """Pure: the counter increments of ended ledger rows (dicts with :data:`history.SCAN_COLUMNS`)."""
    out = into or Fold()
    for r in rows:
        job, status = str(r["job_name"]), str(r["status"])
        slots = int(r["slots"] or 1)
        if status in NOT_RUN_STATUSES:
            out.add(field_name("slots", job, status, history.reason_kind(status, r["reason"])), slots)
            if status == "missed":
                out.add(field_name("off_time", job), slots)
            continue
        if status not in RUN_STATUSES:
            continue
        out.add(field_name("runs", job, status))
        if r["trigger"] == "catch-up" or slots > 1:  # a catch-up run: its slots ran late (as `jobs missed` counts)
            out.add(field_name("off_time", job), slots)
        if r["enqueued_at"] is not None and r["trigger"] in ("schedule", "catch-up"):
            late = max(0.0, (r["enqueued_at"] - r["scheduled_for"]).total_seconds())
            out.add(field_name("late_b", job, _bucket(late, LATENESS_BUCKETS)))
            out.add_float(field_name("late_sum", job), late)
        if r["duration"] is not None:
            out.add(field_name("dur_b", job, _bucket(float(r["duration"]), DURATION_BUCKETS)))
            out.add_float(field_name("dur_sum", job), float(r["duration"]))
        if status == "complete" and r["finished_at"] is not None:
            out.last_success[job] = max(out.last_success.get(job, 0.0), _epoch(r["finished_at"]))
        if r["id"] > out.last_run.get(job, (-1, ""))[0]:
            out.last_run[job] = (int(r["id"]), status)
    return out


@dataclass
class Scan:
    """Pure result of walking rows from the cursor: what ended, what is still active, where to stop."""

    ended: list[dict[str, Any]]
    active: list[int]
    cursor: int
    young: bool  # stopped at a row younger than the grace: caught up


def scan(rows: Sequence[dict[str, Any]], cursor: int, now: datetime, grace: float) -> Scan:
    """Pure: walk rows (id order, from ``cursor``) until the first one younger than ``grace`` seconds."""
    ended: list[dict[str, Any]] = []
    active: list[int] = []
    horizon = now - timedelta(seconds=grace)
    for r in rows:
        if r["created_at"] is not None and r["created_at"] > horizon:
            return Scan(ended, active, int(r["id"]), True)
        if r["status"] in TERMINAL:
            ended.append(r)
        else:
            active.append(int(r["id"]))
        cursor = int(r["id"]) + 1
    return Scan(ended, active, cursor, False)


def regrow(tracked: dict[int, int], current: Iterable[dict[str, Any]], born: Iterable[dict[str, Any]],
           passed: Iterable[dict[str, Any]], into: Fold) -> dict[int, int]:
    """Pure: count into ``into`` the slots the ``tracked`` rows (id -> slots counted) gained since (``current``:
    those rows as they are now), and return what to track after this collection.

    Only a pass's extension of a job's newest ``skipped`` row (a job that stays stopped, a run that keeps
    blocking the next slots) grows a row, so: the ``born`` rows (counted now, passed by the cursor already
    ``skipped``) are tracked with the slots just counted; a row no longer ``skipped`` or deleted is dropped; and
    one older than a row of its job among the ``passed`` ones (every row the cursor passed now) is dropped after
    this last read, since the pass extends only the newest row. A row ending ``skipped`` from the pending set is
    not tracked: a run canceled, purged or deleted by an operator, a reason no pass's decision writes, so never
    extended. A count is never lowered (a row shrunk by an SQL edit keeps its count)."""
    after: dict[int, int] = {}
    jobs: dict[int, str] = {}
    by_id = {int(r["id"]): r for r in current}
    for rid, counted in tracked.items():
        r = by_id.get(rid)
        if r is None or r["status"] != "skipped":
            continue
        slots = int(r["slots"] or 1)
        if slots > counted:
            into.add(field_name("slots", str(r["job_name"]), "skipped", history.reason_kind("skipped", r["reason"])),
                     slots - counted)
        after[rid], jobs[rid] = max(slots, counted), str(r["job_name"])
    for r in born:
        if r["status"] == "skipped":
            after[int(r["id"])], jobs[int(r["id"])] = int(r["slots"] or 1), str(r["job_name"])
    newest: dict[str, int] = {}
    for r in passed:
        newest[str(r["job_name"])] = max(newest.get(str(r["job_name"]), 0), int(r["id"]))
    return {rid: n for rid, n in after.items() if newest.get(jobs[rid], 0) <= rid}


def _dicts(tuples: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(history.SCAN_COLUMNS, t, strict=True)) for t in tuples]


def _pending_rows(ids: list[int]) -> list[dict[str, Any]]:
    return _dicts(ledger_reads.rows_by_ids(ids, history.SCAN_COLUMNS))


def update(conn: redis.Redis, bench_id: str, site: str, now: datetime | None = None, grace: float = 30.0,
           budget: float = 2.0) -> int:
    """Fold the ledger rows that ended since the last collection into the site's Redis counters (the site's
    database must be bound). Stops after ``budget`` seconds (a first collection over a large ledger is
    spread over several scrapes). Returns how many rows were counted."""
    now = now or utcnow()
    deadline = time.monotonic() + budget
    counted = 0
    while True:
        done, n = _step(conn, bench_id, site, now, grace)
        counted += n
        if done or time.monotonic() > deadline:
            return counted


def _step(conn: redis.Redis, bench_id: str, site: str, now: datetime, grace: float) -> tuple[bool, int]:
    key, pkey, gkey = counts_key(bench_id, site), pending_key(bench_id, site), growing_key(bench_id, site)
    for _attempt in range(5):
        with conn.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key, pkey, gkey)  # type: ignore[no-untyped-call]
                raw = pipe.hget(key, "cursor")
                cursor = int(raw) if raw else 0
                pending = sorted(int(x) for x in pipe.smembers(pkey))  # type: ignore[union-attr]
                tracked = {int(k): int(v) for k, v in pipe.hgetall(gkey).items()}  # type: ignore[union-attr]
                stale: set[int] = set()
                reread = _pending_rows(sorted({*pending, *tracked})) if pending or tracked else []
                waiting = set(pending)
                still = [r for r in reread if r["id"] in waiting]
                ended_before = [r for r in still if r["status"] in TERMINAL]
                gone = set(pending) - {r["id"] for r in still if r["status"] not in TERMINAL}
                rows = _dicts(history.ledger_after(cursor, BATCH))
                if not rows and cursor > 1 and (history.ledger_max_id() or 0) < cursor - 1:
                    # the newest rows were deleted and SQLite reuses their ids (a ledger pruned empty): the rows
                    # there now are all new
                    cursor, pending, still, ended_before, gone = 0, [], [], [], set(pending)
                    stale, tracked, reread = set(tracked), {}, []
                    rows = _dicts(history.ledger_after(cursor, BATCH))
                s = scan(rows, cursor, now, grace)
                f = fold([*ended_before, *s.ended])
                active = set(s.active)
                passed = [*s.ended, *(r for r in rows if r["id"] in active)]
                follow = regrow(tracked, reread, s.ended, passed, f)
                current = _current_latest(pipe, key, f)
                pipe.multi()
                _write(pipe, key, f, current)
                pipe.hset(key, "cursor", s.cursor)
                if gone:
                    pipe.srem(pkey, *gone)
                if s.active:
                    pipe.sadd(pkey, *s.active)
                dropped = stale | (set(tracked) - set(follow))
                if dropped:
                    pipe.hdel(gkey, *dropped)
                changed = {rid: n for rid, n in follow.items() if tracked.get(rid) != n}
                if changed:
                    pipe.hset(gkey, mapping=changed)  # type: ignore[arg-type]
                pipe.execute()
                return s.young or len(rows) < BATCH, len(ended_before) + len(s.ended)
            except redis.WatchError:
                continue
    return True, 0


def _current_latest(pipe: Any, key: str, f: Fold) -> dict[str, Any]:
    """The stored latest facts of the jobs this fold touches (read under WATCH)."""
    names = [field_name("last_ok", j) for j in f.last_success] + [field_name("last_run", j) for j in f.last_run]
    if not names:
        return {}
    return dict(zip(names, pipe.hmget(key, names), strict=True))


def _write(pipe: Any, key: str, f: Fold, current: dict[str, Any]) -> None:
    for name, by in f.ints.items():
        pipe.hincrby(key, name, by)
    for name, by_float in f.floats.items():
        pipe.hincrbyfloat(key, name, by_float)
    for job, ts in f.last_success.items():
        name = field_name("last_ok", job)
        old = current.get(name)
        if old is None or float(old) < ts:
            pipe.hset(key, name, repr(ts))
    for job, (row_id, status) in f.last_run.items():
        name = field_name("last_run", job)
        old = current.get(name)
        if old is None or json.loads(old)[0] < row_id:
            pipe.hset(key, name, json.dumps([row_id, status]))


def forget(conn: redis.Redis, bench_id: str, site: str, series: dict[tuple[str, ...], str], jobs: set[str]) -> int:
    """Drop the stored ``series`` (as :func:`read` gave them) of jobs no longer in the jobs table (``jobs``: every
    name there, removed ones too), so a pruned job's series leave the scrape. Safe against a collection folding
    at the same time: a job's rows are written after the job, and counted at least ``grace`` seconds later, so a
    job missing from a table read just before is gone, not new. Returns how many fields were dropped."""
    stale = [field_name(*key) for key in series if key[1] not in jobs]
    if stale:
        conn.hdel(counts_key(bench_id, site), *stale)
    return len(stale)


def read(conn: redis.Redis, bench_id: str, site: str) -> dict[tuple[str, ...], str]:
    """The site's stored series: (kind, *labels) -> value text (``cursor`` left out)."""
    out: dict[tuple[str, ...], str] = {}
    for k, v in conn.hgetall(counts_key(bench_id, site)).items():  # type: ignore[union-attr]
        name = k.decode() if isinstance(k, bytes) else str(k)
        if name == "cursor":
            continue
        parts = name.split(SEP)
        after = _LABELS_AFTER_JOB.get(parts[0])
        if after is None or len(parts) < 2 + after:
            continue  # not a series of ours
        # a job name written by SQL may hold the separator: everything between the kind and the fixed labels
        job = SEP.join(parts[1:len(parts) - after])
        out[(parts[0], job, *parts[len(parts) - after:])] = v.decode() if isinstance(v, bytes) else str(v)
    return out


__all__ = [
    "DURATION_BUCKETS", "LATENESS_BUCKETS", "Fold", "Scan", "counts_key", "field_name", "fold", "forget", "growing_key",
    "pending_key", "read", "regrow", "scan", "update",
]
