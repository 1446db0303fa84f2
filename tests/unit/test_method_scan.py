"""The method check without imports: what the source scan vouches for, what it leaves to the real import.

The scan may only ever say "defined"; a typo must still reach the import and be reported as before.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hookscheduler.config import load_bench, load_site
from hookscheduler.declare.hooks import load_job_specs
from hookscheduler.declare.methods import scan_source
from hookscheduler.exceptions import HookError


@pytest.mark.parametrize(("source", "defined"), [
    ("def a():\n    pass\nclass B:\n    x = 1\nasync def c(x):\n    pass\n", {"a", "B", "c"}),
    ('"""Doc.\n\nprose at column 0\n"""\nimport os, json\nfrom pathlib import (\n    Path,\n    PurePath)\n'
     "X = 5\ndef X(): pass\ndef Path(): pass\ndef ok(): pass\n", {"ok"}),  # rebound names are not vouched for
    ("# comment\n'doc'\ndef run(): pass\nif __name__ == '__main__':\n    run()\n", {"run"}),
    ("def caf\u00e9(): pass\n", {"caf\u00e9"}),
    ("def f(\n    a,\n    b=1,\n):\n    pass\n", {"f"}),  # a signature over several lines
    ("# it's a comment with a quote\nX = 'a \\' b'\ndef ok(): pass\n", {"ok"}),
    # column-0 lines inside a string or a multi-line value are not definitions
    ('X = """\ndef fake():\n"""\ndef ok(): pass\n', {"ok"}),
    ("X = '''\nclass Fake:\n'''\ndef ok(): pass\n", {"ok"}),
    ('X = [\n"a",\n]\nY = {\n1: 2,\ndef_fake: 3,\n}\ndef ok(): pass\n', {"ok"}),
    ('def f():\n    return """\ndef fake():\n    pass\n"""\ndef ok(): pass\n', {"f", "ok"}),
])
def test_plain_modules_are_read(source, defined):
    assert scan_source(source) == defined


def test_a_module_without_strings_or_comments_reads_as_with_them():
    """Such a module skips the blanking: what it defines is what the same module with a comment defines."""
    plain = "import os\n\ndef a(x=(1, 2)):\n    return [x]\n\nclass B(object):\n    y = {1: 2}\n\nZ = a\n"
    assert scan_source(plain) == scan_source("# c\n" + plain) == {"a", "B"}
    assert scan_source("def a(): pass\nX = (1,\ndef b(): pass\n") is None


@pytest.mark.parametrize("source", [
    "import no_such_package_anywhere\ndef a(): pass\n",  # the import would fail: let it, and report it
    "from . import sibling\ndef a(): pass\n",  # relative: which file it reads is the package's business
    "@decorator\ndef a(): pass\n",  # a decorator may return anything, or raise
    "def a(): pass\nraise ValueError('no')\n",
    "def a(): pass\nlogger = make_logger()\n",  # a call at import time
    "def a(): pass\ntry:\n    import x\nexcept ImportError:\n    pass\n",
    "def a(): pass\na, b = 1, 2\n",
    "def a(): pass\ndel a\n",
    '"""one""" + x\ndef a(): pass\n',
    '"""never closed\ndef a(): pass\n',
    'X = "never closed\ndef a(): pass\n',
    "X = (1,\ndef a(): pass\n",  # a bracket never closed
    "X = 1 + \\\n2\ndef a(): pass\n",  # a line continuation
    'X = f"{compute()}"\ndef a(): pass\n',  # an f-string runs code
    "def a(): pass\nif __name__ == 'app1.tasks':\n    a = 1\n",  # not the __main__ guard: it runs
])
def test_modules_that_run_or_bind_more_are_left_to_the_import(source):
    assert scan_source(source) is None


def _load(bench: Path, imports: bool = False) -> list[str]:
    b = load_bench(bench)
    return [s.method for s in load_job_specs(b, load_site(b).queues, imports=imports)]


