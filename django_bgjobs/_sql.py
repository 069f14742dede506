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
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus

# Rows per INSERT statement (keeps the parameter count far below SQLite's limit).
INSERT_BATCH = 500
# From this many rows of one model, PostgreSQL gets them by COPY instead.
COPY_FROM = 50

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
    filled = [rows for rows in groups if rows]
    if connection.vendor == "postgresql" and len(filled) == 1 and len(filled[0]) >= COPY_FROM:
        _copy_rows(filled[0], using)
        return
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
        _saved(rows, using)


def _copy_rows(rows: Sequence[Model], using: str) -> None:
    """Many rows of one model through COPY (PostgreSQL): about three times the rows a second of
    a multi-row INSERT, whose parameters psycopg binds one by one. Within the caller's
    transaction, or committed as one, like the INSERT."""
    connection = connections[using]
    _, fields = _insert_sql(type(rows[0]), using, 1)
    table = _q(connection, rows[0]._meta.db_table)
    columns = ", ".join(_q(connection, str(f.column)) for f in fields)
    with transaction.atomic(using=using, savepoint=False), connection.cursor() as cursor:
        with (
            connection.wrap_database_errors,  # an IntegrityError as Django raises it
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(
                    [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
                )
    _saved(rows, using)


def _saved(rows: Sequence[Model], using: str) -> None:
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


@cache
def _claim_sql(alias: str) -> str:
    connection = connections[alias]
    update = (
        f"UPDATE {_q(connection, Job._meta.db_table)} SET status = %s, attempts = %s, "
        "started_at = %s, lease_expires_at = %s, worker = %s, progress_done = %s, "
        "progress_total = %s, progress_message = %s WHERE id = %s AND status = %s AND attempts = %s"
    )
    returning = f"RETURNING {_job_columns(connection)}"
    if connection.vendor != "postgresql":
        return f"{update} {returning}"
    # The claim commits without waiting for its WAL flush (synchronous_commit off, for this one
    # statement). Losing it takes a PostgreSQL crash within a fraction of a second, and then the
    # job is simply queued again and runs again (at least once, as always); the finish commits
    # synchronously and flushes the claim with it. One fsync wait per job instead of two.
    return (
        "WITH durability AS (SELECT set_config('synchronous_commit', 'off', true)) "
        f"{update} AND EXISTS (SELECT 1 FROM durability) {returning}"
    )


def claim(
    job_id: str, attempt: int, worker: str, now: datetime, lease_until: datetime
) -> tuple[Job, JobRun] | None:
    """queued -> running for attempt ``attempt``: one UPDATE ... RETURNING; None if lost.

    The JobRun is returned unsaved: it is written, complete, when the attempt finishes.
    """
    using = router.db_for_write(Job)
    connection = connections[using]
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
    if connection.vendor == "postgresql":
        row = _execute_prepared(connection, _claim_sql(using), params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_claim_sql(using), params)
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
    hand_off: HandOff | None = None,
) -> bool:
    """Write a running attempt's outcome, fenced by (running, attempt): the job row and the
    JobRun, or, when the fence says another attempt took over, the JobRun alone as superseded
    (over the ``lost`` row the dispatcher may have written; a ``released`` row is left as it
    is). Returns whether the job was ours.

    ``hand_off`` (PostgreSQL, a job that held a place under a concurrency limit): in the same
    statement, the key's next blocked job takes the place this attempt leaves; it is appended
    to ``hand_off.handed`` (to publish). The key's count of places held does not change, so no
    lock is needed: unless the count (this job included) is over the limit, as after an
    operator lowered it, where the place is left for the admission to count."""
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
    if connection.vendor == "postgresql" and hand_off is not None:
        handed_sql, handed_params = _hand_off_sql(connection, hand_off, now)
        rows = _rows(
            connection,
            f"WITH j AS ({update_job} RETURNING 1), {handed_sql}, r AS ("
            + insert_run.format(status="CASE WHEN EXISTS (SELECT 1 FROM j) THEN %s ELSE %s END")
            + ") SELECT EXISTS (SELECT 1 FROM j), h.id, h.attempts, h.queue, h.priority, h.name "
            "FROM (SELECT 1) AS one LEFT JOIN handed AS h ON true",
            [*job_params, *handed_params, *job_id, *run_params, run_status, superseded],
            prepared=True,
        )
        won = bool(rows and rows[0][0])
        hand_off.handed.extend(tuple(row[1:]) for row in rows if row[1] is not None)
    elif connection.vendor == "postgresql":
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


@dataclass
class HandOff:
    """A finishing job's place under its concurrency limit, to hand to its key's next job."""

    flow_key: str
    gate: str
    limit: int  # as declared; an operator's FlowGate row wins
    handed: list[Sequence[Any]] = field(default_factory=list)  # (id, attempts, queue, ...)


def _hand_off_sql(
    connection: BaseDatabaseWrapper, hand_off: HandOff, now: datetime
) -> tuple[str, list[Any]]:
    from django_bgjobs.models import FlowGate

    job_t, gate_t = _q(connection, Job._meta.db_table), _q(connection, FlowGate._meta.db_table)
    sql = (
        f"next AS (SELECT id FROM {job_t} WHERE EXISTS (SELECT 1 FROM j) AND flow_key = %s "
        f"AND status = %s AND (SELECT COUNT(*) FROM {job_t} WHERE flow_key = %s "
        f"AND status IN (%s, %s) AND gated) <= COALESCE((SELECT concurrency FROM {gate_t} "
        f"WHERE name = %s), %s) ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED), "
        f"handed AS (UPDATE {job_t} SET status = %s, published_at = %s WHERE id IN "
        f"(SELECT id FROM next) AND status = %s RETURNING id, attempts, queue, priority, name)"
    )
    params = [
        hand_off.flow_key,
        JobStatus.BLOCKED,
        hand_off.flow_key,
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        hand_off.gate,
        hand_off.limit,
        JobStatus.QUEUED,
        *_prep(connection, Job, {"published_at": now}),
        JobStatus.BLOCKED,
    ]
    return sql, params


def admit(flow_key: str, gate: str, limit: int, now: datetime, using: str) -> list[Sequence[Any]]:
    """Flow control's admission for one key, inside the caller's transaction: lock the key's
    FlowKey row, then queue its next blocked jobs (by priority, then age) that fit under its
    concurrency (an operator's FlowGate row, else ``limit``), counted from its queued and
    running gated jobs. Returns (id, attempts, queue, priority, name) of each job queued.

    The count must come after the lock: on PostgreSQL a statement's snapshot is taken when it
    starts, so it is a second statement (both prepared; SQLite runs the same two)."""
    from django_bgjobs.models import FlowGate, FlowKey

    connection = connections[using]
    job_t, key_t = _q(connection, Job._meta.db_table), _q(connection, FlowKey._meta.db_table)
    gate_t = _q(connection, FlowGate._meta.db_table)
    prepared = connection.vendor == "postgresql"
    lock = f"SELECT 1 FROM {key_t} WHERE {_q(connection, 'key')} = %s"
    if prepared:
        # Committed without waiting for its WAL flush: an admission lost in a PostgreSQL crash
        # leaves its jobs blocked (a message already sent for one is refused by the claim),
        # and the dispatcher's next pass admits them again. The rows stay the truth.
        lock = (
            "WITH durability AS (SELECT set_config('synchronous_commit', 'off', true)) "
            f"{lock} AND EXISTS (SELECT 1 FROM durability) FOR UPDATE OF {key_t}"
        )
    if not _rows(connection, lock, [flow_key], prepared):  # a new key: its row, then the lock
        FlowKey.objects.using(using).bulk_create(
            [FlowKey(key=flow_key, gate=gate, updated_at=now)], ignore_conflicts=True
        )
        _rows(connection, lock, [flow_key], prepared)
    room = (
        f"COALESCE((SELECT concurrency FROM {gate_t} WHERE name = %s), %s) - (SELECT COUNT(*) "
        f"FROM {job_t} WHERE flow_key = %s AND status IN (%s, %s) AND gated)"
    )
    admitted = _rows(
        connection,
        f"UPDATE {job_t} SET status = %s, published_at = %s WHERE status = %s AND id IN ("
        f"SELECT id FROM {job_t} WHERE flow_key = %s AND status = %s ORDER BY priority DESC, id "
        f"LIMIT (SELECT CASE WHEN n > 0 THEN n ELSE 0 END FROM (SELECT {room} AS n) AS room)) "
        f"RETURNING id, attempts, queue, priority, name",
        [
            JobStatus.QUEUED,
            *_prep(connection, Job, {"published_at": now}),
            JobStatus.BLOCKED,
            flow_key,
            JobStatus.BLOCKED,
            gate,
            limit,
            flow_key,
            JobStatus.QUEUED,
            JobStatus.RUNNING,
        ],
        prepared,
    )
    to_id = Job._meta.get_field("id").to_python
    return [(to_id(row[0]), *row[1:]) for row in admitted]


def _rows(
    connection: BaseDatabaseWrapper, sql: str, params: list[Any], prepared: bool
) -> list[Sequence[Any]]:
    """Every row of ``sql``; on PostgreSQL as a server-side prepared statement."""
    if prepared:
        import psycopg

        connection.ensure_connection()
        with connection.wrap_database_errors:
            with psycopg.Cursor(connection.connection) as cursor:
                return list(cursor.execute(sql, params, prepare=True).fetchall())
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
