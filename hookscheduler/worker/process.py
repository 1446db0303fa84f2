"""RQ workers for a bench: ``hookscheduler worker`` and ``hookscheduler worker-pool`` (Frappe's ``bench worker``).

The workers are RQ's own (``Worker``, ``RoundRobinWorker``, ``RandomWorker``, ``WorkerPool``): a forked work
horse per job, RQ's timeouts, heartbeats and registries. What this module adds is the bench around them:

* the queues are the bench's namespaced queues (``<bench_id>:<queue>``), all of them by default in priority
  order ``short, default, long``, then the custom queues of ``workers``, or those chosen with ``--queue``
  (validated, in the order given);
* ``$HOOKSCHEDULER_BENCH`` is exported, so work horses (and a pool's workers) find the bench wherever they
  were started from;
* before it forks, the worker warms what every horse needs (site settings, the apps' job modules) so that a
  horse does no importing and no config reading; it never uses a database connection itself: on PostgreSQL it
  keeps one warm connection that it lends to each horse and takes back when the horse left it clean, and on
  SQLite it holds the database file open (:class:`hookscheduler.worker.warm.WarmDatabaseWorker`);
* a worker whose registration Redis lost (a restart without persistence) registers again at its next heartbeat.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue, worker_registration
from rq.callbacks import execute_failure_callback
from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.timeouts import BaseDeathPenalty, JobTimeoutException, UnixSignalDeathPenalty
from rq.utils import now
from rq.worker import DequeueStrategy, RandomWorker, RoundRobinWorker, Worker
from rq.worker_pool import WorkerPool

from ..background import events
from ..broker.connection import check_redis, redis_for
from ..broker.keys import queue_name
from ..config import BUILTIN_QUEUES, Bench, Site, load_bench, load_sites
from ..declare.hooks import load_job_specs
from ..exceptions import HookError, QueueNotFound, one_line, shown
from ..schedule.send import RUNNER
from ..security.redact import redact_failure
from ..store.models import utcnow
from . import runner
from .warm import WarmDatabaseWorker

log = logging.getLogger(__name__)

#: Frappe's worker log format
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LOG_FORMAT = "%(asctime)s,%(msecs)03d %(message)s"
STRATEGIES = ("default", "round_robin", "random")


def exit_description(status: int | None) -> str:
    """Pure: how a work horse ended, from the wait status RQ hands over (``waitpid``'s, where exit code 1 reads
    256): ``exit code 1``, ``killed by signal 9, SIGKILL``. None: RQ's monitor killed the horse itself after
    the job's timeout plus a minute without an end, and discarded the status."""
    if status is None:
        return "killed by the worker past the job's timeout"
    try:
        code = os.waitstatus_to_exitcode(status)
    except ValueError:
        return f"wait status {status}"
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by signal {-code}, {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def death_fields(func_name: str | None, kwargs: Mapping[str, Any], meta: Mapping[str, Any],
                 status: int | None, error: str | None = None) -> dict[str, Any]:
    """Pure: the event fields of a job whose horse died, as the runner fills them for a run that ends itself
    (:mod:`hookscheduler.background.events`): a scheduled run's trigger and slot are its arguments (and its
    meta's), a background job's kind and trigger are fixed (``background``, ``enqueue``). ``error``: the cause
    when the worker knows it better than the wait status says (it killed the horse itself, in a cold
    shutdown)."""
    ours = meta.get("hookscheduler")
    ours = ours if isinstance(ours, Mapping) else {}
    scheduled = func_name == RUNNER
    slot = (kwargs.get("slot") or ours.get("slot")) if scheduled else None
    fields: dict[str, Any] = {
        "job_name": kwargs.get("job_name") or ours.get("job"), "method": kwargs.get("method") or ours.get("method"),
        "kind": "scheduled" if scheduled else "background",
        "trigger": (kwargs.get("trigger") or ours.get("trigger")) if scheduled else "enqueue",
        "slot": datetime.fromisoformat(str(slot)) if slot else None,
        "error": error or f"work horse died ({exit_description(status)})",
    }
    if status is None and error is None:
        fields["timed_out"] = True
    return fields


class WorkHorseDied(Exception):
    """What a job's ``on_failure`` callback receives when its work horse died without reporting (killed, out of
    memory, ``os._exit``, a crash); a horse the worker killed past the job's timeout gives a
    :class:`~rq.timeouts.JobTimeoutException` instead."""


def death_reason(status: int | None, timeout: Any) -> str:
    """Pure: the ledger's reason for a run whose work horse died: how it ended, or, for a horse the worker
    killed (RQ's monitor does so once the job ran its timeout plus a minute: the job caught its timeout and ran
    on, or was stuck where the timeout could not reach it), that it timed out."""
    if status is None:
        return (f"timed out: work horse killed by the worker past the job's timeout ({timeout} seconds, plus RQ's "
                "minute of grace; the timeout did not end the job)")
    return f"work horse died ({exit_description(status)})"


def cold_shutdown_reason(signum: int) -> str:
    """Pure: the ledger's reason (and the failure callback's message) for a run whose horse the worker killed in
    a cold shutdown: a second stop signal while the job ran."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"killed by the worker's cold shutdown (second {name})"


#: The worker's exit status after a cold shutdown that killed a job (a supervisor must see that a job was lost);
#: a cold shutdown with no job running exits 0, as a warm one does.
COLD_KILL_STATUS = 1


class _HorseDeathEvents:
    """When a work horse dies without reporting (killed, out of memory, ``os._exit``, or killed by the worker
    past the job's timeout), the worker does what the horse could not: it publishes a ``failed`` event (a page
    watching the job should not wait for ever) with the fields the runner's own events have, calls the job's
    ``on_failure`` callback (as RQ does for a job that raised), and settles a scheduled run's ledger row
    ``failed`` with the cause, the time of the death and the duration (else the sweep would, later, knowing only
    that RQ says failed).

    A cold shutdown (a second SIGTERM or Ctrl-C while a job runs) is such a death too: RQ kills the horse and
    exits at once, leaving the job ``started`` in RQ and in the ledger (the scheduler then skipped the job's
    next slots as "still running" until the sweep found the worker gone). Here the worker first records the job
    failed, in RQ's failed registry and in the ledger, with the cold shutdown as the cause, then exits with
    :data:`COLD_KILL_STATUS`."""

    _death: tuple[Job, str, str, Any] | None = None
    _cold_kill: int | None = None  # the signal of a cold shutdown that killed the horse

    def monitor_work_horse(self, job: Job, queue: Queue, execution: Any) -> None:
        self._death = self._cold_kill = None
        try:
            super().monitor_work_horse(job, queue, execution)  # type: ignore[misc]
        except SystemExit:
            if self._cold_kill is None:
                raise
            self._fail_cold_killed(job, queue, execution, self._cold_kill)
            raise SystemExit(COLD_KILL_STATUS) from None
        finally:
            # after the lent connection was taken back (WarmDatabaseWorker): the dead horse's session is gone
            death, self._death = self._death, None
            if death is not None:
                try:
                    runner.record_death(*death)
                except Exception as exc:  # the site no longer loads: the sweep settles the row later
                    log.error("could not record the death of the work horse of job %s: %s", death[0].id,
                              one_line(exc))

    def request_force_stop(self, signum: int, frame: Any) -> None:
        """RQ's cold shutdown (it kills the horse, waits for it and raises SystemExit), noting whether a horse
        was killed: :meth:`monitor_work_horse` then records its job."""
        horse = self.horse_pid  # type: ignore[attr-defined]
        try:
            super().request_force_stop(signum, frame)  # type: ignore[misc]
        except SystemExit:
            if horse:
                self._cold_kill = signum
                # the worker is on its way out: a third signal must not cut short the recording of the job
                # (SIGKILL still ends it at once)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise

    def _fail_cold_killed(self, job: Job, queue: Queue, execution: Any, signum: int) -> None:
        """A job whose horse the cold shutdown killed: failed in RQ (its failed registry, with the cause as its
        traceback), announced, its ``on_failure`` called, its ledger row settled (by the caller's ``finally``).
        Nothing when the horse had recorded an outcome before it was killed."""
        try:
            if job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED):
                return
        except InvalidJobOperation:  # finished, and its result already expired
            return
        reason = cold_shutdown_reason(signum)
        job.ended_at = now()
        log.warning("worker %s: job %s %s; recorded failed", self.name, job.id, reason)  # type: ignore[attr-defined]
        try:
            self._announce_death(job, None, reason)
            self.handle_job_failure(job, queue=queue, execution=execution,  # type: ignore[attr-defined]
                                    exc_string=f"hookscheduler.worker.process.WorkHorseDied: work horse {reason}; "
                                               "the job did not finish\n")
        except Exception as exc:  # Redis went away: the sweep settles the run once the worker is gone
            log.error("could not record job %s failed after the cold shutdown: %s", job.id, one_line(exc))

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int | None, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[misc]
        self._announce_death(job, ret_val)

    def _announce_death(self, job: Job, status: int | None, cause: str | None = None) -> None:
        """The ``failed`` event, the ``on_failure`` callback and (for a scheduled run) the ledger's death to
        record, for a horse that died with ``status`` (``cause``: what killed it, when the worker knows)."""
        at = utcnow()
        try:
            kwargs = job.kwargs or {}
            meta = job.meta if isinstance(job.meta, dict) else {}
            func_name = job.func_name
        except Exception:
            return
        self._fail_callback(job, status, cause)
        bench_id, _, queue = str(job.origin).rpartition(":")
        ours = meta.get("hookscheduler")
        site = kwargs.get("site") or (ours.get("site") if isinstance(ours, dict) else None)
        if not (site and bench_id):
            return
        fields = death_fields(func_name, kwargs, meta, status, cause)
        if job.started_at is not None and job.ended_at is not None:
            fields["duration"] = round(max(0.0, (job.ended_at - job.started_at).total_seconds()), 6)
        # the worker's own name: RQ no longer has it on the job by now
        events.publish(job.connection, bench_id, str(site), "failed", job_id=job.id, queue=queue,
                       worker=str(self.name), **fields)  # type: ignore[attr-defined]
        if func_name == RUNNER:
            self._death = (job, str(site), cause or death_reason(status, job.timeout), at)

    def _fail_callback(self, job: Job, status: int | None, cause: str | None = None) -> None:
        """The job's ``on_failure`` callback, under its own timeout, as RQ calls it for a job that raised. One
        that fails is logged: the job's failure is recorded all the same."""
        exc: Exception = (WorkHorseDied(cause) if cause is not None
                          else JobTimeoutException(death_reason(status, job.timeout)) if status is None
                          else WorkHorseDied(death_reason(status, job.timeout)))
        try:
            execute_failure_callback(job, self.death_penalty_class, type(exc), exc, None)  # type: ignore[attr-defined]
        except Exception as err:
            log.warning("the on_failure callback of job %s failed: %s", job.id, one_line(err))


class _NotedDeathPenalty(UnixSignalDeathPenalty):
    """RQ's death penalty (``SIGALRM``), which also notes in the horse that the job's timeout fired: a job that
    catches the timeout and returns is then failed all the same (:func:`hookscheduler.worker.runner.note_timeout`)."""

    def handle_death_penalty(self, signum: int, frame: Any) -> None:
        if isinstance(self._exception, type) and issubclass(self._exception, JobTimeoutException):
            runner.note_timeout()
        super().handle_death_penalty(signum, frame)  # type: ignore[no-untyped-call]


class _NotedTimeouts:
    death_penalty_class: type[BaseDeathPenalty] = _NotedDeathPenalty


class _RedactedFailure:
    """RQ keeps its own copy of a failed job's traceback in Redis (``rq-jobs show``, the dashboard, any RQ
    tool reads it): store it redacted and bounded, as the ledger's copy."""

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "",
                           execution: Any = None) -> None:
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,  # type: ignore[misc]
                                   exc_string=redact_failure(exc_string or ""), execution=execution)


