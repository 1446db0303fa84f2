"""The hooks loader: every ``scheduler_events`` section, the dict form, app order, and every kind of invalid input.

Benches are real folders (bench_factory); nothing touches a database here.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hookscheduler.config import load_bench, load_site
from hookscheduler.declare.hooks import JobSpec, ensure_apps_on_path, load_job_specs, resolve_method
from hookscheduler.exceptions import HookError

SECTION_TABLE = [
    # section, frequency, queue, cron_format, timeout
    ("all", "All", "default", "", 300),
    ("hourly", "Hourly", "default", "", 300),
    ("hourly_long", "Hourly Long", "long", "", 1500),
    ("hourly_maintenance", "Hourly Maintenance", "long", "", 1500),
    ("daily", "Daily", "default", "", 300),
    ("daily_long", "Daily Long", "long", "", 1500),
    ("daily_maintenance", "Daily Maintenance", "long", "", 1500),
    ("weekly", "Weekly", "default", "", 300),
    ("weekly_long", "Weekly Long", "long", "", 1500),
    ("monthly", "Monthly", "default", "", 300),
    ("monthly_long", "Monthly Long", "long", "", 1500),
    ("yearly", "Yearly", "default", "", 300),
    ("annual", "Annual", "default", "", 300),
]


def load(bench: Path) -> list[JobSpec]:
    b = load_bench(bench)
    return load_job_specs(b, load_site(b).queues)


def problems(bench: Path) -> list[str]:
    with pytest.raises(HookError) as info:
        load(bench)
    return info.value.problems


def hooks_file(bench: Path, app: str) -> str:
    return str(bench / "apps" / app / "hooks.py")


@pytest.mark.parametrize(("section", "frequency", "queue", "cron", "timeout"), SECTION_TABLE)
def test_every_named_section_maps_to_frequency_queue_and_timeout(bench_factory, section, frequency, queue, cron,
                                                                  timeout):
    bench = bench_factory.make({"app1": {section: ["app1.tasks.ok"]}})
    [spec] = load(bench)
    assert (spec.name, spec.app, spec.method) == ("app1.tasks.ok", "app1", "app1.tasks.ok")
    assert (spec.frequency, spec.queue, spec.cron_format, spec.timeout) == (frequency, queue, cron, timeout)
    assert (spec.catchup, spec.catchup_limit, spec.overlap) == ("once", 10, "skip")


@pytest.mark.parametrize(("section", "frequency", "queue", "timeout"),
                         [("cron", "Cron", "default", 300), ("cron_long", "Cron Long", "long", 1500)])
def test_cron_sections(bench_factory, section, frequency, queue, timeout):
    bench = bench_factory.make({"app1": {section: {
        "15 18 * * *": ["app1.tasks.ok"], "*/6  *  * * *": [{"method": "app1.tasks.ok", "name": "six"}],
        "0 0 * * * 30": "app1.tasks.other",  # 6 fields (seconds) and a scalar entry
    }}})
    specs = {s.name: s for s in load(bench)}
    assert {n: (s.frequency, s.queue, s.cron_format, s.timeout) for n, s in specs.items()} == {
        "app1.tasks.ok": (frequency, queue, "15 18 * * *", timeout),
        "six": (frequency, queue, "*/6 * * * *", timeout),  # whitespace normalised
        "app1.tasks.other": (frequency, queue, "0 0 * * * 30", timeout),
    }


def test_specs_are_immutable(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}})
    [spec] = load(bench)
    with pytest.raises(AttributeError):
        spec.queue = "long"  # type: ignore[misc]


def test_entry_queue_and_timeout_override_and_queue_timeouts(bench_factory):
    bench = bench_factory.make(
        {"app1": {
            "daily": [
                {"method": "app1.tasks.ok", "name": "to-short", "queue": "short"},
                {"method": "app1.tasks.ok", "name": "to-long", "queue": "long"},
                {"method": "app1.tasks.ok", "name": "to-custom", "queue": "reports"},
                {"method": "app1.tasks.ok", "name": "custom-no-timeout", "queue": "bulk"},
                {"method": "app1.tasks.ok", "name": "own-timeout", "queue": "long", "timeout": 42},
            ],
            "daily_long": [{"method": "app1.tasks.other", "queue": "default"}],
            "cron_long": {"0 3 * * *": [{"method": "app1.tasks.boom", "timeout": 7200}]},
        }},
        common={"workers": {"reports": {"timeout": 5000, "background_workers": 2}, "bulk": {"background_workers": 1}}},
    )
    got = {s.name: (s.queue, s.timeout) for s in load(bench)}
    assert got == {
        "to-short": ("short", 300), "to-long": ("long", 1500), "to-custom": ("reports", 5000),
        "custom-no-timeout": ("bulk", 300), "own-timeout": ("long", 42),
        "app1.tasks.other": ("default", 300), "app1.tasks.boom": ("long", 7200),
    }


def test_dict_form_with_every_option(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": [
        {"method": "app1.tasks.ok", "name": "catch-all", "catchup": "all", "catchup_limit": 50, "overlap": "allow"},
        {"method": "app1.tasks.ok", "name": "catch-skip", "catchup": "skip"},
        {"method": " app1.tasks.other "},  # surrounding blanks are forgiven
    ]}})
    specs = {s.name: s for s in load(bench)}
    assert (specs["catch-all"].catchup, specs["catch-all"].catchup_limit, specs["catch-all"].overlap) == (
        "all", 50, "allow")
    assert (specs["catch-skip"].catchup, specs["catch-skip"].overlap) == ("skip", "skip")
    assert specs["app1.tasks.other"].method == "app1.tasks.other"


def test_same_method_twice_with_distinct_names_is_fine(bench_factory):
    bench = bench_factory.make({"app1": {
        "hourly": ["app1.tasks.ok"], "daily": [{"method": "app1.tasks.ok", "name": "ok-daily"}]}})
    assert sorted(s.name for s in load(bench)) == ["app1.tasks.ok", "ok-daily"]


def test_two_apps_merge_in_apps_txt_order(bench_factory):
    apps = {"zeta": {"hourly": ["zeta.tasks.ok"], "cron": {"0 1 * * *": ["zeta.tasks.other"]}},
            "alpha": {"hourly": ["alpha.tasks.ok"], "cron": {"0 1 * * *": ["alpha.tasks.other"]}}}
    bench = bench_factory.make(apps, apps_txt=["zeta", "# a comment", "", "alpha", "zeta"])
    assert load_bench(bench).apps == ("zeta", "alpha")
    specs = load(bench)
    assert [s.name for s in specs] == ["zeta.tasks.ok", "zeta.tasks.other", "alpha.tasks.ok", "alpha.tasks.other"]
    assert [s.app for s in specs] == ["zeta", "zeta", "alpha", "alpha"]


def test_two_apps_merge_in_discovery_order_without_apps_txt(bench_factory):
    bench = bench_factory.make({"zeta": {"hourly": ["zeta.tasks.ok"]}, "alpha": {"hourly": ["alpha.tasks.ok"]}})
    (bench / "apps" / "not_an_app").mkdir()  # no hooks.py: not an app
    (bench / "apps" / "README.md").write_text("x")
    assert load_bench(bench).apps == ("alpha", "zeta")
    assert [s.app for s in load(bench)] == ["alpha", "zeta"]


def test_app_without_scheduler_events_or_hooks_declares_nothing(bench_factory):
    bench = bench_factory.make({"app1": "app_name = 'app1'\n", "app2": {"hourly": ["app2.tasks.ok"]}},
                               apps_txt=["app1", "app2", "app3"])
    (bench / "apps" / "app3").mkdir()
    (bench / "apps" / "app3" / "__init__.py").write_text("")
    assert [s.name for s in load(bench)] == ["app2.tasks.ok"]


def test_unicode_names_and_methods(bench_factory):
    tasks = "def café():\n    return 1\n"
    bench = bench_factory.make({"app1": {"hourly": [{"method": "app1.tasks.café", "name": "Nightly ☕ report"}]}},
                               tasks=tasks)
    [spec] = load(bench)
    assert (spec.name, spec.method) == ("Nightly ☕ report", "app1.tasks.café")


def test_each_load_reads_the_current_files_and_the_right_bench(bench_factory):
    """A long-lived process (or a test session) loading two benches with the same app name gets each bench's."""
    b1 = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, env=False)
    b2 = bench_factory.make({"app1": {"daily": ["app1.tasks.ok"]}}, env=False)
    for _ in range(2):
        assert [s.frequency for s in load(b1)] == ["Hourly"]
        assert [s.frequency for s in load(b2)] == ["Daily"]
    (b1 / "apps" / "app1" / "hooks.py").write_text('scheduler_events = {"weekly": ["app1.tasks.ok"]}\n')
    assert [s.frequency for s in load(b1)] == ["Weekly"]


