"""``python -m tests.rig ARGS``: the ``hookscheduler`` command, with the rig this environment asks for."""

from __future__ import annotations

import sys

from . import install

if __name__ == "__main__":
    install()
    from hookscheduler.cli import main

    sys.exit(main())
