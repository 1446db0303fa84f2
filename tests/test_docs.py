"""The docs stay true to the tree: no reference to files outside the repository, no dead link, no dead path."""

from __future__ import annotations

import importlib
import re
import zoneinfo
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md"),
               ROOT / "benchmarks" / "README.md", ROOT / "tests" / "chaos" / "README.md"])
ZONES = zoneinfo.available_timezones()  # `Asia/Kolkata` is a time zone, not a path
#: a dotted name of the package in backticks: `hookscheduler.schedule.reconcile.settle`
DOTTED = re.compile(r"`(hookscheduler(?:\.\w+)+)`")
# spelled in pieces so that this file does not match itself
OUTSIDE = re.compile(r"\bDES" + r"IGN\b|\.\./" + "shared")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
#: a path written in backticks: `hookscheduler/schedule/claim.py`, `schedule/claim.py`, `tests/chaos/`, and a
#: test in one: `integration/test_tick.py::test_x`, then `::test_y` in the same file
PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]*)(?:::(\w+))?`")
TEST = re.compile(r"`(?:((?:[\w.-]+/)+[\w.-]+\.py))?::(\w+)`")
BASES = (ROOT, ROOT / "hookscheduler", ROOT / "tests")


def _texts() -> list[Path]:
    found = [p for top in ("hookscheduler", "tests", "benchmarks", "apps") for p in (ROOT / top).rglob("*")
             if p.suffix in (".py", ".md", ".yml", ".html", ".txt") and ".venv" not in p.parts]
    return [*found, *DOCS]


def test_nothing_refers_to_documents_outside_the_repository() -> None:
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in _texts() if p.exists()
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "refer to the repository's own docs/ instead:\n" + "\n".join(hits)


@pytest.mark.parametrize("doc", [p for p in DOCS if p.exists()], ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    dead = [target for target in LINK.findall(doc.read_text(encoding="utf-8"))
            if "://" not in target and not target.startswith("mailto:") and not (doc.parent / target).exists()]
    assert not dead, f"{doc.relative_to(ROOT)} links to missing files: {dead}"


@pytest.mark.parametrize("doc", [p for p in DOCS if p.exists()], ids=lambda p: p.name)
def test_paths_named_in_the_docs_exist(doc: Path) -> None:
    """A path in backticks is a file or folder of the repository, from its root or from ``hookscheduler/``
    (the docs say ``schedule/claim.py``); a path under ``sites/``, ``apps/<app>`` or ``/`` is an example."""
    dead = []
    for path, _ in PATH.findall(doc.read_text(encoding="utf-8")):
        if path.startswith(("/", "sites/", "<", "apps/<", "logs/")) or "<" in path or "*" in path or path in ZONES:
            continue
        if not any((base / path).exists() for base in (*BASES, doc.parent)):
            dead.append(path)
    assert not dead, f"{doc.relative_to(ROOT)} names paths that do not exist: {dead}"


@pytest.mark.parametrize("doc", [p for p in DOCS if p.exists()], ids=lambda p: p.name)
def test_tests_named_in_the_docs_exist(doc: Path) -> None:
    """``file.py::test_name`` (or ``::test_name`` after such a file) names a test function of that file."""
    dead, current = [], None
    for path, name in TEST.findall(doc.read_text(encoding="utf-8")):
        current = next((base / path for base in BASES if path and (base / path).is_file()), None) if path else current
        if current is None or not re.search(rf"^(async )?def {name}\(", current.read_text(encoding="utf-8"), re.M):
            dead.append(f"{path or (current and current.name)}::{name}")
    assert not dead, f"{doc.relative_to(ROOT)} names tests that do not exist: {dead}"


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    assert OUTSIDE.search("see " + "DES" + "IGN" + " §5") and OUTSIDE.search("the " + "DES" + "IGN" + "'s shape")
    assert OUTSIDE.search("../" + "shared/x.md")
    assert not OUTSIDE.search("DES" + "IGN_COLUMNS = ...")
    assert LINK.findall("[a](docs/x.md#part) [b](https://e.org)") == ["docs/x.md", "https://e.org"]
    assert PATH.findall("`schedule/claim.py` and `tests/chaos/` but not `claim()`") == [("schedule/claim.py", ""),
                                                                                        ("tests/chaos/", "")]
    assert TEST.findall("`unit/test_x.py::test_a`, `::test_b`") == [("unit/test_x.py", "test_a"), ("", "test_b")]
    assert _resolves("hookscheduler.schedule.reconcile.settle") and not _resolves("hookscheduler.tick.settle")


def _resolves(dotted: str) -> bool:
    """A module, or an attribute of the longest importable module prefix; or a name the package uses as a
    string (a logger's name such as ``hookscheduler.web.audit``)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return True
    return any(f'"{dotted}"' in p.read_text(encoding="utf-8") for p in (ROOT / "hookscheduler").rglob("*.py"))


@pytest.mark.parametrize("doc", [p for p in DOCS if p.exists()], ids=lambda p: p.name)
def test_dotted_names_in_the_docs_resolve(doc: Path) -> None:
    dead = [name for name in DOTTED.findall(doc.read_text(encoding="utf-8")) if not _resolves(name)]
    assert not dead, f"{doc.relative_to(ROOT)} names what the package does not have: {dead}"


def test_the_ledger_reasons_the_code_writes_word_for_word_are_in_policies() -> None:
    """The fixed reasons (the rest are templates, quoted with placeholders): a changed wording must change the page
    operators read to understand their ledger."""
    from hookscheduler.schedule import reconcile
    from hookscheduler.store.base import LATE_COMPLETION

    page = " ".join((ROOT / "docs" / "policies.md").read_text(encoding="utf-8").split())
    fixed = [reconcile.RESENT, reconcile.REQUEUED, reconcile.UNRECORDED, reconcile.LOST_UNKNOWN, LATE_COMPLETION]
    missing = [reason for reason in fixed if " ".join(reason.split()) not in page]
    assert not missing, f"docs/policies.md does not quote these ledger reasons: {missing}"


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    return text[start:text.index("\n## ", start + 1)]


def _paragraph(section: str, table: str) -> str:
    """The README paragraph that starts with the table's name in backticks."""
    start = section.index(f"\n`{table}` — ")
    end = section.find("\n\n", start + 1)
    return section[start:end if end > 0 else None]


def test_the_readme_tables_section_names_every_table_column_and_ledger_value() -> None:
    """Operators query the tables with SQL from this section: every table, every column (``scheduler_state`` lists
    its keys, not its key/value columns), every trigger and status the code writes."""
    from hookscheduler.states import LedgerStatus, Trigger
    from hookscheduler.store.models import ALL_MODELS, SchedulerState

    section = _readme_section("The tables")
    missing = []
    for model in ALL_MODELS:
        table = model._meta.table_name
        if f"\n`{table}` — " not in section:
            missing.append(table)
            continue
        named = set(re.findall(r"`([\w-]+)`", _paragraph(section, table)))
        columns = [] if model is SchedulerState else [f.column_name for f in model._meta.sorted_fields]
        missing += [f"{table}.{c}" for c in columns if c not in named]
    log = set(re.findall(r"`([\w-]+)`", _paragraph(section, "scheduled_job_log")))
    missing += [f"trigger {t}" for t in Trigger if t.value not in log]
    missing += [f"status {s}" for s in LedgerStatus if s.value not in log]
    assert not missing, f"README.md's 'The tables' does not name: {missing}"