def test_switching_benches_forgets_the_other_benchs_modules(bench_factory):
    b1 = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, env=False, tasks="WHO = 'one'\ndef ok(): pass\n")
    b2 = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, env=False, tasks="WHO = 'two'\ndef ok(): pass\n")
    (b1 / "apps" / "helper_mod.py").write_text("WHO = 'one'\n")
    (b2 / "apps" / "helper_mod.py").write_text("WHO = 'two'\n")
    for bench, who in ((b1, "one"), (b2, "two"), (b1, "one")):
        ensure_apps_on_path(load_bench(bench))
        assert resolve_method("app1.tasks.WHO") == who
        assert resolve_method("helper_mod.WHO") == who


def test_large_but_valid_declaration(bench_factory):
    entries = [{"method": "app1.tasks.ok", "name": f"job-{i}"} for i in range(2000)]
    bench = bench_factory.make({"app1": {"hourly": entries}})
    assert len(load(bench)) == 2000


# --- invalid input: refused whole, every problem listed, each naming app, file and key ------------------------------

def test_every_problem_is_listed_at_once_with_app_file_and_key(bench_factory):
    source = textwrap.dedent("""
        scheduler_events = {
            "hourly_lng": ["app1.tasks.ok"],
            "daily": ["app1.tasks.missing_function", "app1.nomodule.run", "app1.tasks.NOT_CALLABLE", 42],
            "cron": {"0 0 * *": ["app1.tasks.ok"], "* * * * * * *": ["app1.tasks.ok"], "61 * * * *": ["app1.tasks.ok"]},
            "weekly": [{"method": "app1.tasks.other", "queue": "nope"}],
        }
    """)
    bench = bench_factory.make({"app1": source, "app2": {"hourly": ["app2.tasks.ok"]}})
    found = problems(bench)
    where = hooks_file(bench, "app1")
    assert len(found) == 9, found
    assert all(p.startswith(f"app1: {where}: scheduler_events[") for p in found), found
    joined = "\n".join(found)
    assert "scheduler_events['hourly_lng']: unknown section; did you mean 'hourly_long'?" in joined
    assert "scheduler_events['daily'][0]: method 'app1.tasks.missing_function' does not import" in joined
    assert "missing_function" in found[1] and "has no attribute" in found[1]
    assert "scheduler_events['daily'][1]: method 'app1.nomodule.run' does not import" in joined
    assert "scheduler_events['daily'][2]: method 'app1.tasks.NOT_CALLABLE' is not callable (it is a int)" in joined
    assert "scheduler_events['daily'][3]: an entry must be a dotted path string or a dict, not int" in joined
    assert "scheduler_events['cron']['0 0 * *']: cron '0 0 * *' has 4 field(s), expected 5 or 6" in joined
    assert "scheduler_events['cron']['* * * * * * *']: cron '* * * * * * *' has 7 field(s)" in joined
    assert "scheduler_events['cron']['61 * * * *']: cron '61 * * * *' is invalid" in joined
    assert "scheduler_events['weekly'][0]: unknown queue 'nope'; valid queues: short, default, long" in joined


