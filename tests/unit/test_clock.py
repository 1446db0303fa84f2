"""The clock seam (hookscheduler.timing.clock): the wall clock in production, a shared simulated clock when the
test rig (tests/rig) installs one in a process before it imports the rest of hookscheduler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hookscheduler.store import models
from hookscheduler.timing import clock
from tests.rig import CLOCK_ENV
from tests.rig.simclock import MAX_SIM_SLEEP, SimClock, SimSpec, write_spec

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys, time
import tests.rig
tests.rig.install()
from hookscheduler.timing import clock
from hookscheduler.store import models
from hookscheduler.schedule import loop, send
print(json.dumps({"now": models.utcnow().isoformat(), "real": clock.real_seconds(600.0),
                  "rq": clock.rq_timeout(300), "same": models.utcnow is clock.utcnow}))
"""


def _probe(value: str, env_name: str = CLOCK_ENV) -> dict:
    env = {**os.environ, env_name: value, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                         cwd=str(ROOT))
    return json.loads(out.stdout)


def test_default_is_the_wall_clock_with_no_indirection():
    assert clock.SIM is None
    assert models.utcnow is clock.utcnow
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    assert before <= models.utcnow() <= datetime.now(timezone.utc).replace(tzinfo=None)
    assert clock.real_seconds(12.5) == 12.5 and clock.rq_timeout(300) == 300


def test_production_reads_no_environment_for_its_clock():
    """The old switch, set in a process's environment, changes nothing: only the rig's install does."""
    got = _probe(json.dumps({"sim": 0, "real": time.time(), "rate": 10}), env_name="HOOKSCHEDULER_SIMCLOCK")
    assert datetime.fromisoformat(got["now"]).year >= 2024 and got["real"] == 600.0 and got["rq"] == 300


def test_a_shared_file_drives_every_process_and_can_step_backwards(tmp_path: Path):
    path = tmp_path / "clock.json"
    start = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc).timestamp()
    write_spec(str(path), SimSpec(sim=start, real=time.time(), rate=100.0))
    got = _probe(str(path))
    now = datetime.fromisoformat(got["now"])
    assert datetime(2026, 1, 5, 10, 0) <= now < datetime(2026, 1, 5, 11, 0)  # 100x: well under an hour
    assert got["real"] == MAX_SIM_SLEEP  # 600 s at 100x is 6 s, capped: a sleeper sees a new clock
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


def test_installing_after_hookscheduler_was_imported_is_refused():
    with pytest.raises(RuntimeError, match="install the clock before importing the rest of hookscheduler"):
        clock.install(SimClock(json.dumps({"sim": 0, "real": 0, "rate": 1})))
    assert clock.SIM is None and models.utcnow is clock.utcnow


def test_a_bad_spec_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="rate must be > 0"):
        SimSpec.parse(json.dumps({"sim": 0, "real": 0, "rate": 0}))