class _PromptUnsubscribe:
    """Stop the worker's command listener (RQ's pub/sub thread) in about a second, not a minute.

    RQ's listener thread waits up to 60 s for a message, and redis-py 8's ``PubSubWorkerThread.stop()`` joins
    it without a bound. When the reply to the unsubscribe reached the thread before ``stop()`` cleared its
    flag, the thread went back to a 60-second wait, and the worker's exit waited with it (a ``worker --burst``
    on an empty queue hung in about a third of runs; ``start`` then fell back to a cold shutdown). A listener
    that wakes every :data:`LISTEN_WAKE` seconds bounds that wait whatever the redis-py version does; the
    cost is one idle wake-up a second in a thread that does nothing else.

    And the race itself is gone (:meth:`unsubscribe`): the flag is cleared *before* the unsubscribe is sent, so
    the reply that wakes the thread always finds it stopping (a ``worker --burst`` that found its queues empty
    still lost the race, and that second, in most runs). The listener may also wake on its own between the
    two and close the connection before the unsubscribe is written (a broken pipe, seen once under load): that
    is the same outcome, and the stop goes on.
    """

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)  # type: ignore[attr-defined]
        self.pubsub = self.connection.pubsub()  # type: ignore[attr-defined]
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})  # type: ignore[attr-defined]
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=LISTEN_WAKE, daemon=True, exception_handler=self._pubsub_exception_handler)  # type: ignore[attr-defined]

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread  # type: ignore[has-type]
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)  # type: ignore[attr-defined]
        # the flag first (redis-py 8's stop() takes a bound on its join, older ones only clear the flag)
        if "timeout" in inspect.signature(thread.stop).parameters:
            thread.stop(timeout=0)
        else:
            thread.stop()
        try:
            self.pubsub.unsubscribe()  # its reply wakes the listener, which now sees the flag and ends
        except (redis.ConnectionError, redis.TimeoutError):
            # the listener woke on its own (a message, its subscribe reply) between the flag and this send, saw
            # the flag and closed the connection itself (redis-py 8's run loop does): the channel is already left
            pass
        finally:
            thread.join(timeout=LISTEN_WAKE + 1)
            self.pubsub.close()

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """The listener lost Redis: wait and let redis-py reconnect, backing off (1, 2, 4 ... 60 s) and saying so
        once per outage. RQ's own handler logged an ERROR and waited 2 s at each attempt, whatever it said: a
        minute without Redis was some 30 lines from this thread alone, beside the job loop's own. Anything but
        a lost connection ends the listener, as RQ's does."""
        name, say = self.name, self.log  # type: ignore[attr-defined]
        if not isinstance(exc, redis.exceptions.ConnectionError):
            say.warning("Worker %s: command listener exiting on %s", name, exc)
            raise exc
        at = time.monotonic()
        delay = getattr(self, "_listen_delay", 0.0)
        if not delay or at - getattr(self, "_listen_failed_at", 0.0) > 2 * delay + LISTEN_WAKE + 5:
            delay = 1.0  # a new outage (the last failure is long past): say it once
            say.error("Worker %s: command listener lost Redis (%s); retrying with back-off, up to %d s apart",
                      name, one_line(exc), LISTEN_BACKOFF_MAX)
        else:
            delay = min(delay * 2, LISTEN_BACKOFF_MAX)
            say.debug("Worker %s: command listener still without Redis; next try in %.0f s", name, delay)
        self._listen_delay = delay
        time.sleep(delay)
        self._listen_failed_at = time.monotonic()