@pytest.mark.parametrize(("events", "expected"), [
    ('["app1.tasks.ok"]', "scheduler_events must be a dict of section -> list, not list"),
    ('"hourly"', "scheduler_events must be a dict of section -> list, not str"),
    ("{'cron': ['app1.tasks.ok']}", "scheduler_events['cron'] must map cron strings to lists of methods, not list"),
    ("{'cron_long': {1: ['app1.tasks.ok']}}", "scheduler_events['cron_long'][1]: a cron key must be a string"),
    ("{'hourly': None}", "scheduler_events['hourly']: must be a list of dotted method paths, not NoneType"),
    ("{'hourly': 5}", "scheduler_events['hourly']: must be a list of dotted method paths, not int"),
    ("{7: ['app1.tasks.ok']}", "scheduler_events[7]: unknown section"),
    ("{'Hourly': ['app1.tasks.ok']}", "scheduler_events['Hourly']: unknown section; did you mean 'hourly'?"),
    ("{'cron': {'@daily': ['app1.tasks.ok']}}", "cron '@daily' is an alias"),
    ("{'cron': {'0 0 30 2 *': ['app1.tasks.ok']}}", "cron '0 0 30 2 *' never fires"),
    ("{'cron': {'H * * * *': ['app1.tasks.ok']}}", "uses hashed/random H or R values"),
    ("{'cron': {'0 24 * * *': ['app1.tasks.ok']}}", "cron '0 24 * * *' is invalid"),
    ("{'cron': {'0 0 0 * *': ['app1.tasks.ok']}}", "cron '0 0 0 * *' is invalid"),
    ("{'cron': {'0 0 * 13 *': ['app1.tasks.ok']}}", "cron '0 0 * 13 *' is invalid"),
    ("{'cron': {'0 0 * * 8': ['app1.tasks.ok']}}", "cron '0 0 * * 8' is invalid"),
    ("{'cron': {'0 0 * * * 60': ['app1.tasks.ok']}}", "cron '0 0 * * * 60' is invalid"),
    ("{'cron': {'': ['app1.tasks.ok']}}", "cron '' has 0 field(s)"),
    ("{'hourly': [{'method': 5}]}", "'method' must be a dotted path string"),
    ("{'hourly': [{'name': 'x'}]}", "'method' must be a dotted path string"),
    ("{'hourly': ['']}", "'method' must be a dotted path string"),
    ("{'hourly': ['nodots']}", "method 'nodots' does not import"),
    ("{'hourly': [['app1.tasks.ok']]}", "an entry must be a dotted path string or a dict, not list"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'when': 'now'}]}", "unknown option(s) 'when'"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'queue': 5}]}", "unknown queue 5"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'name': ''}]}", "'name' must be a printable string"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'name': 'a\\nb'}]}", "'name' must be a printable string"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'name': 'x' * 256}]}", "'name' must be a printable string"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'timeout': 0}]}", "'timeout' must be a whole number of seconds"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'timeout': -5}]}", "'timeout' must be a whole number of seconds"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'timeout': 1.5}]}", "'timeout' must be a whole number of seconds"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'timeout': '60'}]}", "'timeout' must be a whole number of seconds"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'timeout': True}]}", "'timeout' must be a whole number of seconds"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'timeout': 2**31}]}", "from 1 to 2147483647, got 2147483648"),
    ("{'cron': {','.join(map(str, range(60))) + ' * * * *': ['app1.tasks.ok']}}",
     "cron string is 177 characters long, at most 140 fit"),
    ("{'hourly': ['app1.' + 'x' * 300 + '.run']}", "is longer than 255 characters"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'catchup': 'twice'}]}", "'catchup' must be one of once, skip, all"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'catchup_limit': 0}]}", "'catchup_limit' must be a whole number"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'catchup_limit': 1001}]}", "'catchup_limit' must be a whole number"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'catchup_limit': False}]}", "'catchup_limit' must be a whole number"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'overlap': 'queue'}]}", "'overlap' must be one of skip, allow"),
    ("{'hourly': [{'method': 'app1.tasks.ok', 'overlap': None}]}", "'overlap' must be one of skip, allow"),
])
def test_each_kind_of_invalid_input_is_refused_naming_app_file_and_key(bench_factory, events, expected):
    bench = bench_factory.make({"app1": f"scheduler_events = {events}\n"})
    found = problems(bench)
    assert len(found) == 1, found
    assert found[0].startswith(f"app1: {hooks_file(bench, 'app1')}: "), found
    assert expected in found[0], found


