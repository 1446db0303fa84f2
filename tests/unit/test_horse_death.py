"""What the worker announces for a job whose work horse died: the job's own fields, and how the horse ended."""

from __future__ import annotations

import os
import signal
from datetime import datetime

from hookscheduler.schedule.send import RUNNER
from hookscheduler.worker.process import death_fields, death_reason, exit_description


def test_an_exit_is_told_by_its_code_and_a_kill_by_its_signal_not_by_the_raw_wait_status():
    assert exit_description(256) == "exit code 1"  # waitpid's status of exit(1)
    assert exit_description(3 << 8) == "exit code 3"
    assert exit_description(signal.SIGKILL) == "killed by signal 9, SIGKILL"
    assert exit_description(signal.SIGSEGV | 0x80) == "killed by signal 11, SIGSEGV"  # with a core dump
    assert exit_description(None) == "killed by the worker past the job's timeout"
    assert os.waitstatus_to_exitcode(256) == 1


def test_a_scheduled_runs_fields_come_from_its_arguments_and_a_background_jobs_are_fixed():
    kwargs = {"site": "s", "job_name": "app.tasks.nightly", "method": "app.tasks.nightly",
              "slot": "2026-01-05T11:00:00", "trigger": "catch-up"}
    meta = {"hookscheduler": {"site": "s", "job": "app.tasks.nightly", "trigger": "catch-up",
                              "slot": "2026-01-05T11:00:00"}}
    assert death_fields(RUNNER, kwargs, meta, 256) == {
        "job_name": "app.tasks.nightly", "method": "app.tasks.nightly", "kind": "scheduled", "trigger": "catch-up",
        "slot": datetime(2026, 1, 5, 11, 0), "error": "work horse died (exit code 1)"}
    background = death_fields("hookscheduler.runner.execute_job",
                              {"site": "s", "method": "app.tasks.add", "job_name": "adding", "kwargs": {}},
                              {"hookscheduler": {"site": "s", "job": "adding", "method": "app.tasks.add"}}, None)
    assert (background["kind"], background["trigger"], background["slot"], background["job_name"]) == (
        "background", "enqueue", None, "adding")
    assert background["timed_out"] is True


def test_the_ledger_reason_of_a_dead_horse_says_how_it_ended_or_that_it_timed_out():
    assert death_reason(signal.SIGKILL, 60) == "work horse died (killed by signal 9, SIGKILL)"
    assert death_reason(5 << 8, 60) == "work horse died (exit code 5)"
    assert death_reason(None, 2).startswith("timed out: work horse killed by the worker past the job's timeout (2 ")