#: Seconds the command listener waits for a message before it checks whether it should stop.
LISTEN_WAKE = 1.0
#: The longest wait between two attempts of the command listener to reach a Redis it lost.
LISTEN_BACKOFF_MAX = 60


class _Reregistered:
    """A live worker that finds its registration gone registers again, at its next heartbeat.

    RQ lists workers through the sets ``rq:workers`` and ``rq:workers:<queue>`` and describes each with the hash
    ``rq:worker:<name>``, written once at birth. After a Redis restart without persistence (or a worker frozen past
    its TTL, whose hash expired and whose set entry RQ's listing then dropped), RQ's heartbeat writes the hash
    back with its ``last_heartbeat`` alone: the worker runs jobs but ``workers list``, ``doctor`` and the
    dashboard count none, and ``doctor`` says to start one. So each heartbeat made on its own (the idle loop's,
    the one after each job) goes out in one pipeline with a check of the worker's membership, and a worker that
    is no longer a member, or whose hash had to be created, writes its hash (birth, queues, pid, host, state) and
    set entries again with RQ's own code (:func:`rq.worker_registration.register`). A worker in a long job checks
    at each of RQ's job-monitoring heartbeats. The cost: none per heartbeat (the heartbeat's three writes now share
    one round trip with the check), one round trip per job-monitoring interval.
    """

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:  # part of RQ's own pipeline, which it executes itself
            super().heartbeat(timeout, pipeline)  # type: ignore[misc]
            return
        with self.connection.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
            super().heartbeat(timeout, pipe)  # type: ignore[misc]
            pipe.sismember(self.redis_workers_keys, self.key)  # type: ignore[attr-defined]
            replies = pipe.execute()
        created, member = replies[0], replies[-1]  # HSET says 1 when it made the hash's field afresh
        if created or not member:
            self.register_again(timeout or self.worker_ttl + 60)  # type: ignore[attr-defined]

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        super().maintain_heartbeats(job, execution)  # type: ignore[misc]
        if not self.connection.sismember(self.redis_workers_keys, self.key):  # type: ignore[attr-defined]
            self.register_again(self.job_monitoring_interval + 60)  # type: ignore[attr-defined]

    def register_again(self, ttl: int) -> None:
        """Write the worker's hash and set entries as RQ's ``register_birth`` did, keeping its birth date (RQ's
        own refuses a name whose hash exists, which the heartbeat just recreated)."""
        log.warning("worker %s: its registration is gone from Redis (a restart?); registering again",
                    self.name)  # type: ignore[attr-defined]
        with self.connection.pipeline() as pipe:  # type: ignore[attr-defined]
            pipe.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})  # type: ignore[attr-defined]
            worker_registration.register(self, pipe)  # type: ignore[arg-type]
            pipe.expire(self.key, ttl)  # type: ignore[attr-defined]
            pipe.execute()