def test_several_bad_options_in_one_entry_are_all_listed(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": [{"method": "app1.tasks.nope", "queue": "x", "timeout": 0,
                                                     "catchup": "y", "catchup_limit": 0, "overlap": "z"}]}})
    found = problems(bench)
    assert len(found) == 6
    assert all("scheduler_events['hourly'][0]" in p for p in found)


@pytest.mark.parametrize(("source", "expected"), [
    ("raise RuntimeError('hooks exploded')\n", "hooks.py raised RuntimeError: hooks exploded"),
    ("import no_such_module_xyz\n", "importing hooks.py failed: ModuleNotFoundError: No module named"),
    ("scheduler_events = {\n", "hooks.py raised SyntaxError"),
    ("import sys\nsys.exit(3)\n", "hooks.py raised SystemExit: 3"),
    ("1 / 0\n", "hooks.py raised ZeroDivisionError: division by zero"),
])
def test_hooks_py_that_raises_is_reported_and_other_apps_still_checked(bench_factory, source, expected):
    bench = bench_factory.make({"app1": source, "app2": {"hourly": ["app2.tasks.nope"]}})
    found = problems(bench)
    assert len(found) == 2, found
    assert found[0].startswith(f"app1: {hooks_file(bench, 'app1')}: ")
    assert expected in found[0]
    assert found[1].startswith(f"app2: {hooks_file(bench, 'app2')}: scheduler_events['hourly'][0]")


