"""The command line imports its modules (and a command's, on first use) with the cyclic collector off, and
leaves it as it found it."""

from __future__ import annotations

import gc
import subprocess
import sys

from hookscheduler._nogc import imports_without_gc

_PROBE = """
import gc
import hookscheduler  # the package (its __version__, for every command): typing and importlib
starts = []
gc.callbacks.append(lambda phase, info: phase == "start" and starts.append(1))
before = len(starts)
import hookscheduler.cli
after_cli = len(starts)
hookscheduler.cli.cli.get_command(None, "migrate")
print(after_cli - before, len(starts) - after_cli, gc.isenabled(), "peewee" in __import__("sys").modules)
"""


def test_the_command_lines_imports_run_no_collection():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout.split()
    # (finding hookscheduler.cli itself may start one or two, before its first line runs; it was about 40)
    assert int(out[0]) <= 3 and out[1:] == ["0", "True", "True"], out


def test_the_collector_is_left_as_it_was():
    assert gc.isenabled()
    with imports_without_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with imports_without_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
