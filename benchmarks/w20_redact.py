"""20. Redaction cost: ``redact()`` on texts of 10 KB to 10 MB, ordinary and adversarial.

A failed job's traceback quotes its exception's message whatever its size, and every copy of it (the ledger,
RQ's failed job, a log line) is redacted. Redaction must stay linear: the patterns of earlier versions
backtracked over long runs of URL-safe characters (10 KB 0.35 s, 40 KB 5.6 s) and held a worker at 100% CPU.
Each row is one text shape at one size; the target is linear time (under 0.5 s per MB).
"""

from __future__ import annotations

import time

from hookscheduler.security.redact import redact

from .common import BenchConfig, Measurement

TITLE = "20. Redaction cost"
W = "20. Redaction"

# each shape is a unit repeated to the size measured
SHAPES = {
    "traceback lines": 'File "/srv/app/tasks.py", line 12, in run: redis://u:pw@h:6379/0 failed\n',
    "URL-safe run": "aZ0-._~+",
    "'://' marks in one word": "a://b:",
    "password= keys": "password='",
}


def run(cfg: BenchConfig) -> list[Measurement]:
    sizes = cfg.pick(quick=[10_000, 1_000_000], full=[10_000, 100_000, 1_000_000, 10_000_000], smoke=[10_000])
    rows = []
    for shape, unit in SHAPES.items():
        for size in sizes:
            text = unit * (size // len(unit) + 1)
            values = []
            for _ in range(cfg.runs):
                started = time.perf_counter()
                redact(text)
                values.append(time.perf_counter() - started)
            row = Measurement(W, f"{shape}, {size / 1e6:g} MB", "s", values, target="< 0.5 s per MB")
            row.ok = row.median <= 0.5 * max(size / 1e6, 0.02)
            rows.append(row)
    return rows