def test_task_module_that_raises_on_import_is_reported(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, tasks="raise ValueError('bad tasks')\n")
    [p] = problems(bench)
    assert "method 'app1.tasks.ok'" in p and "ValueError: bad tasks" in p


def test_task_module_that_exits_on_import_is_reported(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, tasks="raise SystemExit(1)\n")
    [p] = problems(bench)
    assert "method 'app1.tasks.ok'" in p and "SystemExit" in p


@pytest.mark.parametrize("imports", [True, False], ids=["worker", "migrate"])
def test_a_syntax_error_in_hooks_py_names_its_file_and_line(bench_factory, imports):
    bench = bench_factory.make({"app1": "scheduler_events = {'hourly': [\n    'app1.tasks.ok',\n"})
    b = load_bench(bench)
    with pytest.raises(HookError) as info:
        load_job_specs(b, load_site(b).queues, imports=imports)
    [p] = info.value.problems
    assert p == (f"app1: {hooks_file(bench, 'app1')}: hooks.py raised SyntaxError: '[' was never closed "
                 f"({hooks_file(bench, 'app1')}, line 1); fix the file"), p


@pytest.mark.parametrize("imports", [True, False], ids=["worker", "migrate"])
@pytest.mark.parametrize(("tasks", "said", "line"), [
    ("def deco(f):\n    return f\n\n\n@deco(\ndef ok():\n    pass\n", "SyntaxError: '(' was never closed", 5),
    ("def ok():\n    pass\n\ndef other():\nreturn 1\n",
     "IndentationError: expected an indented block after function definition on line 4", 5),
], ids=["syntax", "indentation"])
def test_a_syntax_error_in_a_task_module_names_that_file_and_line(bench_factory, imports, tasks, said, line):
    """The problem's location is the hooks.py entry; the task module at fault is another file, named with the line."""
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, tasks=tasks)
    b = load_bench(bench)
    with pytest.raises(HookError) as info:
        load_job_specs(b, load_site(b).queues, imports=imports)
    [p] = info.value.problems
    tasks_file = bench / "apps" / "app1" / "tasks.py"
    assert p == (f"app1: {hooks_file(bench, 'app1')}: scheduler_events['hourly'][0]: method 'app1.tasks.ok': "
                 f"importing its module raised {said} ({tasks_file}, line {line})"), p


def test_same_method_twice_without_names_is_refused_within_and_across_apps(bench_factory):
    bench = bench_factory.make({
        "app1": {"hourly": ["shared_mod.run"], "daily": ["shared_mod.run"]},
        "app2": {"cron": {"0 1 * * *": ["shared_mod.run"]}},
    }, apps_txt=["app1", "app2"])
    shared = bench / "apps" / "shared_mod.py"
    shared.write_text("def run():\n    pass\n")
    found = problems(bench)
    assert len(found) == 2, found
    f1, f2 = hooks_file(bench, "app1"), hooks_file(bench, "app2")
    assert found[0].startswith(f"app1: {f1}: scheduler_events['daily'][0]: job 'shared_mod.run' is declared twice "
                               f"(also at app1: {f1}: scheduler_events['hourly'][0])")
    assert found[1].startswith(f"app2: {f2}: scheduler_events['cron']['0 1 * * *'][0]: job 'shared_mod.run'")
    assert "give each entry a distinct 'name'" in found[1]


def test_explicit_names_that_collide_are_refused(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": [{"method": "app1.tasks.ok", "name": "x"},
                                                    {"method": "app1.tasks.other", "name": "x"}]}})
    [p] = problems(bench)
    assert "job 'x' is declared twice" in p


