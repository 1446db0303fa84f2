"""The contract between the benchmark runner and the workload modules.

Each workload is a module ``benchmarks/wN_<name>.py`` exposing::

    TITLE: str                                   # e.g. "4. Fire latency"
    def run(cfg: BenchConfig) -> list[Measurement]

The runner (``python -m benchmarks``) discovers the modules, calls ``run`` and renders every
``Measurement`` as one table row (median, min-max over ``values``) in the terminal and in
``benchmarks/RESULTS.md``. A workload repeats its measurement ``cfg.runs`` times itself, so that the
ratios it reports (against raw RQ, RQ's ``CronScheduler``) come from the same run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchConfig:
    """What every workload gets from the runner."""

    quick: bool  # quick mode: small N, few seconds per workload; full mode: the N
    runs: int  # repetitions per measurement (>= 5 in full mode)
    redis_url: str  # a Redis db index reserved for benchmarks; workloads use their own key prefixes
    pg_dsn: str  # a PostgreSQL server URL; workloads create (and drop) their own databases
    workdir: Path  # scratch directory for benches, SQLite files, logs
    smoke: bool = False  # the test suite's mode: tiny N and windows, one run; proves a workload runs, measures nothing

    def pick(self, quick: Any, full: Any, smoke: Any) -> Any:
        """The value of a size or window for this mode."""
        return smoke if self.smoke else quick if self.quick else full


@dataclass
class Measurement:
    """One row of the results table."""

    workload: str  # "1. Tick cost"
    case: str  # "sqlite, N=100,000, none due"
    metric: str  # "ms/pass"
    values: list[float] = field(default_factory=list)
    target: str = ""  # the target, human readable ("<= 1 ms")
    ok: bool | None = None  # target met? None when the row has no target
    note: str = ""  # ratios, counts, why a target is missed

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")