def test_a_plain_tasks_module_is_not_imported_and_a_typo_still_is_reported(bench_factory):
    tasks = "def ok():\n    return 1\n\ndef other():\n    return 2\n\nNOT_CALLABLE = 42\n"
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok", "app1.tasks.other"]}}, tasks=tasks)
    assert _load(bench) == ["app1.tasks.ok", "app1.tasks.other"]
    assert "app1.tasks" not in sys.modules  # vouched for by its source: never imported
    (bench / "apps" / "app1" / "hooks.py").write_text(
        "scheduler_events = {'hourly': ['app1.tasks.okk', 'app1.tasks.NOT_CALLABLE']}\n")
    with pytest.raises(HookError) as info:
        _load(bench)
    found = info.value.problems
    assert len(found) == 2, found
    assert "method 'app1.tasks.okk' does not import" in found[0]
    assert "method 'app1.tasks.NOT_CALLABLE' is not callable" in found[1]


def test_a_worker_load_imports_every_hooks_and_method_module(bench_factory):
    """A worker loads the jobs to have every module imported before it forks its horses: no scan, no shipping."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    assert _load(bench, imports=True) == ["app1.tasks.ok"]
    assert "app1.tasks" in sys.modules and "app1.hooks" in sys.modules


def test_hooks_are_imported_once_in_the_probe_child_and_shipped_back(bench_factory):
    """The parent does not import a hooks.py the probe's child already imported: its events come back by marshal.
    A hooks.py whose events marshal cannot carry (a str subclass here) is imported by the parent, as before."""
    bench = bench_factory.make({
        "app1": {"hourly": ["app1.tasks.ok"], "cron": {"0 1 * * *": ["app1.tasks.other"]}},
        "app2": "class S(str):\n    pass\n\nscheduler_events = {'daily': [S('app2.tasks.ok')]}\n",
    }, apps_txt=["app1", "app2"])
    assert _load(bench) == ["app1.tasks.ok", "app1.tasks.other", "app2.tasks.ok"]
    assert "app1.hooks" not in sys.modules
    assert "app2.hooks" in sys.modules


@pytest.mark.parametrize(("tasks", "said"), [
    # a top level the scan cannot vouch for: the module is imported and its error reported
    ("def ok():\n    return 1\n\nraise ValueError('bad tasks')\n", ("ValueError: bad tasks",)),
    # a plain module whose dependency is missing: the import says so
    ("import no_such_dependency_zz\n\ndef ok():\n    return 1\n", ("does not import", "no_such_dependency_zz")),
])
def test_what_the_scan_cannot_vouch_for_is_imported_and_its_error_reported(bench_factory, tasks: str,
                                                                          said: tuple[str, ...]):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, tasks=tasks)
    with pytest.raises(HookError) as info:
        _load(bench)
    [p] = info.value.problems
    assert "method 'app1.tasks.ok'" in p and all(s in p for s in said), p


def test_the_probe_child_scans_the_method_modules_and_the_parent_imports_no_app_package(bench_factory):
    """The child that imported an app's hooks also scans the modules its methods live in and ships what they
    define: this process neither finds nor imports the app's package (nor its tasks), and a typo is still
    reported by the real import."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"], "daily": [{"method": "app1.tasks.other"}]}})
    assert _load(bench) == ["app1.tasks.ok", "app1.tasks.other"]
    assert "app1" not in sys.modules and "app1.tasks" not in sys.modules
    (bench / "apps" / "app1" / "hooks.py").write_text("scheduler_events = {'hourly': ['app1.tasks.okk']}\n")
    with pytest.raises(HookError) as info:
        _load(bench)
    assert "method 'app1.tasks.okk' does not import" in info.value.problems[0]