def test_app_listed_in_apps_txt_but_missing(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"]}}, apps_txt=["app1", "ghost_app"])
    [p] = problems(bench)
    assert p.startswith("ghost_app: app is listed as installed but cannot be imported")
    assert "apps.txt" in p


def test_deeply_nested_and_huge_values_give_short_messages(bench_factory):
    source = textwrap.dedent("""
        deep = 5
        for _ in range(100000):
            deep = [deep]
        huge = list(range(1000000))
        scheduler_events = {
            "hourly": [{"method": "app1.tasks.ok", "timeout": deep, "catchup": huge, "overlap": "x" * 100000}],
            ("x",) * 100000: [],
            "daily": deep,
            "weekly": [deep],
        }
    """)
    bench = bench_factory.make({"app1": source})
    found = problems(bench)
    assert len(found) == 6, [p[:200] for p in found]
    assert all(len(p) < 1000 for p in found), [len(p) for p in found]


def test_huge_list_of_duplicates_is_refused_without_blowing_up(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.ok"] * 5000}})
    with pytest.raises(HookError) as info:
        load(bench)
    assert len(info.value.problems) == 4999
    text = str(info.value)  # the message stays readable; .problems keeps them all
    assert len(text.splitlines()) == 1 + HookError.SHOWN + 1
    assert text.endswith("  ... and 4899 more")


def test_refused_message_heads_with_the_count_and_nothing_written(bench_factory):
    bench = bench_factory.make({"app1": {"hourly": ["app1.tasks.nope", "app1.tasks.nope2"]}})
    with pytest.raises(HookError) as info:
        load(bench)
    text = str(info.value)
    assert text.splitlines()[0] == "2 problem(s) in scheduler_events; nothing was written:"
    assert HookError.exit_code == 2



def test_frequency_table_matches_design():
    from hookscheduler.timing.frequencies import BY_FREQUENCY, FREQUENCIES, SECTIONS, cron_for, event_of, is_maintenance

    assert set(SECTIONS) == {row[0] for row in SECTION_TABLE} | {"cron", "cron_long"}
    assert FREQUENCIES == ("All", "Hourly", "Hourly Long", "Hourly Maintenance", "Daily", "Daily Long",
                           "Daily Maintenance", "Weekly", "Weekly Long", "Monthly", "Monthly Long", "Yearly", "Annual",
                           "Cron", "Cron Long")
    assert {f: cron_for(f, "5 4 * * *") for f in FREQUENCIES} == {
        "All": None, "Hourly": "0 * * * *", "Hourly Long": "0 * * * *", "Hourly Maintenance": "0 * * * *",
        "Daily": "0 0 * * *", "Daily Long": "0 0 * * *", "Daily Maintenance": "0 0 * * *",
        "Weekly": "0 0 * * 0", "Weekly Long": "0 0 * * 0", "Monthly": "0 0 1 * *", "Monthly Long": "0 0 1 * *",
        "Yearly": "0 0 1 1 *", "Annual": "0 0 1 1 *", "Cron": "5 4 * * *", "Cron Long": "5 4 * * *",
    }
    assert [f for f in FREQUENCIES if is_maintenance(f)] == ["Hourly Maintenance", "Daily Maintenance"]
    assert (event_of("Daily Long"), event_of("Hourly Maintenance"), event_of("Cron Long"), event_of("All")) == (
        "daily", "hourly", "cron", "all")
    assert all(BY_FREQUENCY[s.frequency] is s for s in SECTIONS.values())


@pytest.mark.parametrize("value", ["all", "x" * 118, "x" * 119, "x" * 121, "\n" * 59, "\n" * 60, "é" * 80, "it's",
                                   "q" * 10_000, 7, None, ["a", ["b", ["c", ["d"]]]], {"k": "v" * 500}])
def test_locations_show_values_as_reprlib_bounds_them(value):
    """A short string's location text takes a shortcut past reprlib: the same text, whatever the value."""
    from hookscheduler.declare.hooks import _REPR, _r

    assert _r(value) == _REPR.repr(value)


def test_a_dict_entry_with_an_unknown_option_is_refused_by_name(bench_factory):
    entry = {"method": "app1.tasks.ok", "timeout": 60, "overlap": "allow"}
    bench = bench_factory.make({"app1": {"hourly": [entry], "daily": [{"method": "app1.tasks.ok", "name": "d",
                                                                       "bogus": 1}]}})
    b = load_bench(bench)
    with pytest.raises(HookError) as info:
        load_job_specs(b, load_site(b).queues)
    [problem] = info.value.problems
    assert "unknown option(s) 'bogus'; allowed: method, name, queue" in problem
