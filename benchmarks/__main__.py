"""Run the benchmarks: ``python -m benchmarks [--quick|--full] [--only 1,3] [--runs N]``.

Discovers the workload modules ``benchmarks/wN_<name>.py``, runs the selected ones (one that raises becomes an
error row; the others still run), prints a table and records the results: raw figures in
``benchmarks/results.json`` (merged per workload, so a run of some workloads keeps the others' previous rows)
and ``benchmarks/RESULTS.md`` rendered from it, with the machine, versions, load average, date and mode.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from .common import BenchConfig, Measurement

HERE = Path(__file__).resolve().parent
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"  # a db index reserved for benchmarks
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"  # used to create and drop per-workload databases
_WORKLOAD = re.compile(r"^w(\d+)_\w+$")


def discover() -> dict[int, str]:
    """Workload number -> module name, from the files ``benchmarks/wN_<name>.py``."""
    found: dict[int, str] = {}
    for path in sorted(HERE.glob("w*_*.py")):
        m = _WORKLOAD.match(path.stem)
        if m:
            found[int(m.group(1))] = path.stem
    return dict(sorted(found.items()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small N, about a minute overall (the default)")
    mode.add_argument("--full", action="store_true", help="the issue's N, at least 5 runs per measurement")
    mode.add_argument("--smoke", action="store_true",
                      help="tiny N and windows, 1 run: proves the workloads run (the test suite's mode)")
    p.add_argument("--only", default="", help="comma-separated workload numbers, e.g. 1,3")
    p.add_argument("--runs", type=int, default=None, help="repetitions per measurement (default 3 quick, 5 full)")
    p.add_argument("--redis-url", default=os.environ.get("HOOKSCHEDULER_BENCH_REDIS_URL", DEFAULT_REDIS))
    p.add_argument("--pg-dsn", default=os.environ.get("HOOKSCHEDULER_BENCH_PG", DEFAULT_PG))
    p.add_argument("--out", type=Path, default=HERE, help="folder for results.json and RESULTS.md")
    p.add_argument("--render", action="store_true", help="only re-render RESULTS.md from results.json")
    p.add_argument("--merge", type=Path, default=None, metavar="RESULTS_JSON",
                   help="merge another results.json into ours (per workload, the newer run wins), then render")
    args = p.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        p.error(f"--runs {args.runs}: give at least 1")
    if args.full and args.runs is not None and args.runs < 5:
        p.error(f"--runs {args.runs}: full mode needs at least 5 runs (or use --quick)")
    return args


def selected(only: str, available: dict[int, str]) -> dict[int, str]:
    if not only.strip():
        return available
    wanted: list[int] = []
    for tok in only.split(","):
        tok = tok.strip()
        if not tok.isdigit() or int(tok) not in available:
            raise SystemExit(f"--only {only}: no workload {tok!r}; available: {', '.join(map(str, available))}")
        wanted.append(int(tok))
    return {n: available[n] for n in sorted(set(wanted))}


# --- environment -------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": ram, "os": platform.platform()}


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def versions(cfg: BenchConfig) -> dict[str, str]:
    out = {"python": platform.python_version()}
    try:
        import redis

        out["redis server"] = str(redis.Redis.from_url(cfg.redis_url).info("server").get("redis_version"))
    except Exception as exc:  # reported, not fatal: the workloads will say what is wrong
        out["redis server"] = f"unavailable ({type(exc).__name__})"
    try:
        import psycopg2

        conn = psycopg2.connect(cfg.pg_dsn)
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            row = cur.fetchone()
            out["postgresql server"] = str(row[0]).split()[0] if row else "?"
        conn.close()
    except Exception as exc:
        out["postgresql server"] = f"unavailable ({type(exc).__name__})"
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    for dist in ("rq", "redis", "peewee", "psycopg2-binary", "croniter"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        out["hookscheduler commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=5,
        ).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        out["hookscheduler commit"] = "?"
    return out


# --- running ---------------------------------------------------------------------------------------------

def run_workload(num: int, name: str, cfg: BenchConfig) -> dict[str, Any]:
    """Run one workload module; its rows, or one error row if it raised."""
    started = datetime.now(timezone.utc)
    load_before = loadavg()
    t0 = time.perf_counter()
    title = name
    rows: list[dict[str, Any]]
    error = None
    try:
        module: ModuleType = importlib.import_module(f"benchmarks.{name}")
        title = str(getattr(module, "TITLE", name))
        measurements: list[Measurement] = module.run(cfg)
        rows = [asdict(m) for m in measurements]
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        rows = [asdict(Measurement(title, "workload failed", "error", [], "", False, error))]
    return {"number": num, "module": name, "title": title, "rows": rows, "error": error,
            "date": started.strftime("%Y-%m-%d %H:%M UTC"),
            "mode": "smoke" if cfg.smoke else "quick" if cfg.quick else "full",
            "runs": cfg.runs, "seconds": round(time.perf_counter() - t0, 1), "load_before": load_before,
            "load_after": loadavg()}


def load_results(path: Path) -> dict[str, Any]:
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("workloads"), dict):
                return data
        except json.JSONDecodeError:
            print(f"warning: {path} is not valid JSON; starting it afresh", file=sys.stderr)
    return {"workloads": {}}


def merge_results(data: dict[str, Any], other: dict[str, Any]) -> None:
    """Per workload, keep the newer run (two branches ran different workloads into their own results.json); the
    machine and versions of the header are the newest run's, whichever side it is on."""
    def newest(d: dict[str, Any]) -> str:
        return max((str(e.get("date", "")) for e in d.get("workloads", {}).values()), default="")

    theirs_newer = newest(other) > newest(data)
    for key, entry in other.get("workloads", {}).items():
        mine = data["workloads"].get(key)
        if mine is None or str(entry.get("date", "")) > str(mine.get("date", "")):
            data["workloads"][key] = entry
    if other.get("environment") and (theirs_newer or not data.get("environment")):
        data["environment"] = other["environment"]