class _NoRQScheduler:
    """Never RQ's scheduler: hookscheduler does its own scheduling, and sends nothing through RQ's (no
    ``enqueue_in`` / ``enqueue_at``, no retries with intervals). RQ's ``WorkerPool`` starts its workers with
    ``with_scheduler=True`` whatever it is told: each pool worker that won RQ's scheduler lock forked a scheduler
    process, which outlived its worker (an orphan of init, holding ``rq:scheduler-lock:*``) when the worker
    died. So every worker here runs without it, as ``hookscheduler worker`` always did."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        if len(args) > _WITH_SCHEDULER:
            args = (*args[:_WITH_SCHEDULER], False, *args[_WITH_SCHEDULER + 1:])
        else:
            kwargs["with_scheduler"] = False
        return bool(super().work(*args, **kwargs))  # type: ignore[misc]


#: The position of ``with_scheduler`` among the arguments of RQ's ``Worker.work``.
_WITH_SCHEDULER = 6


class HookWorker(_NoRQScheduler, _HorseDeathEvents, _NotedTimeouts, _RedactedFailure, _PromptUnsubscribe,
                 _Reregistered, WarmDatabaseWorker, Worker):
    """RQ's Worker (queues in priority order)."""


class HookRoundRobinWorker(_NoRQScheduler, _HorseDeathEvents, _NotedTimeouts, _RedactedFailure,
                           _PromptUnsubscribe, _Reregistered, WarmDatabaseWorker, RoundRobinWorker):
    """RQ's RoundRobinWorker (after a job from one queue, the next queue comes first)."""


