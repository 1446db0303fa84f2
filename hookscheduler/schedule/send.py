"""Sending claimed runs to RQ: many at once, each at most once.

The pass claims slots in the database first (the outbox), then calls :func:`send_runs`. Every run has a
deterministic RQ job id, and it is written with RQ's atomic "unique enqueue" (check the job key, save the hash,
push the id), many runs per script call (:data:`ENQUEUE_MANY`), all runs of a pass in one pipeline. So a run
sent twice (a crashed sender's outbox row re-sent by another process, or two processes re-sending the same
row) lands in RQ once: the second send finds the job key and is refused by Redis itself.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.scripts import _build_hset_args
from rq.utils import now, utcformat

from ..broker.keys import queue_name
from ..config import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL
from ..store.base import Run as Run
from ..timing.clock import SIM, rq_timeout, utcnow

RUNNER = "hookscheduler.runner.run_scheduled_job"


#: Seconds RQ keeps a finished run of a job that fires more than once an hour, whatever ``rq_results_ttl``
#: says: such a job leaves thousands of results a day, and its ledger row already holds the outcome.
FREQUENT_RESULT_TTL = 600


_QUEUES: dict[tuple[int, str], Queue] = {}


def rq_queue(conn: redis.Redis, bench_id: str, queue: str) -> Queue:
    """The RQ queue object for a bench queue (cached: it caches the server version)."""
    full = queue_name(bench_id, queue)
    key = (id(conn), full)
    q = _QUEUES.get(key)
    if q is None or q.connection is not conn:
        q = Queue(full, connection=conn)
        _QUEUES[key] = q
    return q


def _job_kwargs(run: Run) -> dict[str, Any]:
    return {"site": run.site, "job_name": run.job_name, "method": run.method,
            "slot": run.scheduled_for.isoformat(), "trigger": run.trigger}


def _job_fields(run: Run, result_ttl: int, failure_ttl: int) -> tuple[tuple[str], dict[str, Any]]:
    """Arguments of ``Queue.create_job`` for ``run``."""
    if run.frequent:
        result_ttl = min(result_ttl, FREQUENT_RESULT_TTL)
    return (RUNNER,), {
        "kwargs": _job_kwargs(run), "timeout": rq_timeout(run.timeout), "job_id": run.rq_job_id,
        "result_ttl": result_ttl, "failure_ttl": failure_ttl, "description": _description(run), "meta": _meta(run),
    }


def _description(run: Run) -> str:
    return f"{run.job_name} [{run.trigger} {run.scheduled_for.isoformat(sep=' ')} UTC]"


def _meta(run: Run) -> dict[str, Any]:
    meta: dict[str, Any] = {"site": run.site, "job": run.job_name, "trigger": run.trigger,
                            "slot": run.scheduled_for.isoformat()}
    if run.frequent:  # the worker keeps its start mark short once the ledger has the outcome
        meta["frequent"] = True
    return {"hookscheduler": meta}


def _rq_job(conn: redis.Redis, bench_id: str, run: Run, result_ttl: int, failure_ttl: int) -> tuple[Job, list[Any]]:
    """The job RQ itself makes for ``run``, ready to be queued, and its hash (``HSET`` field/value pairs)."""
    q = rq_queue(conn, bench_id, run.queue)
    args, kwargs = _job_fields(run, result_ttl, failure_ttl)
    job = q.create_job(*args, **kwargs)
    q._prepare_for_queue(job)
    return job, list(_build_hset_args(job))  # type: ignore[no-untyped-call]


def rq_hash(conn: redis.Redis, bench_id: str, run: Run, result_ttl: int, failure_ttl: int) -> list[Any]:
    """The job hash RQ itself writes for ``run`` (``HSET`` field/value pairs): the reference for
    :class:`HashBuilder`, which tests compare against it."""
    return _rq_job(conn, bench_id, run, result_ttl, failure_ttl)[1]


#: RQ job templates per (bench, queue, timeout, frequent, result TTL, failure TTL) (:class:`HashBuilder`).
_TEMPLATES: dict[tuple[str, str, int, bool, int, int], tuple[dict[str, Any], Any]] = {}


class HashBuilder:
    """Builds RQ job hashes for many runs at the cost of two ``pickle.dumps`` each.

    RQ's ``create_job`` + ``to_dict`` are costly per job (they dominated a pass that fires many runs), mostly in
    generic bookkeeping that is the same for every run of a queue. So RQ builds one job per (queue, timeout) (the
    template) and each run's hash is the template with the fields that differ replaced: ``data`` (function and
    kwargs, serialised and compressed as RQ does), ``description``, ``meta`` and the timestamps.
    ``tests/unit/test_dispatch.py`` checks the result is identical to RQ's own, field by field, so an RQ upgrade
    that changes the format fails a test instead of writing jobs a worker cannot read.
    """

    def __init__(self, conn: redis.Redis, bench_id: str, result_ttl: int, failure_ttl: int):
        self.conn, self.bench_id = conn, bench_id
        self.result_ttl, self.failure_ttl = result_ttl, failure_ttl
        self.stamp = utcformat(now())

    def _template(self, run: Run) -> tuple[dict[str, Any], Any]:
        # kept for the process: a template's fields are a function of the key (the timestamps, the only
        # fields that are not, are replaced in every hash), and making one costs ~0.15 ms, on the path from a
        # slot to its send
        key = (self.bench_id, run.queue, run.timeout, run.frequent, self.result_ttl, self.failure_ttl)
        found = _TEMPLATES.get(key)
        if found is None:
            job, pairs = _rq_job(self.conn, self.bench_id, run, self.result_ttl, self.failure_ttl)
            fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
            found = (fields, job.serializer)
            _TEMPLATES[key] = found
        return found

    def shared(self, run: Run) -> list[Any]:
        """The fields of ``run``'s hash that every run of its queue, timeout and frequency shares (field/value
        pairs, the timestamps included): with :meth:`own`, the whole hash (``tests/unit/test_dispatch.py`` joins
        the two and compares the result with RQ's own)."""
        template, _ = self._template(run)
        fields = {k: v for k, v in template.items() if k not in _OWN_FIELDS}
        fields["created_at"] = fields["enqueued_at"] = self.stamp
        return [v for kv in fields.items() for v in kv]

    def own(self, run: Run) -> tuple[bytes, str, bytes]:
        """``data``, ``description`` and ``meta`` of ``run``'s hash: what differs from run to run."""
        _, serializer = self._template(run)
        return (zlib.compress(serializer.dumps((RUNNER, None, (), _job_kwargs(run)))), _description(run),
                serializer.dumps(_meta(run)))

    def packed(self, run: Run) -> Built:
        """What :data:`ENQUEUE_MANY` needs of ``run`` beyond its template: taken from :func:`prebuild`'s work
        when the run was built ahead, else built now."""
        found = _BUILT.pop(run.rq_job_id, None)
        if found is not None and (found.run is run or found.run == run):
            return found
        data, description, meta = self.own(run)
        template = _template_name(run)
        return Built(run, template, Job.key_for(run.rq_job_id),
                     _pack(run.rq_job_id.encode(), template.encode(), data, description.encode(), meta))


@dataclass(frozen=True)
class Built:
    """One run as :data:`ENQUEUE_MANY` takes it: the name of its template, its job key, and its own fields
    packed (job id, template name, ``data``, ``description``, ``meta``: each a 4-byte length and the bytes)."""

    run: Run
    template: str
    key: str
    packed: bytes


def _template_name(run: Run) -> str:
    """The template ``run``'s hash is made from (:meth:`HashBuilder.shared`) within one script call."""
    return f"{run.queue}|{run.timeout}|{int(run.frequent)}"


#: Runs built ahead by :func:`prebuild`, by job id, taken as they are sent. A run's payload is a function of the
#: run alone (its fields; the serializer is RQ's default for every queue): an entry serves a run equal to the one
#: it was built for, whichever send takes it, and any other run is built at its send. Bounded: held runs a stop
#: drops are :func:`forget`-ten, and past :data:`MAX_BUILT` the oldest entries go.
_BUILT: dict[str, Built] = {}
MAX_BUILT = 50_000
#: How far behind the slot of runs being built an entry's slot may fall before :func:`prebuild` drops it.
STALE_AFTER = timedelta(minutes=10)
#: How far the stale line moves between two full scans of :data:`_BUILT` (:func:`_drop_stale`).
SCAN_EVERY = timedelta(minutes=1)
#: The stale line of the last full scan (one item; none before the first).
_SCANNED: list[datetime] = []


def prebuild(conn: redis.Redis, bench_id: str, runs: Iterable[Run], result_ttl: int = DEFAULT_RESULT_TTL,
             failure_ttl: int = DEFAULT_FAILURE_TTL) -> None:
    """Build ``runs``' payloads now, for a send to come: the loop calls it for runs claimed ahead of their slot
    (:mod:`.ahead`), so that the release at the slot only joins bytes. Pickling and compressing a run's data is
    most of what building its hash costs (about 20-30 us a run: tens of milliseconds for a thousand sites'
    runs), and all of it would otherwise lie between the slot and the moment Redis accepts the runs."""
    runs = list(runs)
    if not runs:
        return
    builder = HashBuilder(conn, bench_id, result_ttl, failure_ttl)
    for run in runs:
        _BUILT[run.rq_job_id] = builder.packed(run)
    _drop_stale(min(run.scheduled_for for run in runs) - STALE_AFTER)


def _drop_stale(stale: datetime) -> None:
    """Drop the entries no send took (the runs went out from another process, or a release failed and another
    pass sent them) once their slot is before ``stale``, and the oldest past :data:`MAX_BUILT`.

    The loop builds in the order of its slots, so the oldest entry is usually the earliest slot, and dropping
    from the oldest while it is stale costs nothing per build. It is not always: a clock set back, or a site
    whose claim ahead was built after a later slot of another, leaves stale entries behind a fresh one. So the
    whole dict is scanned too, whenever the stale line has moved :data:`SCAN_EVERY` since the last scan (either
    way: a clock set back): an entry outlives its slot by at most ``STALE_AFTER + SCAN_EVERY``, and a
    thousand sites' builds in one slot cost one scan, not a thousand."""
    while _BUILT and (len(_BUILT) > MAX_BUILT or next(iter(_BUILT.values())).run.scheduled_for < stale):
        del _BUILT[next(iter(_BUILT))]
    if _SCANNED and abs(stale - _SCANNED[0]) < SCAN_EVERY:
        return
    for key in [key for key, built in _BUILT.items() if built.run.scheduled_for < stale]:
        del _BUILT[key]
    _SCANNED[:] = [stale]


def forget(runs: Iterable[Run]) -> None:
    """Drop what :func:`prebuild` built for ``runs`` (runs that will not be sent by this process)."""
    for run in runs:
        _BUILT.pop(run.rq_job_id, None)


def _pack(*values: bytes) -> bytes:
    return b"".join(part for value in values for part in (_LENGTH.pack(len(value)), value))


@dataclass(frozen=True)
class Sent:
    """What :func:`send_runs` did: the ids now in RQ (newly written or already there) and, for each, when Redis
    accepted it (naive UTC, the ledger's ``enqueued_at``), in the same order."""

    ids: list[str]
    ats: list[datetime]


#: Runs per call of the enqueue script. Redis runs a script alone, so a call must stay short (about 2 ms for
#: this many runs), and each call stamps its runs with the server's time as it starts them.
RUNS_PER_CALL = 250

#: Redis ``TIME`` (seconds, microseconds) as RQ writes a timestamp (``rq.utils.utcformat``:
#: ``%Y-%m-%dT%H:%M:%S.%fZ``, UTC). Redis's Lua has no date functions: the day count since 1970 becomes a
#: proleptic Gregorian date by the usual era arithmetic (400-year eras of 146,097 days, years starting in March
#: so that the leap day falls last). ``tests/integration/test_send_accepted.py`` checks it against Python's
#: ``datetime`` across leap days and centuries.
LUA_STAMP = """
local function stamp(t)
  local secs, micros = tonumber(t[1]), tonumber(t[2])
  local days = math.floor(secs / 86400)
  local rest = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', year, month, day, math.floor(rest / 3600),
    math.floor(rest / 60) % 60, rest % 60, micros)
end
"""

#: RQ's unique enqueue (``rq.scripts.UNIQUE_ENQUEUE_SCRIPT``: skip a job whose key exists, else write its hash
#: and push its id) for many runs in one call. redis-py packed the ~44 arguments of every run's own script call
#: one by one in Python, most of a pass's time; here the fields every run of a queue shares are sent once per
#: call (a *template*) and each run's own fields travel packed in one string, so a call is a few arguments
#: whatever its runs. It also registers the queues (``SADD rq:queues``) and returns the server's ``TIME`` read
#: as it begins: the moment it accepted the call's runs, on the queue's own clock. That moment is also each
#: hash's ``enqueued_at`` (RQ's format, written by :data:`LUA_STAMP`), in place of the template's: RQ sets it as
#: the job is pushed, and a time taken in Python before the payloads were built would read earlier than the
#: queue got the job (by the build, tens of milliseconds for a thousand runs), in RQ's own view of the job as in
#: anything that measures a fire delay from it. It is never earlier than the hash's ``created_at`` (the
#: sender's time as it built the call, passed as the floor): a Redis host whose clock is behind cannot make RQ
#: show a job queued before it was created (the ledger's stamp is kept inside the sender's window likewise:
#: :func:`accepted_at`).
#:
#: KEYS: ``rq:queues``, then each run's job key, then each template's queue key.
#: ARGV: the floor of ``enqueued_at`` (RQ's format); the number of templates T; per template, the index of its
#: queue key in KEYS, its name, the number m of values, then m values (field, value, ...); last, the runs' own
#: fields: per run, in KEYS order, its job id, its template's name, ``data``, ``description`` and ``meta``, each a
#: 4-byte big-endian length and the bytes (all of it built ahead for runs claimed ahead: :func:`prebuild`).
ENQUEUE_MANY = LUA_STAMP + """
local now = redis.call('TIME')
local enqueued = stamp(now)
if enqueued < ARGV[1] then enqueued = ARGV[1] end
local pos = 3
local templates = {}
for t = 1, tonumber(ARGV[2]) do
  local queue, name, m = KEYS[tonumber(ARGV[pos])], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local fields = {}
  for i = 1, m do fields[i] = ARGV[pos + 2 + i] end
  for i = 1, m - 1, 2 do
    if fields[i] == 'enqueued_at' then fields[i + 1] = enqueued end
  end
  templates[name] = {queue, fields, m}
  redis.call('SADD', KEYS[1], queue)
  pos = pos + 3 + m
end
local own, at = ARGV[pos], 1
local function take()
  local n, start = struct.unpack('>I4', own, at)
  at = start + n
  return string.sub(own, start, at - 1)
end
for r = 1, #KEYS - 1 - tonumber(ARGV[2]) do
  local id, t, data, description, meta = take(), templates[take()], take(), take(), take()
  local key = KEYS[1 + r]
  if redis.call('EXISTS', key) == 0 then
    local f, m = t[2], t[3]
    f[m + 1], f[m + 2], f[m + 3], f[m + 4], f[m + 5], f[m + 6] = 'data', data, 'description', description, 'meta', meta
    redis.call('HSET', key, unpack(f, 1, m + 6))
    redis.call('RPUSH', t[1], id)
  end
end
return now
"""
_LENGTH = struct.Struct(">I")
_OWN_FIELDS = ("data", "description", "meta")
_SHA = hashlib.sha1(ENQUEUE_MANY.encode()).hexdigest()


def _evalsha_all(conn: redis.Redis, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """``EVALSHA`` of :data:`ENQUEUE_MANY` for each call: alone when there is one, else in one pipeline. Not
    redis-py's ``Script`` objects: in a pipeline they ask ``SCRIPT EXISTS`` first, one more round trip for
    every send; here a script Redis does not have fails the call (:func:`send_runs` loads it and retries)."""
    target: Any = conn if len(calls) == 1 else conn.pipeline(transaction=False)
    replies = [target.evalsha(_SHA, len(keys), *keys, *args) for keys, args in calls]
    if target is conn:
        return replies
    with target:
        return list(target.execute())


def send_runs(conn: redis.Redis, bench_id: str, runs: Iterable[Run], result_ttl: int = DEFAULT_RESULT_TTL,
              failure_ttl: int = DEFAULT_FAILURE_TTL) -> Sent:
    """Enqueue ``runs`` in one round trip; returns the ids now in RQ and the moment Redis accepted each.

    The runs go through :data:`ENQUEUE_MANY`, RQ's own atomic unique enqueue (skip if the job key exists, else
    write the hash and push the id) for :data:`RUNS_PER_CALL` runs a call, so a run sent twice lands once. Each
    call returns Redis's ``TIME`` as it begins: its runs' ledger stamp (see :func:`accepted_at`), the moment the
    queue accepted them on its own clock, rather than a time taken before the pipeline was sent, after its reply
    came back, or after the pipeline's last run.
    """
    runs = list(runs)
    if not runs:
        return Sent([], [])
    builder = HashBuilder(conn, bench_id, result_ttl, failure_ttl)
    calls: list[list[Run]] = [runs[i:i + RUNS_PER_CALL] for i in range(0, len(runs), RUNS_PER_CALL)]
    commands = [_call(conn, bench_id, builder, part) for part in calls]
    before = utcnow()
    try:
        replies = _evalsha_all(conn, commands)
    except redis.exceptions.NoScriptError:  # a new (or flushed) Redis: load the script and send again; a run
        conn.script_load(ENQUEUE_MANY)  # that was written before the error is refused the second time (I4)
        before = utcnow()
        replies = _evalsha_all(conn, commands)
    after = utcnow()
    ats: list[datetime] = []
    for part, reply in zip(calls, replies, strict=True):
        ats += [accepted_at(reply, before, after)] * len(part)
    return Sent([r.rq_job_id for r in runs], ats)


def _call(conn: redis.Redis, bench_id: str, builder: HashBuilder, runs: list[Run]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one :data:`ENQUEUE_MANY` call."""
    built = [builder.packed(run) for run in runs]
    head: list[Any] = []
    queue_keys: list[str] = []
    seen: set[str] = set()
    for b in built:
        if b.template not in seen:
            seen.add(b.template)
            template = builder.shared(b.run)
            queue_keys.append(rq_queue(conn, bench_id, b.run.queue).key)
            head += [1 + len(runs) + len(queue_keys), b.template, len(template), *template]
    keys = [Queue.redis_queues_keys, *(b.key for b in built), *queue_keys]
    return keys, [builder.stamp, len(seen), *head, b"".join(b.packed for b in built)]


def accepted_at(server_time: Any, before: datetime, after: datetime) -> datetime:
    """Redis's ``TIME`` reply as naive UTC, kept inside the local window ``[before, after]`` around the round
    trip: a Redis host whose clock is off cannot stamp a run before it was claimed or after the reply came back
    (with clocks in step, the server's time falls inside the window and is kept as is). On a simulated clock
    (a chaos run) the server's real time means nothing: the window's end is used."""
    if SIM is not None:
        return after
    seconds, micros = server_time
    at = datetime.fromtimestamp(int(seconds), timezone.utc).replace(tzinfo=None, microsecond=int(micros))
    return min(max(at, before), after)


def job_statuses(conn: redis.Redis, job_ids: list[str]) -> dict[str, str | None]:
    """RQ status of each job id in one round trip (None: the job is not in Redis)."""
    if not job_ids:
        return {}
    with conn.pipeline(transaction=False) as pipe:
        for jid in job_ids:
            pipe.hget(f"rq:job:{jid}", "status")
        values = pipe.execute()
    return {jid: (v.decode() if isinstance(v, bytes) else v) for jid, v in zip(job_ids, values, strict=False)}