# --- rendering -------------------------------------------------------------------------------------------

def num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def row_cells(row: dict[str, Any]) -> list[str]:
    m = Measurement(**{k: row[k] for k in ("workload", "case", "metric", "values", "target", "ok", "note")})
    spread = f"{num(m.low)} - {num(m.high)}" if m.values else "-"
    met = {True: "yes", False: "**NO**", None: ""}[m.ok]
    return [m.case, m.metric, num(m.median) if m.values else "-", spread, m.target, met, m.note]


HEADERS = ["case", "metric", "median", "min - max", "target", "met", "note"]


def render_terminal(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        lines.append(f"\n== {e['title']}  ({e['mode']}, {e['runs']} runs, {e['seconds']} s)")
        cells = [HEADERS] + [row_cells(r) for r in e["rows"]]
        widths = [min(max(len(c[i]) for c in cells), 60) for i in range(len(HEADERS))]
        for c in cells:
            lines.append("  ".join(v[:60].ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: dict[str, Any]) -> str:
    env = data.get("environment", {})
    out = ["# Benchmark results", "",
           "Generated by `python -m benchmarks` from `results.json` (do not edit by hand; see README.md here for "
           "what each workload measures). Each row: median and min - max over the runs of that workload; ratios "
           "(vs RQ's `CronScheduler`, vs raw `enqueue_many`, vs a plain RQ worker) are measured in the same "
           "run. The machine is shared: compare ratios rather than absolute figures across runs.", ""]
    if env:
        mach, vers = env.get("machine", {}), env.get("versions", {})
        out += ["## Machine and versions (latest run)", "",
                f"- machine: {mach.get('cpu', '?')}, {mach.get('cores', '?')} cores, {mach.get('ram', '?')} RAM, "
                f"{mach.get('os', '?')}",
                "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()), ""]
    for key in sorted(data["workloads"], key=lambda k: int(k)):
        e = data["workloads"][key]
        out += [f"## {e['title']}", "",
                f"{e['mode']} mode, {e['runs']} runs, {e['date']}, {e['seconds']} s; load average "
                f"{e['load_before']} before, {e['load_after']} after"
                + (f"; machine {e['machine_cpu']}" if e.get("machine_cpu") else "")
                + (f"; commit {e['commit']}" if e.get("commit") else ""), ""]
        out.append("| " + " | ".join(HEADERS) + " |")
        out.append("|" + "---|" * len(HEADERS))
        for r in e["rows"]:
            out.append("| " + " | ".join(_md_escape(c) for c in row_cells(r)) + " |")
        analysis = analysis_for(e.get("module", "")) or e.get("analysis", "")
        if analysis:
            out += ["", analysis]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def analysis_for(module: str) -> str:
    """Free text a workload keeps beside its rows (``ANALYSIS`` in the module: misses, profiles, fixes); read
    when rendering, so the explanation follows the code even for rows measured earlier."""
    if not _WORKLOAD.match(module):
        return ""
    try:
        mod = importlib.import_module(f"benchmarks.{module}")
    except Exception:
        return ""
    return str(getattr(mod, "ANALYSIS", "")).strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render or args.merge:
        args.out.mkdir(parents=True, exist_ok=True)
        data = load_results(args.out / "results.json")
        if args.merge:
            merge_results(data, load_results(args.merge))
            (args.out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        (args.out / "RESULTS.md").write_text(render_markdown(data))
        print(f"wrote {args.out / 'RESULTS.md'}")
        return 0
    quick = not args.full
    runs = args.runs or (1 if args.smoke else 3 if quick else 5)
    todo = selected(args.only, discover())
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hs_bench_"))
    cfg = BenchConfig(quick=quick, runs=runs, redis_url=args.redis_url, pg_dsn=args.pg_dsn, workdir=workdir,
                      smoke=args.smoke)
    env = {"machine": machine(), "versions": versions(cfg)}
    print(f"benchmarks: {'smoke' if args.smoke else 'quick' if quick else 'full'} mode, {runs} runs, workloads "
          f"{', '.join(map(str, todo))}; load average {loadavg()}", flush=True)
    entries = []
    try:
        for number, module in todo.items():
            print(f"-- running workload {number} ({module}) ...", flush=True)
            entry = run_workload(number, module, cfg)
            entry["machine_cpu"] = f"{env['machine']['cpu']} x{env['machine']['cores']}"
            entry["commit"] = env["versions"].get("hookscheduler commit", "")
            entry["analysis"] = analysis_for(module)
            entries.append(entry)
            print(render_terminal([entry]), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    json_path = out_dir / "results.json"
    data = load_results(json_path)
    data["environment"] = env
    for e in entries:
        data["workloads"][str(e["number"])] = e
    json_path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    (out_dir / "RESULTS.md").write_text(render_markdown(data))
    print(f"\nwrote {out_dir / 'RESULTS.md'} and {json_path}")
    return 1 if any(e["error"] for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