def test_the_child_scans_only_modules_whose_package_is_imported(tmp_path, monkeypatch):
    """Finding a module of a package not imported yet would run the package's code (which may end or hang the
    child in the middle of another module's verdict): such a module is left to the parent."""
    from hookscheduler.declare.methods import scan_modules

    for pkg, init in (("scanpkg_idle", "raise SystemExit(3)\n"), ("scanpkg_ok", "")):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text(init)
        (tmp_path / pkg / "tasks.py").write_text("def ok():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert scan_modules(["scanpkg_idle.tasks", "scanpkg_ok.tasks"]) == {}
    assert "scanpkg_idle" not in sys.modules
    import scanpkg_ok  # noqa: F401

    try:
        assert scan_modules(["scanpkg_idle.tasks", "scanpkg_ok.tasks"]) == {"scanpkg_ok.tasks": {"ok"}}
    finally:
        sys.modules.pop("scanpkg_ok", None)


BROKEN = {
    "brk": "from app1.tasks import does_not_exist\ndef f(): pass\n",  # a name the app's module does not define
    "brk2": "def f():\n    pass\nx = 1 +\n",  # a syntax error at top level that no line of it shows alone
    "brk3": "import app1.no_such_module\ndef f(): pass\n",  # a module of the app that does not exist
    "brk4": "from app1.no_such_module import f\n",
    "brk5": "def f():\n    nonlocal y\n",  # a function body the compiler refuses
}


def test_migrate_refuses_a_method_whose_module_does_not_import(bench_factory):
    from tests.integration.opcli_support import run

    bench = bench_factory.make({"app1": {"daily": [f"app1.{name}.f" for name in BROKEN]}}, sites={"site1": {}})
    for name, source in BROKEN.items():
        (bench / "apps" / "app1" / f"{name}.py").write_text(source)
    result = run(bench, "migrate")
    assert result.code == 2, (result.out, result.err)
    assert f"{len(BROKEN)} problem(s) in scheduler_events; nothing was written" in result.err
    for line in ("method 'app1.brk.f' does not import: ImportError: cannot import name 'does_not_exist'",
                 f"method 'app1.brk2.f': importing its module raised SyntaxError: invalid syntax "
                 f"({bench}/apps/app1/brk2.py, line 3)",
                 "method 'app1.brk3.f' does not import: ModuleNotFoundError: No module named 'app1.no_such_module'",
                 "method 'app1.brk4.f' does not import: ModuleNotFoundError: No module named 'app1.no_such_module'",
                 f"no binding for nonlocal 'y' found ({bench}/apps/app1/brk5.py, line 2)"):
        assert line in result.err, result.err
    assert not (bench / "sites" / "site1" / "scheduler.sqlite3").exists()


def test_imports_of_the_apps_own_modules_that_resolve_are_still_read_not_run(bench_factory):
    """Imports within the bench's apps are checked without running them: a module, a submodule, a name the module
    binds (in any branch of its top level), and a module whose names are made at run time, all found."""
    bench = bench_factory.make({"app1": {"daily": ["app1.plain.f"]}, "app2": {}}, apps_txt=["app1", "app2"])
    app = bench / "apps" / "app1"
    (app / "sub").mkdir()
    (app / "sub" / "__init__.py").write_text("try:\n    import json as codec\nexcept ImportError:\n    codec = None\n")
    (app / "sub" / "deep.py").write_text("")
    (app / "lazy.py").write_text("def __getattr__(name):\n    return name\n")
    (bench / "apps" / "app2" / "util.py").write_text("LIMIT = 3\n")
    (app / "plain.py").write_text(
        "import app1.tasks\nimport app1.sub.deep as deep\nfrom app1 import tasks, sub\nfrom app1.tasks import ok\n"
        "from app1.sub import deep as d2, codec\nfrom app1.lazy import anything\nfrom app2.util import LIMIT\n"
        "def f():\n    pass\n")
    assert _load(bench) == ["app1.plain.f"]
    assert "app1.plain" not in sys.modules and "app1.tasks" not in sys.modules  # read, not imported
    (app / "plain.py").write_text("from app2.util import LIMITS\ndef f():\n    pass\n")
    with pytest.raises(HookError) as info:
        _load(bench)
    assert "cannot import name 'LIMITS' from 'app2.util'" in info.value.problems[0]


def test_a_worker_logs_every_problem_of_the_jobs_that_do_not_load(bench_factory, caplog):
    from hookscheduler.config import load_bench as bench_of
    from hookscheduler.worker.process import _import_app_jobs

    bench = bench_factory.make({"app1": {"daily": ["app1.tasks.ok", "app1.brk3.f", "app1.tasks.nope"]}})
    (bench / "apps" / "app1" / "brk3.py").write_text(BROKEN["brk3"])
    with caplog.at_level("WARNING"):
        _import_app_jobs(bench_of(bench), load_site(bench_of(bench)).queues)
    [record] = [r for r in caplog.records if "scheduled jobs do not load" in r.getMessage()]
    text = record.getMessage()
    assert "2 problem(s)" in text and "app1.brk3.f" in text and "app1.tasks.nope" in text
    assert "nothing was written" not in text