class HookRandomWorker(_NoRQScheduler, _HorseDeathEvents, _NotedTimeouts, _RedactedFailure, _PromptUnsubscribe,
                       _Reregistered, WarmDatabaseWorker, RandomWorker):
    """RQ's RandomWorker (queues shuffled after every job)."""


WORKER_CLASSES: dict[str, type[Worker]] = {
    "default": HookWorker, "round_robin": HookRoundRobinWorker, "random": HookRandomWorker,
}


@dataclass
class WorkerSetup:
    """A bench ready for workers: its sites, its Redis connection and the chosen queues."""

    bench: Bench
    sites: list[Site]
    connection: redis.Redis
    queues: list[str]  # short names, in priority order

    @property
    def queue_names(self) -> list[str]:
        return [queue_name(self.bench.bench_id, q) for q in self.queues]


def bench_queues(sites: list[Site]) -> dict[str, int]:
    """Every queue of the bench in priority order (built-ins, then custom queues as configured)."""
    out = dict(BUILTIN_QUEUES)
    for site in sites:
        for name, timeout in site.queues.items():
            out.setdefault(name, timeout)
    return out


def choose_queues(option: str | None, available: Mapping[str, int]) -> list[str]:
    """``--queue a,b`` validated (QueueNotFound lists the valid ones); None means every queue."""
    if option is None:
        return list(available)
    chosen = [q.strip() for q in option.split(",") if q.strip()]
    unknown = [q for q in chosen if q not in available]
    if unknown or not chosen:
        raise QueueNotFound(f"unknown queue {', '.join(map(shown, unknown)) or shown(option)}; valid queues: "
                            f"{', '.join(available)} (custom queues are declared under 'workers' in "
                            "common_site_config.json)")
    return list(dict.fromkeys(chosen))


