"""Hand-written SQL for the writes made for every job: insert, claim, finish.

Why not the ORM here: measured on PostgreSQL, compiling ORM queries was about 40% of the CPU a
worker spent per job, and the ORM's claim and finish took ten round trips (SELECT, BEGIN, UPDATE,
SELECT, INSERT, COMMIT, BEGIN, UPDATE, UPDATE, COMMIT). Here, on PostgreSQL, a claim is one
statement (UPDATE ... RETURNING and INSERT of the JobRun in one CTE) and so is a finish; other
databases run the same two statements inside a transaction. Values still go through the model
fields (``get_db_prep_save``) and come back through their converters, as the ORM would do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus

# Rows per INSERT statement (keeps the parameter count far below SQLite's limit).
INSERT_BATCH = 500

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


def _execute_prepared(connection: BaseDatabaseWrapper, sql: str, params: list[Any]) -> Any:
    """Run ``sql`` as a server-side prepared statement (PostgreSQL): parsed and planned once per
    connection instead of on every job. Returns the first row or None."""
    import psycopg  # only reached on PostgreSQL (psycopg 3, as Django 6 requires)

    connection.ensure_connection()
    with connection.wrap_database_errors:
        # A server-binding cursor: Django's connections default to client-side binding, which
        # cannot prepare.
        with psycopg.Cursor(connection.connection) as cursor:
            return cursor.execute(sql, params, prepare=True).fetchone()


def _q(connection: BaseDatabaseWrapper, name: str) -> str:
    return connection.ops.quote_name(name)


def _prep(connection: BaseDatabaseWrapper, model: type[Any], values: dict[str, Any]) -> list[Any]:
    meta = model._meta
    return [
        meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()
    ]


# Columns that are always NULL when a job is created: left to the column default.
_UNSET_AT_INSERT = {
    "started_at",
    "lease_expires_at",
    "result",
    "progress_done",
    "progress_total",
}


@cache
def _insert_sql(
    model: type[Model], alias: str, rows: int
) -> tuple[str, tuple[Field[Any, Any], ...]]:
    connection = connections[alias]
    unset = _UNSET_AT_INSERT if model is Job else set()
    fields = tuple(f for f in model._meta.concrete_fields if f.attname not in unset)
    columns = ", ".join(_q(connection, str(f.column)) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = _q(connection, model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * rows)}", fields


def insert_rows(groups: Sequence[Sequence[Model]], using: str) -> None:
    """INSERT these unsaved rows (ids already set), a group per model, in as few statements as
    possible. On PostgreSQL, groups that fit one batch go in one statement (all but the last as
    data-modifying CTEs): an event and the run it starts cost one round trip."""
    connection = connections[using]
    statements: list[tuple[str, list[Any]]] = []
    for rows in groups:
        for start in range(0, len(rows), INSERT_BATCH):
            batch = rows[start : start + INSERT_BATCH]
            sql, fields = _insert_sql(type(batch[0]), using, len(batch))
            params = [
                f.get_db_prep_save(getattr(row, f.attname), connection)
                for row in batch
                for f in fields
            ]
            statements.append((sql, params))
    if (
        connection.vendor == "postgresql"
        and len(statements) == sum(1 for rows in groups if rows) > 1
    ):
        *leading, last = statements
        ctes = ", ".join(f"_along{n} AS ({sql})" for n, (sql, _) in enumerate(leading))
        statements = [(f"WITH {ctes} {last[0]}", [p for _, params in statements for p in params])]
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
    for rows in groups:
        for row in rows:
            row._state.adding = False
            row._state.db = using


@cache
def _job_converters(vendor: str, alias: str) -> list[tuple[str, list[Converter]]]:
    connection = connections[alias]
    table = Job._meta.db_table
    return [
        (
            f.attname,
            connection.ops.get_db_converters(f.get_col(table)) + f.get_db_converters(connection),
        )
        for f in Job._meta.concrete_fields
    ]


def _job_from_row(row: Sequence[Any], using: str) -> Job:
    connection = connections[using]
    values = {}
    for (attname, converters), value in zip(
        _job_converters(connection.vendor, using), row, strict=False
    ):
        for convert in converters:
            value = convert(value, None, connection)
        values[attname] = value
    return Job.from_db(using, list(values), list(values.values()))


def _job_columns(connection: BaseDatabaseWrapper) -> str:
    return ", ".join(_q(connection, str(f.column)) for f in Job._meta.concrete_fields)


def claim(
    job_id: str, attempt: int, worker: str, now: datetime, lease_until: datetime
) -> tuple[Job, JobRun] | None:
    """queued -> running for attempt ``attempt``: one UPDATE ... RETURNING; None if lost.

    The JobRun is returned unsaved: it is written, complete, when the attempt finishes.
    """
    using = router.db_for_write(Job)
    connection = connections[using]
    job_t = _q(connection, Job._meta.db_table)
    params = _prep(
        connection,
        Job,
        {
            "status": JobStatus.RUNNING,
            "attempts": attempt,
            "started_at": now,
            "lease_expires_at": lease_until,
            "worker": worker,
            "progress_done": None,
            "progress_total": None,
            "progress_message": "",
        },
    ) + _prep(connection, Job, {"id": job_id, "status": JobStatus.QUEUED, "attempts": attempt - 1})
    update = (
        f"UPDATE {job_t} SET status = %s, attempts = %s, started_at = %s, lease_expires_at = %s, "
        f"worker = %s, progress_done = %s, progress_total = %s, progress_message = %s "
        f"WHERE id = %s AND status = %s AND attempts = %s"
    )
    returning = f"RETURNING {_job_columns(connection)}"
    if connection.vendor == "postgresql":
        # The claim commits without waiting for its WAL flush (synchronous_commit off, for this
        # one statement). Losing it takes a PostgreSQL crash within a fraction of a second, and
        # then the job is simply queued again and runs again (at least once, as always); the
        # finish commits synchronously and flushes the claim with it. One fsync wait per job
        # instead of two.
        row = _execute_prepared(
            connection,
            f"WITH durability AS (SELECT set_config('synchronous_commit', 'off', true)) "
            f"{update} AND EXISTS (SELECT 1 FROM durability) {returning}",
            params,
        )
    else:
        with connection.cursor() as cursor:
            cursor.execute(f"{update} {returning}", params)
            row = cursor.fetchone()
    if row is None:
        return None
    job = _job_from_row(row, using)
    run = JobRun(job=job, attempt=attempt, status=RunStatus.RUNNING, worker=worker, started_at=now)
    return job, run


def finish(
    job: Job,
    run: JobRun,
    job_values: dict[str, Any],
    run_status: str,
    now: datetime,
    error: str = "",
    traceback: str = "",
) -> bool:
    """Write a running attempt's outcome, fenced by (running, attempt): the job row and the
    JobRun, or, when the fence says another attempt took over, the JobRun alone as superseded
    (over the ``lost`` row the dispatcher may have written; a ``released`` row is left as it
    is). Returns whether the job was ours."""
    using = router.db_for_write(Job)
    connection = connections[using]
    job_t, run_t = _q(connection, Job._meta.db_table), _q(connection, JobRun._meta.db_table)
    set_sql = ", ".join(f"{_q(connection, n)} = %s" for n in job_values)  # attname == column
    update_job = f"UPDATE {job_t} SET {set_sql} WHERE id = %s AND status = %s AND attempts = %s"
    job_params = _prep(connection, Job, job_values) + _prep(
        connection, Job, {"id": job.pk, "status": JobStatus.RUNNING, "attempts": run.attempt}
    )
    duration = max(int((now - run.started_at).total_seconds() * 1000), 0)
    superseded = RunStatus.SUPERSEDED.value
    run_params = _prep(
        connection,
        JobRun,
        {
            "attempt": run.attempt,
            "worker": run.worker,
            "started_at": run.started_at,
            "finished_at": now,
            "duration_ms": duration,
            "error": error,
            "traceback": traceback,
        },
    )
    job_id = _prep(connection, Job, {"id": job.pk})
    insert_run = (
        f"INSERT INTO {run_t} (job_id, attempt, worker, started_at, finished_at, duration_ms, "
        f"error, traceback, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {{status}}) "
        f"ON CONFLICT (job_id, attempt) DO UPDATE SET status = EXCLUDED.status, "
        f"finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, "
        f"error = EXCLUDED.error, traceback = EXCLUDED.traceback "
        # Only over a row the dispatcher wrote (`lost`) or a late zombie's (`superseded`) for
        # this attempt number; never over a real outcome. Nor over `released`: the worker gave
        # that attempt back on purpose, and what the attempt reports afterwards (usually the
        # SystemExit of its process being stopped) is moot; the release record stays.
        f"WHERE {run_t}.status IN ('{RunStatus.LOST.value}', '{superseded}')"
    )
    if connection.vendor == "postgresql":
        row = _execute_prepared(
            connection,
            f"WITH j AS ({update_job} RETURNING 1), r AS ("
            + insert_run.format(status="CASE WHEN EXISTS (SELECT 1 FROM j) THEN %s ELSE %s END")
            + ") SELECT EXISTS (SELECT 1 FROM j)",
            [*job_params, *job_id, *run_params, run_status, superseded],
        )
        won = bool(row and row[0])
    else:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(update_job, job_params)
            won = cursor.rowcount == 1
            cursor.execute(
                insert_run.format(status="%s"),
                [*job_id, *run_params, run_status if won else superseded],
            )
    run.status = run_status if won else superseded
    run.finished_at, run.duration_ms, run.error, run.traceback = now, duration, error, traceback
    run._state.adding, run._state.db = False, using
    if won:
        for name, value in job_values.items():
            setattr(job, name, value)
    return won
