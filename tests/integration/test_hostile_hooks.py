"""Hostile ``hooks.py`` files through the real ``migrate`` command: every kind of malformed value is refused whole
(exit 2, every problem named with the app, the file and the key, nothing written), and odd-but-valid input
(unicode names, whitespace, a 6-field cron, 10,000 jobs in one app) works.

What a cron string may be (decided here, documented in the README): 5 fields, or 6 with a trailing seconds field
(0-59). croniter's optional 7th (year) field, ``@`` aliases and hashed ``H``/random ``R`` values are refused, and so is
any value out of its field's range (minute 60, hour 24, day 32, month 13, weekday 8, second 60).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hookscheduler.broker.connection import redis_for
from hookscheduler.context import open_site
from hookscheduler.declare import hooks as hooks_module
from hookscheduler.schedule.claim import run_pass
from hookscheduler.store.models import utcnow
from tests.integration.hostile_support import migrated_bench, refused, snapshot
from tests.integration.opcli_support import run

GOOD = {"daily": ["good.tasks.ok"], "cron": {"15 18 * * *": ["good.tasks.other"]}}


def hostile_bench(bench_factory, bad_hooks: str) -> Path:
    """App ``good`` migrated; then app ``bad`` (with ``bad_hooks`` as its hooks.py) installed."""
    bench = bench_factory.make({"good": GOOD, "bad": bad_hooks}, apps_txt=["good"])
    migrated_bench(bench)
    (bench / "sites" / "apps.txt").write_text("good\nbad\n")
    return bench


DEEP = "x = 'bad.tasks.ok'\nfor _ in range(100_000):\n    x = [x]\n"
DEEP_DICT = "x = {}\nfor _ in range(100_000):\n    x = {'k': x}\n"

# id -> (hooks.py source, substrings the error must contain)
CASES: dict[str, tuple[str, list[str]]] = {
    "deep-list-entry": (DEEP + "scheduler_events = {'daily': x}\n", ["['daily'][0]", "not list"]),
    "deep-dict-section": (DEEP_DICT + "scheduler_events = {'cron': {'* * * * *': x}}\n",
                          ["['cron']['* * * * *'][0]", "unknown option"]),
    "deep-name": (DEEP + "scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'name': x}]}\n", ["'name' must"]),
    "deep-key": ("t = ()\nfor _ in range(100_000):\n    t = (t,)\nscheduler_events = {t: ['bad.tasks.ok']}\n",
                 ["unknown section"]),
    "huge-list-of-ints": ("scheduler_events = {'daily': list(range(200_000))}\n",
                          ["200000 problem(s)", "... and 199900 more", "not int"]),
    "huge-duplicate-list": ("scheduler_events = {'daily': ['bad.tasks.ok'] * 50_000}\n",
                            ["49999 problem(s)", "declared twice"]),
    "huge-string": ("scheduler_events = {'daily': ['bad.tasks.' + 'x' * 1_000_000]}\n", ["longer than 255"]),
    "method-int": ("scheduler_events = {'daily': [42]}\n", ["not int"]),
    "method-none": ("scheduler_events = {'daily': [None]}\n", ["not NoneType"]),
    "method-list": ("scheduler_events = {'daily': [['bad.tasks.ok']]}\n", ["not list"]),
    "method-callable": ("from bad.tasks import ok\nscheduler_events = {'daily': [ok]}\n", ["not function"]),
    "method-class": ("class C:\n    pass\nscheduler_events = {'daily': [C]}\n", ["not type"]),
    "method-object": ("class C:\n    def __call__(self):\n        pass\nscheduler_events = {'daily': [C()]}\n",
                      ["not C"]),
    "dict-method-int": ("scheduler_events = {'daily': [{'method': 7}]}\n", ["'method' must be a dotted path"]),
    "dict-method-none": ("scheduler_events = {'daily': [{'method': None}]}\n", ["'method' must be a dotted path"]),
    "dict-no-method": ("scheduler_events = {'daily': [{'name': 'x'}]}\n", ["'method' must be a dotted path"]),
    "method-empty": ("scheduler_events = {'daily': ['']}\n", ["'method' must be a dotted path"]),
    "method-whitespace": ("scheduler_events = {'daily': ['  \\t ']}\n", ["'method' must be a dotted path"]),
    "method-no-dot": ("scheduler_events = {'daily': ['ok']}\n", ["does not import"]),
    "method-missing": ("scheduler_events = {'daily': ['bad.tasks.nope']}\n", ["does not import"]),
    "method-not-callable": ("scheduler_events = {'daily': ['bad.tasks.NOT_CALLABLE']}\n", ["not callable"]),
    "method-unicode-missing": ("scheduler_events = {'daily': ['bad.tâches.ñope']}\n", ["does not import"]),
    "method-shell": ("scheduler_events = {'daily': ['bad.tasks.ok; rm -rf /']}\n", ["does not import"]),
    "name-empty": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'name': ''}]}\n", ["'name' must"]),
    "name-whitespace": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'name': '   '}]}\n",
                        ["'name' must"]),
    "name-newline": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'name': 'a\\nb'}]}\n",
                     ["'name' must"]),
    "name-int": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'name': 5}]}\n", ["'name' must"]),
    "name-too-long": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'name': 'n' * 256}]}\n",
                      ["'name' must"]),
    "name-duplicates-other-app": ("scheduler_events = {'hourly': [{'method': 'bad.tasks.ok', "
                                  "'name': 'good.tasks.ok'}]}\n", ["declared twice"]),
    "section-empty": ("scheduler_events = {'': ['bad.tasks.ok']}\n", ["unknown section"]),
    "section-padded": ("scheduler_events = {' daily ': ['bad.tasks.ok']}\n", ["unknown section", "'daily'"]),
    "section-int": ("scheduler_events = {1: ['bad.tasks.ok']}\n", ["unknown section"]),
    "section-none": ("scheduler_events = {None: ['bad.tasks.ok']}\n", ["unknown section"]),
    "section-value-int": ("scheduler_events = {'daily': 5}\n", ["must be a list"]),
    "section-value-none": ("scheduler_events = {'daily': None}\n", ["must be a list"]),
    "cron-not-dict": ("scheduler_events = {'cron': ['bad.tasks.ok']}\n", ["must map cron strings"]),
    "cron-key-int": ("scheduler_events = {'cron': {5: ['bad.tasks.ok']}}\n", ["a cron key must be a string"]),
    "cron-empty": ("scheduler_events = {'cron': {'': ['bad.tasks.ok']}}\n", ["0 field(s)"]),
    "cron-whitespace": ("scheduler_events = {'cron': {'  \\n ': ['bad.tasks.ok']}}\n", ["0 field(s)"]),
    "cron-4-fields": ("scheduler_events = {'cron': {'0 0 * *': ['bad.tasks.ok']}}\n", ["4 field(s)"]),
    "cron-7-fields-year": ("scheduler_events = {'cron': {'0 0 1 1 * 0 2030': ['bad.tasks.ok']}}\n",
                           ["7 field(s)"]),
    "cron-8-fields": ("scheduler_events = {'cron': {'* * * * * * * *': ['bad.tasks.ok']}}\n", ["8 field(s)"]),
    "cron-minute-60": ("scheduler_events = {'cron': {'60 * * * *': ['bad.tasks.ok']}}\n", ["out of range"]),
    "cron-hour-24": ("scheduler_events = {'cron': {'0 24 * * *': ['bad.tasks.ok']}}\n", ["out of range"]),
    "cron-day-32": ("scheduler_events = {'cron': {'0 0 32 * *': ['bad.tasks.ok']}}\n", ["out of range"]),
    "cron-day-0": ("scheduler_events = {'cron': {'0 0 0 * *': ['bad.tasks.ok']}}\n", ["is invalid"]),
    "cron-month-13": ("scheduler_events = {'cron': {'0 0 * 13 *': ['bad.tasks.ok']}}\n", ["out of range"]),
    "cron-weekday-8": ("scheduler_events = {'cron': {'0 0 * * 8': ['bad.tasks.ok']}}\n", ["out of range"]),
    "cron-second-60": ("scheduler_events = {'cron': {'0 0 * * * 60': ['bad.tasks.ok']}}\n", ["out of range"]),
    "cron-negative": ("scheduler_events = {'cron': {'-1 * * * *': ['bad.tasks.ok']}}\n", ["is invalid"]),
    "cron-range-out": ("scheduler_events = {'cron': {'1-100 * * * *': ['bad.tasks.ok']}}\n", ["is invalid"]),
    "cron-step-0": ("scheduler_events = {'cron': {'*/0 * * * *': ['bad.tasks.ok']}}\n", ["is invalid"]),
    "cron-alias": ("scheduler_events = {'cron': {'@daily': ['bad.tasks.ok']}}\n", ["alias"]),
    "cron-hashed": ("scheduler_events = {'cron': {'H * * * *': ['bad.tasks.ok']}}\n", ["hashed"]),
    "cron-random": ("scheduler_events = {'cron': {'R R * * *': ['bad.tasks.ok']}}\n", ["random"]),
    "cron-never": ("scheduler_events = {'cron': {'0 0 30 2 *': ['bad.tasks.ok']}}\n", ["never fires"]),
    "cron-fullwidth-digit": ("scheduler_events = {'cron': {'\\uff11 * * * *': ['bad.tasks.ok']}}\n",
                             ["is invalid"]),
    "cron-sql": ("scheduler_events = {'cron': {\"0 0 * * *'; DROP TABLE scheduled_job_type; --\": "
                 "['bad.tasks.ok']}}\n", ["field(s)"]),
    "cron-too-long": ("scheduler_events = {'cron': {','.join(str(i) for i in range(60)) + ' * * * *': "
                      "['bad.tasks.ok']}}\n", ["at most 140"]),
    "option-unknown": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'retries': 3}]}\n",
                       ["unknown option"]),
    "option-timeout-str": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'timeout': '60'}]}\n",
                           ["'timeout' must"]),
    "option-timeout-huge": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'timeout': 10**40}]}\n",
                            ["'timeout' must"]),
    "option-timeout-bool": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'timeout': True}]}\n",
                            ["'timeout' must"]),
    "option-queue-unknown": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'queue': 'nope'}]}\n",
                             ["unknown queue"]),
    "option-queue-list": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'queue': ['long']}]}\n",
                          ["unknown queue"]),
    "option-catchup": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'catchup': None}]}\n",
                       ["'catchup' must"]),
    "option-catchup-unhashable": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'catchup': []}]}\n",
                                  ["'catchup' must"]),
    "option-overlap-unhashable": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'overlap': {}}]}\n",
                                  ["'overlap' must"]),
    "option-limit-0": ("scheduler_events = {'daily': [{'method': 'bad.tasks.ok', 'catchup_limit': 0}]}\n",
                       ["'catchup_limit' must"]),
    "events-list": ("scheduler_events = [('daily', ['bad.tasks.ok'])]\n", ["must be a dict", "not list"]),
    "events-str": ("scheduler_events = 'daily'\n", ["must be a dict", "not str"]),
    "events-int": ("scheduler_events = 0\n", ["must be a dict", "not int"]),
    "hooks-raises": ("raise RuntimeError('hooks exploded')\n", ["hooks.py raised", "hooks exploded"]),
    "hooks-syntax-error": ("scheduler_events = {'daily': [\n", ["SyntaxError", "bad/hooks.py, line 1)"]),
    "hooks-sys-exit": ("import sys\nsys.exit(3)\n", ["hooks.py raised", "SystemExit"]),
    "hooks-import-error": ("import no_such_module_hs\n", ["no_such_module_hs"]),
    "hooks-recursion": ("def f():\n    return f()\nf()\n", ["RecursionError"]),
    "hooks-base-exception": ("class Stop(BaseException):\n    pass\nraise Stop('no')\n",
                             ["hooks.py raised", "Stop: no"]),
    "hooks-generator-exit": ("raise GeneratorExit\n", ["hooks.py raised", "GeneratorExit"]),
    "hooks-os-exit": ("import os\nos._exit(3)\n", ["ended the process while importing (exit status 3"]),
    "hooks-os-exit-zero": ("import os\nos._exit(0)\n", ["ended the process while importing (exit status 0"]),
    "hooks-kill-self": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", ["killed by signal 9"]),
    "hooks-hang": ("import time\ntime.sleep(3600)\n", ["did not finish importing within 2 s"]),
    "hooks-keyboardish": ("raise KeyError('\\x1b[31mred\\nsecond line')\n", ["hooks.py raised", "KeyError"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_hooks_are_refused_whole_and_nothing_changes(bench_factory, case, monkeypatch):
    monkeypatch.setattr(hooks_module, "IMPORT_TIME_LIMIT", 2.0)  # the hang case: 2 s, not the default 30 s
    source, needles = CASES[case]
    bench = hostile_bench(bench_factory, source)
    result = refused(bench, "migrate")
    hooks_path = str(bench / "apps" / "bad" / "hooks.py")
    assert "nothing was written" in result.err.splitlines()[0]
    problem_lines = [ln for ln in result.err.splitlines()[1:] if ln.startswith("  - ")]
    assert problem_lines, result.err
    assert all(ln.startswith(f"  - bad: {hooks_path}") for ln in problem_lines), result.err[:2000]
    for needle in needles:
        assert needle in result.err, (needle, result.err[:2000])
    # bounded: at most 100 problems spelled out, each at most 1000 characters; no raw control characters
    assert len(problem_lines) <= 100 and all(len(ln) <= 1010 for ln in problem_lines)
    assert "\x1b" not in result.err
    assert len(result.err) < 120_000


def test_dry_run_of_malformed_hooks_is_refused_too(bench_factory):
    bench = hostile_bench(bench_factory, CASES["cron-minute-60"][0])
    refused(bench, "migrate", "--dry-run")
    refused(bench, "migrate", "--prune")


def test_a_syntax_error_in_a_task_module_is_reported_with_that_file_and_line(bench_factory):
    """The entry that names the method is in hooks.py; the file to open is the task module, at the line given."""
    tasks = "def deco(f):\n    return f\n\n\n@deco(\ndef ok():\n    pass\n"
    bench = bench_factory.make({"bad": {"daily": ["bad.tasks.ok"]}}, tasks=tasks)
    result = refused(bench, "migrate")
    [problem] = [ln for ln in result.err.splitlines() if ln.startswith("  - ")]
    assert problem.endswith("method 'bad.tasks.ok': importing its module raised SyntaxError: '(' was never closed "
                            f"({bench / 'apps' / 'bad' / 'tasks.py'}, line 5)"), result.err


def test_every_problem_of_several_apps_is_listed_at_once(bench_factory):
    bench = hostile_bench(bench_factory, "scheduler_events = {'daily': [None, 'bad.tasks.nope'], "
                                         "'cron': {'0 24 * * *': ['bad.tasks.ok']}, 'dayly': ['bad.tasks.ok']}\n")
    result = refused(bench, "migrate")
    assert "4 problem(s)" in result.err
    assert "did you mean 'daily'?" in result.err


def test_unicode_names_and_methods_and_padded_input_work(bench_factory):
    tasks = "def ok():\n    pass\n\ndef tâche_été():\n    pass\n"
    hooks = ("scheduler_events = {\n"
             "  'daily': ['  uni.tasks.tâche_été  ',\n"
             "            {'method': 'uni.tasks.ok', 'name': 'Rapport quotidien ✓ 日本語'}],\n"
             "  'cron': {'  */5\\t*  * * *  ':\n"
             "              [{'method': 'uni.tasks.ok', 'name': \"it's \\\"quoted\\\"; DROP TABLE x\"}],\n"
             "           '0 0 * * * 30': [{'method': 'uni.tasks.ok', 'name': 'with-seconds'}]},\n"
             "}\n")
    bench = bench_factory.make({"uni": hooks}, tasks=tasks)
    result = run(bench, "migrate", "--format", "json")
    assert result.code == 0, result.err
    added = set(result.json()[0]["added"])
    assert added >= {"uni.tasks.tâche_été", "Rapport quotidien ✓ 日本語", "it's \"quoted\"; DROP TABLE x",
                     "with-seconds"}
    listed = {r["name"]: r for r in run(bench, "jobs", "list", "--format", "json").json()}
    assert set(listed) >= added
    assert listed["it's \"quoted\"; DROP TABLE x"]["cron_format"] == "*/5 * * * *"
    assert listed["with-seconds"]["cron_format"] == "0 0 * * * 30"
    # a second migrate finds nothing to change (the normalised values round-trip through the table)
    again = run(bench, "migrate", "--format", "json").json()[0]
    assert (again["added"], again["updated"]) == ([], [])


def test_refused_migrate_of_a_fresh_bench_creates_no_database(bench_factory):
    bench = bench_factory.make({"bad": "scheduler_events = {'daily': [None]}\n"})
    before = snapshot(bench)
    result = run(bench, "migrate")
    assert result.code == 2, result.err
    assert not (bench / "sites" / "default").exists()
    assert snapshot(bench) == before


def _many_jobs_hooks(n: int) -> str:
    return ("crons = ['%d %d * * *' % (i % 60, (i // 60) % 24) for i in range(" + str(n) + ")]\n"
            "scheduler_events = {\n"
            "  'cron': {c: [{'method': 'big.tasks.ok', 'name': 'job-%05d' % i}] for i, c in enumerate(crons)},\n"
            "}\n"
            "scheduler_events['cron']['* * * * *'] = [{'method': 'big.tasks.ok', 'name': 'job-b%05d' % i} "
            "for i in range(" + str(n) + " - len(scheduler_events['cron']))]\n")


@pytest.mark.slow  # (run by the default suite too; the marker only says it takes ~10-20 s)
def test_ten_thousand_jobs_in_one_app_migrate_and_list(bench_factory):
    """10,000 jobs in one app: migrate adds them all (in seconds, not minutes), a second migrate is a no-op, and
    one scheduling pass serves them. Timings are reported, never asserted tightly (the machine is shared)."""
    n = 10_000
    bench = bench_factory.make({"big": _many_jobs_hooks(n)})
    t = time.perf_counter()
    first = run(bench, "migrate", "--format", "json")
    first_s = time.perf_counter() - t
    assert first.code == 0, first.err
    assert len([a for a in first.json()[0]["added"] if a.startswith("job-")]) == n
    t = time.perf_counter()
    again = run(bench, "migrate", "--format", "json")
    again_s = time.perf_counter() - t
    assert again.code == 0 and again.json()[0]["added"] == [] and again.json()[0]["updated"] == []
    listed = run(bench, "jobs", "list", "--format", "json").json()
    assert len([r for r in listed if r["name"].startswith("job-")]) == n
    ctx = open_site(str(bench))
    try:
        t = time.perf_counter()
        fired = run_pass(ctx, redis_for(ctx.site), now=utcnow() + timedelta(days=1, minutes=1)).fired
        pass_s = time.perf_counter() - t
    finally:
        ctx.close()
    assert fired == n + 1  # and the built-in maintenance job
    print(f"10,000 jobs: first migrate {first_s:.1f} s, unchanged migrate {again_s:.1f} s, one pass {pass_s:.1f} s")
    assert first_s < 120 and again_s < 120  # generous: a regression to per-row round trips shows as minutes


def test_hostile_hooks_on_a_migrated_site_leave_it_running(bench_factory):
    """A refused migrate does not stop what was already migrated: the old jobs stay and keep their schedule."""
    bench = hostile_bench(bench_factory, CASES["hooks-syntax-error"][0])
    refused(bench, "migrate")
    listed = run(bench, "jobs", "list", "--format", "json").json()
    assert {"good.tasks.ok", "good.tasks.other"} <= {r["name"] for r in listed}


@pytest.fixture
def forks(monkeypatch) -> list[int]:
    """The pids of the children the import probe forks while the test runs."""
    pids: list[int] = []
    fork = os.fork

    def counted() -> int:
        pid = fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(hooks_module.os, "fork", counted)
    return pids


def test_one_child_probes_every_apps_hooks_and_one_that_ends_it_does_not_hide_the_others(bench_factory,
                                                                                         monkeypatch, forks):
    """A bench of many apps costs one fork for the import probe, not one per app; after an app whose hooks.py
    ends the child, or hangs, a new child goes on with the next app, and each problem names its own app."""
    monkeypatch.setattr(hooks_module, "IMPORT_TIME_LIMIT", 2.0)
    names = [f"ok{i}" for i in range(6)]
    troubles = hooks_module.probe_imports(["json", *names])  # modules that import fine: one child
    assert troubles == {} and len(forks) == 1
    bench = bench_factory.make({"a1": {"hourly": ["a1.tasks.ok"]}, "a2": "import os\nos._exit(4)\n",
                                "a3": "import time\ntime.sleep(3600)\n", "a4": {"daily": ["a4.tasks.ok"]}})
    forks.clear()
    result = refused(bench, "migrate")
    assert len(forks) == 3, forks  # a1..a2 (ends), a3 (hangs: killed), a4
    lines = result.err.splitlines()
    assert any(ln.startswith("  - a2: ") and "exit status 4" in ln for ln in lines), result.err
    assert any(ln.startswith("  - a3: ") and "within 2 s" in ln for ln in lines), result.err
    assert not any(ln.startswith(("  - a1: ", "  - a4: ")) for ln in lines), result.err


def test_an_interrupted_probe_leaves_no_child_behind(tmp_path, monkeypatch, forks):
    """A signal (a test's time limit, Ctrl-C) interrupting the parent while a child imports: the child is killed
    and reaped before the exception goes on, so it can never write to a closed pipe and, failing that, carry
    on as a copy of its parent's program (which once ran a test suite in dozens of copies)."""
    import signal as signals
    import sys

    (tmp_path / "slowhooks.py").write_text("import time\ntime.sleep(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def interrupt(*_args: object) -> None:
        raise KeyboardInterrupt

    previous = signals.signal(signals.SIGALRM, interrupt)
    signals.setitimer(signals.ITIMER_REAL, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            hooks_module.probe_imports(["slowhooks"], limit=10)
    finally:
        signals.setitimer(signals.ITIMER_REAL, 0)
        signals.signal(signals.SIGALRM, previous)
    assert time.monotonic() - started < 2.5  # it did not wait for the child's import to finish
    assert len(forks) == 1
    with pytest.raises(ChildProcessError):  # already reaped: no child of ours is left, running or not
        os.waitpid(forks[0], os.WNOHANG)
    assert "slowhooks" not in sys.modules


def test_a_large_bench_is_probed_by_two_children_each_verdict_its_own(tmp_path, monkeypatch, forks):
    """From PARALLEL_FROM modules on, two children import every other module each, side by side; a module that
    ends its child, or hangs it, is still named alone, and its lane goes on with a new child."""
    monkeypatch.setattr(hooks_module.os, "cpu_count", lambda: 2)
    names = [f"lane_mod{i}" for i in range(hooks_module.PARALLEL_FROM + 4)]
    for name in names:
        (tmp_path / f"{name}.py").write_text("X = 1\n")
    (tmp_path / "lane_mod5.py").write_text("import os\nos._exit(5)\n")  # the second lane
    (tmp_path / "lane_mod8.py").write_text("import os\nos._exit(8)\n")  # the first lane
    (tmp_path / "lane_mod11.py").write_text("import time\ntime.sleep(3600)\n")  # the second lane, again
    monkeypatch.syspath_prepend(str(tmp_path))
    shipped: dict[str, Any] = {}
    troubles = hooks_module.probe_imports(names, limit=2.0, ship=shipped)
    assert set(troubles) == {"lane_mod5", "lane_mod8", "lane_mod11"}, troubles
    assert "exit status 5" in troubles["lane_mod5"] and "exit status 8" in troubles["lane_mod8"]
    assert "within 2 s" in troubles["lane_mod11"]
    assert set(shipped) == set(names) - set(troubles)  # every other module's verdict (and events) came back
    assert len(forks) == 2 + 3  # two lanes, each restarted after each module that ended or hung its child
    fewer = [n for n in names if n not in troubles][:hooks_module.PARALLEL_FROM - 1]
    assert hooks_module.probe_imports(fewer, limit=2.0) == {}  # fewer modules: one child
    assert len(forks) == 6