def set_up(bench: str | None = None, site: str | None = None, queue: str | None = None,
            rq_username: str | None = None, rq_password: str | None = None) -> WorkerSetup:
    """Load the bench, check Redis, export ``$HOOKSCHEDULER_BENCH`` and warm the caches horses inherit."""
    b = load_bench(bench)
    os.environ["HOOKSCHEDULER_BENCH"] = str(b.path)
    # The jobs this worker runs open the site's Redis themselves (enqueue, retention): credentials given on the
    # command line must reach them too, so they become this process's (and its horses') environment overrides.
    if rq_username:
        os.environ["HOOKSCHEDULER_RQ_USERNAME"] = rq_username
    if rq_password:
        os.environ["HOOKSCHEDULER_RQ_PASSWORD"] = rq_password
    sites = load_sites(b, site)
    queues = choose_queues(queue, bench_queues(sites))
    conn = redis_for(sites[0], rq_username, rq_password)
    check_redis(conn, sites[0].redis_url)
    runner.preload([s.name for s in sites])
    _import_app_jobs(b, bench_queues(sites))
    # What the parent holds now is shared with every horse: keep the horses' garbage collector off it, or
    # each collection in a horse writes to (and so copies) every page of it.
    gc.collect()
    gc.freeze()
    return WorkerSetup(b, sites, conn, queues)


def _import_app_jobs(bench: Bench, queues: Mapping[str, int]) -> None:
    """Import every app's hooks and scheduled methods once, in the parent: each horse then finds them in
    ``sys.modules`` instead of importing them again (a horse's imports die with it)."""
    try:
        load_job_specs(bench, queues, fresh=False, builtin=True)
    except HookError as exc:  # every job whose method imports still runs; each problem is logged, one a line
        log.warning("some scheduled jobs do not load (%d problem(s) in scheduler_events):\n%s",
                    len(exc.problems), "\n".join(str(exc).splitlines()[1:]))  # every problem, as migrate lists them
    # The stored entry points RQ resolves in each horse: the built-in maintenance job and every run's (a horse
    # that found `hookscheduler.runner` missing from sys.modules imported it afresh for each job).
    for path in ("hookscheduler.retention", "hookscheduler.runner"):
        importlib.import_module(path)


def worker_name() -> str:
    """Readable and unique: host, pid and a short random part (RQ refuses two live workers of one name)."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def start_worker(queue: str | None = None, quiet: bool = False, rq_username: str | None = None,
                 rq_password: str | None = None, burst: bool = False, strategy: str = "default",
                 bench: str | None = None, site: str | None = None, max_jobs: int | None = None) -> bool:
    """Run one RQ worker over the bench's queues until stopped (or, with ``burst``, until they are empty).
    Returns whether it processed any job."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    setup = set_up(bench, site, queue, rq_username, rq_password)
    queues = [Queue(name, connection=setup.connection) for name in setup.queue_names]
    worker = WORKER_CLASSES[strategy](queues, connection=setup.connection, name=worker_name())
    return bool(worker.work(burst=burst, logging_level="WARNING" if quiet else "INFO", date_format=DATE_FORMAT,
                            log_format=LOG_FORMAT, max_jobs=max_jobs, with_scheduler=False,
                            dequeue_strategy=DequeueStrategy(strategy)))


def start_worker_pool(queue: str | None = None, num_workers: int = 2, quiet: bool = False, burst: bool = False,
                      bench: str | None = None, site: str | None = None) -> None:
    """Run RQ's WorkerPool: ``num_workers`` workers over the bench's queues, respawned if one dies."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    setup = set_up(bench, site, queue)
    pool = WorkerPool(setup.queue_names, connection=setup.connection, num_workers=num_workers,
                      worker_class=HookWorker)
    pool.start(burst=burst, logging_level="WARNING" if quiet else "INFO")
