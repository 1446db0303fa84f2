"""The one line a database error becomes: a name taken by a stray object is worded as such, a duplicate key is
not (PostgreSQL's duplicate-key detail says "already exists" too, and the advice to drop the object in the way
would have pointed at hookscheduler's own unique index)."""

from __future__ import annotations

import peewee as pw

from hookscheduler.cli.base import problem_text


def test_a_duplicate_key_is_not_called_an_object_in_the_way():
    exc = pw.IntegrityError('duplicate key value violates unique constraint "scheduled_job_log_rq_job_id"\n'
                            "DETAIL:  Key (rq_job_id)=(x) already exists.")
    text = problem_text(exc)
    assert "in the way" not in text and "doctor" in text


def test_a_table_name_taken_by_a_stray_object_says_so():
    for exc in (pw.OperationalError("table scheduled_job_log_scheduled_for already exists"),
                pw.ProgrammingError('relation "scheduled_job_log_scheduled_for" already exists')):
        assert "in the way" in problem_text(exc)
