"""The store owns every statement: no module outside ``hookscheduler/store/`` queries a table itself (a peewee
query on a model, or SQL handed to the database). A new statement is a named method of the ``Store`` (with a
contract test in ``test_contract.py``) or a function of a read-side query module (``test_reads.py``)."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "hookscheduler"
#: A query on a model (its class or the one-letter alias the code gives it), or SQL handed to the database.
STATEMENT = re.compile(
    r"\b(?:ScheduledJobType|ScheduledJobLog|SchedulerState|SchedulerInactivity|J|L|S)\s*\.\s*"
    r"(?:select|update|delete|insert|insert_many|create|get|get_or_none|get_by_id|raw|bulk_create)\s*\("
    r"|\bexecute_sql\s*\(|\bexecutemany\s*\(|\bpw\.SQL\s*\("
)


def test_no_module_outside_the_store_runs_a_statement_of_its_own():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("store/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if STATEMENT.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "statements outside hookscheduler/store/:\n" + "\n".join(found)


def test_the_boundary_check_finds_what_it_looks_for():
    assert STATEMENT.search("rows = ScheduledJobLog.select().where(x)")
    assert STATEMENT.search("db.execute_sql('DELETE FROM scheduled_job_log')")
    assert STATEMENT.search("out += L.select(*cols).where(L.id.in_(ids))")
    assert not STATEMENT.search("job_reads.by_name(name)")
