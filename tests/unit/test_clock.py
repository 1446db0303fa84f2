"""The injectable clock (hookscheduler.timing.clock): the wall clock by default, a shared simulated clock on demand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hookscheduler.store import models
from hookscheduler.timing import clock
from hookscheduler.timing.clock import SimClock, SimSpec, write_spec

PROBE = """
import json, sys, time
from hookscheduler.timing import clock
from hookscheduler.store import models
from hookscheduler.schedule import loop, send
print(json.dumps({"now": models.utcnow().isoformat(), "real": clock.real_seconds(600.0),
                  "rq": clock.rq_timeout(300), "same": models.utcnow is clock.utcnow}))
"""


def _probe(value: str) -> dict:
    env = {**os.environ, clock.ENV: value}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_default_is_the_wall_clock_with_no_indirection():
    assert os.environ.get(clock.ENV) is None and clock.SIM is None
    assert models.utcnow is clock.utcnow
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    assert before <= models.utcnow() <= datetime.now(timezone.utc).replace(tzinfo=None)
    assert clock.real_seconds(12.5) == 12.5 and clock.rq_timeout(300) == 300


def test_a_shared_file_drives_every_process_and_can_step_backwards(tmp_path: Path):
    path = tmp_path / "clock.json"
    start = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc).timestamp()
    write_spec(str(path), SimSpec(sim=start, real=time.time(), rate=100.0))
    got = _probe(str(path))
    now = datetime.fromisoformat(got["now"])
    assert datetime(2026, 1, 5, 10, 0) <= now < datetime(2026, 1, 5, 11, 0)  # 100x: well under an hour
    assert got["real"] == clock.MAX_SIM_SLEEP  # 600 s at 100x is 6 s, capped: a sleeper sees a new clock
    assert got["rq"] == 3 and got["same"] is True
    # an NTP-style correction: the same file, rewritten, moves a running reader's clock back
    reader = SimClock(str(path))
    first = reader.utcnow()
    write_spec(str(path), SimSpec(sim=start - 600, real=time.time(), rate=100.0))
    assert (first - reader.utcnow()).total_seconds() > 500


def test_inline_spec_and_minimum_rq_timeout():
    spec = json.dumps({"sim": 0, "real": time.time(), "rate": 10000})
    got = _probe(spec)
    assert got["rq"] == 1  # whole real seconds, at least one
    assert datetime.fromisoformat(got["now"]).year == 1970
