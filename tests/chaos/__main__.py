"""The long chaos run: ``python -m tests.chaos --minutes 30 --seed 7 [--db postgres|sqlite|both]``.

The simulated clock advances ``--rate`` times faster than real time (default: one simulated week per 10 real
minutes); faults arrive every ``--fault-gap`` real seconds on average. Prints the oracle's report per database
and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .harness import Config, Harness
from .oracle import check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.chaos")
    ap.add_argument("--minutes", type=float, default=30.0, help="real minutes per database")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", choices=("postgres", "sqlite", "both"), default="postgres")
    ap.add_argument("--rate", type=float, default=1008.0, help="simulated seconds per real second")
    ap.add_argument("--fault-gap", type=float, default=3.0, help="mean real seconds between faults")
    ap.add_argument("--tick", type=int, default=600)
    ap.add_argument("--light", action="store_true", help="the light catalog of the bounded run")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the run folder (logs, database, task output)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--without", default="", metavar="KIND,KIND",
                    help="fault kinds left out of the catalog (e.g. clock_ahead), to tell the faults' effects apart")
    args = ap.parse_args(argv)
    kinds = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    ok = True
    figures = {}
    for kind in kinds:
        sim_days = args.minutes * 60 * args.rate / 86400
        cfg = Config(db=kind, seed=args.seed, schedulers=3 if kind == "postgres" else 2,
                     workers=3 if kind == "postgres" else 2, sim_days=sim_days, rate=args.rate, tick=args.tick,
                     fault_gap=args.fault_gap, light=args.light, settle=min(60.0, args.minutes * 6), keep=args.keep,
                     workdir=args.workdir / kind if args.workdir else None,
                     without=frozenset(k.strip() for k in args.without.split(",") if k.strip()))
        h = Harness(cfg)
        try:
            record = h.run()
            report = check(record)
        finally:
            h.cleanup()
        print(f"[{kind}, seed {args.seed}]\n{report.text()}", flush=True)
        figures[kind] = {k: v for k, v in vars(report).items() if k != "anomalies"} | {
            "anomalies": report.anomalies[:100]}
        ok = ok and report.ok
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
