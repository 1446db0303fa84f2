"""The simulated clock a test harness shares between processes: a file every process re-reads when it changes.

Why not libfaketime: it is not installed here, it does not follow ``fork()``-ed RQ work horses reliably, and it
cannot step several running processes' clocks at once. The file holds ``{"sim": S, "real": R, "rate": K}``
(epoch seconds, floats): simulated now = ``S + (time.time() - R) * K``. Rewriting it (atomically, with
:func:`write_spec`) steps every process's clock at once: faster, slower, or backwards (an NTP correction).

A process runs on it once :func:`tests.rig.install` has given a :class:`SimClock` to
:func:`hookscheduler.timing.clock.install`. Simulated seconds become real ones for the loop's sleeps (at most
:data:`MAX_SIM_SLEEP` real seconds each, so a process that went to sleep under one rate wakes up under the next)
and for RQ's job timeouts (the worker kills a run after ``timeout`` simulated seconds); RQ's own bookkeeping
(heartbeats, TTLs) stays in real time.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone

MAX_SIM_SLEEP = 0.1  # real seconds: the longest sleep on a simulated clock (so a changed clock is seen at once)


@dataclass(frozen=True)
class SimSpec:
    """A simulated timeline: at real time ``real`` it was ``sim``; it advances ``rate`` times faster."""

    sim: float
    real: float
    rate: float

    def at(self, real_now: float) -> float:
        return self.sim + (real_now - self.real) * self.rate

    @classmethod
    def parse(cls, text: str) -> SimSpec:
        data = json.loads(text)
        spec = cls(float(data["sim"]), float(data["real"]), float(data.get("rate", 1.0)))
        if not spec.rate > 0:
            raise ValueError(f"simulated clock: rate must be > 0, got {spec.rate}")
        return spec

    def dump(self) -> str:
        return json.dumps({"sim": self.sim, "real": self.real, "rate": self.rate})


class SimClock:
    """A simulated clock: a file (re-read when it changes) or an inline spec (``{"sim": ...}``, fixed)."""

    def __init__(self, value: str) -> None:
        self.path: str | None = None if value.lstrip().startswith("{") else value
        self._key: tuple[int, int] | None = None
        self._spec = SimSpec.parse(value) if self.path is None else self._read()

    def _read(self) -> SimSpec:
        assert self.path is not None
        for _ in range(50):  # a writer replaces the file atomically; a missing file is a moment's race
            try:
                st = os.stat(self.path)
                with open(self.path, encoding="utf-8") as fh:
                    spec = SimSpec.parse(fh.read())
                self._key = (st.st_mtime_ns, st.st_ino)
                return spec
            except (FileNotFoundError, ValueError, KeyError):
                time.sleep(0.01)
        raise RuntimeError(f"simulated clock {self.path}: cannot read the file")

    def spec(self) -> SimSpec:
        if self.path is not None:
            try:
                st = os.stat(self.path)
                if (st.st_mtime_ns, st.st_ino) != self._key:
                    self._spec = self._read()
            except FileNotFoundError:
                pass  # being replaced: keep the last spec
        return self._spec

    def timestamp(self) -> float:
        return self.spec().at(time.time())

    # --- hookscheduler.timing.clock.TimeSource ---------------------------------------------------------
    def utcnow(self) -> datetime:
        """Naive UTC now on the simulated timeline."""
        return datetime.fromtimestamp(self.timestamp(), timezone.utc).replace(tzinfo=None)

    def real_seconds(self, sim_seconds: float) -> float:
        # capped: a sleeping process must notice within a moment when the harness changes the clock
        return min(sim_seconds / self.spec().rate, MAX_SIM_SLEEP)

    def rq_timeout(self, sim_seconds: int) -> int:
        # RQ's timeouts are whole real seconds (SIGALRM): at least one
        return max(1, math.ceil(sim_seconds / self.spec().rate))


def write_spec(path: str, spec: SimSpec) -> None:
    """Atomically publish a new simulated timeline to every process reading ``path``."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(spec.dump())
    os.replace(tmp, path)
