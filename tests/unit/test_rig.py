"""The test rig's seams: production runs no hook at a failpoint; the rig installs one only for the points it
was asked for, and refuses a name that is not a failpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hookscheduler.schedule import _faults

ROOT = Path(__file__).resolve().parents[2]


def test_a_failpoint_without_a_hook_does_nothing():
    assert _faults._hook is None
    for name in _faults.POINTS:
        _faults.failpoint(name)  # still alive


def test_an_installed_hook_sees_every_point_and_can_be_removed():
    seen: list[str] = []
    _faults.install(seen.append)
    try:
        for name in _faults.POINTS:
            _faults.failpoint(name)
    finally:
        _faults.install(None)
    assert seen == list(_faults.POINTS)
    _faults.failpoint("after_send")
    assert len(seen) == len(_faults.POINTS)


def _rig(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import tests.rig; tests.rig.install(); " + code],
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=str(ROOT), capture_output=True,
                          text=True, timeout=60)


def test_the_rig_kills_the_process_at_the_point_asked_for_only():
    code = ("from hookscheduler.schedule._faults import failpoint; failpoint('before_claim'); print('alive'); "
            "failpoint('after_commit'); print('not reached')")
    proc = _rig({"HS_RIG_FAILPOINTS": "after_commit"}, code)
    assert proc.returncode == -9 and proc.stdout.split() == ["alive"]


def test_an_unknown_failpoint_is_a_one_line_error_naming_the_known_ones():
    proc = _rig({"HS_RIG_FAILPOINTS": "after_claim,afterclaim"}, "print('ran')")
    assert proc.returncode == 1 and "ran" not in proc.stdout
    assert proc.stderr.strip() == ("HS_RIG_FAILPOINTS: unknown failpoint(s) afterclaim; known: before_claim, "
                                   "after_claim, after_commit, after_send")


@pytest.mark.parametrize("name", ["HOOKSCHEDULER_FAILPOINTS"])
def test_production_reads_no_failpoint_switch_from_its_environment(name):
    code = "from hookscheduler.schedule._faults import failpoint; failpoint('after_claim'); print('alive')"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, name: "after_claim"}, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "alive"
