"""Figures about the jobs, computed from the database when asked (for the Prometheus collector
in ``metrics.py``; plain data, so a dashboard can use them too).

The database is the source of truth: every worker process writes its attempts there, so these
figures need no shared state between processes. Each is one grouped statement, sized for a
million jobs (see "Metrics" in the README for the plans):

- jobs by name and status: one pass over the job table;
- queues: only queued jobs (the dispatcher's partial index on them);
- run times, waits and workers: only the attempts that ended in the window, found through
  JobRun's primary key (rows are inserted when an attempt ends, so ids follow ``finished_at``),
  and their jobs by primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Min
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus

# Upper bounds (seconds) of the run time and wait time buckets: from a few milliseconds (a
# no-op job, a warm worker's pick-up) to an hour. +Inf is implied.
RUN_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
WAIT_BUCKETS: tuple[float, ...] = RUN_BUCKETS

# Attempts whose duration is the function's own: a `lost` attempt is timed until its lease was
# found expired, a `released` one until its worker's shutdown, a `superseded` one is a zombie's.
TIMED_RUNS = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
# How long a queued job has waited: since it was published, or became due, or was created.
WAITING_SINCE = Coalesce("published_at", "run_after", "created_at")


@dataclass
class Histogram:
    """Observations counted per bucket: ``counts[i]`` those <= ``bounds[i]`` and above the
    bound before; ``counts[-1]`` those above every bound."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0  # the sum of the observations, seconds

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) for each bucket, +Inf last: Prometheus' ``le``."""
        running, out = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(frozen=True)
class QueueFigures:
    depth: int  # queued jobs
    oldest_age: float  # seconds the oldest of them has waited; 0 when none


@dataclass
class Snapshot:
    taken_at: datetime
    window: timedelta
    jobs: dict[tuple[str, str], int]  # (name, status) -> jobs
    queues: dict[str, QueueFigures]
    run_durations: dict[str, Histogram]  # by job name
    waits: dict[str, Histogram]  # by job name
    workers_seen: int

    @property
    def dead(self) -> int:
        return sum(n for (_, status), n in self.jobs.items() if status == JobStatus.DEAD)


def snapshot(now: datetime | None = None, using: str | None = None) -> Snapshot:
    """Every figure, from the database, now."""
    now = now or timezone.now()
    using = using or router.db_for_read(Job)
    window = bgjobs_settings.METRICS_WINDOW
    run_durations, waits = attempt_figures(now - window, using)
    return Snapshot(
        taken_at=now,
        window=window,
        jobs=job_counts(using),
        queues=queue_figures(now, using),
        run_durations=run_durations,
        waits=waits,
        workers_seen=workers_seen(now, now - bgjobs_settings.METRICS_WORKERS_WINDOW, using),
    )


# --- SQL helpers --------------------------------------------------------------------------------


def _q(connection: BaseDatabaseWrapper, name: str) -> str:
    return connection.ops.quote_name(name)


def _seconds_between(connection: BaseDatabaseWrapper, end: str, start: str) -> str:
    """SQL for ``end - start`` in seconds (a float) on this database."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    if connection.vendor == "sqlite":
        return f"((julianday({end}) - julianday({start})) * 86400.0)"
    if connection.vendor == "mysql":
        return f"(TIMESTAMPDIFF(MICROSECOND, {start}, {end}) / 1000000.0)"
    raise NotImplementedError(f"bgjobs metrics do not support {connection.vendor} yet")


def _bucket_case(value: str, bounds: Sequence[float], scale: int = 1) -> str:
    """SQL: the index of the first bucket ``value`` fits in (len(bounds) above them all), NULL
    for NULL. Bounds are constants of this module, written into the SQL (times ``scale``, so
    that integer milliseconds compare with integers)."""

    def literal(bound: float) -> str:
        scaled = bound * scale
        return str(int(scaled)) if scaled == int(scaled) else repr(float(scaled))

    whens = " ".join(f"WHEN {value} <= {literal(b)} THEN {i}" for i, b in enumerate(bounds))
    return f"CASE WHEN {value} IS NULL THEN NULL {whens} ELSE {len(bounds)} END"


def _dt(connection: BaseDatabaseWrapper, value: datetime) -> Any:
    return Job._meta.get_field("created_at").get_db_prep_value(value, connection)


def _window_runs(connection: BaseDatabaseWrapper) -> str:
    """SQL condition (two datetime parameters, both the window's start) for the JobRun rows
    ``r`` that ended in the window, read through the primary key: ids grow in insertion order,
    which is the order attempts end in, so the window is the ids above the newest row that
    ended before it. Found by walking the primary key backwards from the newest row: the cost
    is the window's rows, not the table's. (A row whose end was rewritten later, a zombie's
    `superseded`, may be missed: it is not timed anyway.)"""
    run_t = _q(connection, JobRun._meta.db_table)
    return (
        f"r.id > COALESCE((SELECT b.id FROM {run_t} b WHERE b.finished_at < %s "
        f"ORDER BY b.id DESC LIMIT 1), 0) AND r.finished_at >= %s"
    )


# --- the figures --------------------------------------------------------------------------------


def job_counts(using: str) -> dict[tuple[str, str], int]:
    """Jobs by (name, status): one grouped pass over the job table (no index would serve it
    without costing every enqueue and status change)."""
    rows = Job.objects.using(using).order_by().values_list("name", "status").annotate(n=Count("*"))
    return {(name, status): n for name, status, n in rows}


def queue_figures(now: datetime, using: str) -> dict[str, QueueFigures]:
    """Queued jobs per queue, and how long the oldest has waited: since it was published (at
    enqueue, or when its delay or backoff ended, or when it was retried or released), or since
    it became due when publishing failed. Every queue of ``BGJOBS["QUEUES"]`` is listed, so an
    empty queue reads 0 rather than disappearing."""
    rows = (
        Job.objects.using(using)
        .queued()
        .order_by()
        .values_list("queue")
        .annotate(depth=Count("*"), since=Min(WAITING_SINCE))
    )
    figures = {queue: QueueFigures(0, 0.0) for queue in bgjobs_settings.QUEUES}
    for queue, depth, since in rows:
        age = max((now - since).total_seconds(), 0.0) if since is not None else 0.0
        figures[queue] = QueueFigures(depth, age)
    return figures


def attempt_figures(
    since: datetime, using: str
) -> tuple[dict[str, Histogram], dict[str, Histogram]]:
    """Per job name, from the attempts that ended since ``since``: their run time (succeeded,
    failed or cancelled attempts, see TIMED_RUNS) and their wait, from the job's publication
    (its enqueue, or the dispatcher releasing it when a delay or a retry's backoff was over)
    to the attempt's start. One statement over the window's JobRun rows and their jobs.

    The publication time is on the job row and belongs to its latest attempt: an attempt's
    wait is known while it is the job's latest and the job was not published again since
    (a retry's backoff ended, ``retry()``, a release); otherwise it is left out.
    """
    connection = connections[using]
    job_t, run_t = _q(connection, Job._meta.db_table), _q(connection, JobRun._meta.db_table)
    timed = "r.status IN ({}) AND r.duration_ms IS NOT NULL".format(
        ", ".join(f"'{status.value}'" for status in TIMED_RUNS)
    )
    waited = "r.attempt = j.attempts AND j.published_at <= r.started_at"
    wait = _seconds_between(connection, "r.started_at", "j.published_at")
    sql = (
        f"SELECT name, {_bucket_case('run_ms', RUN_BUCKETS, scale=1000)}, "
        f"{_bucket_case('wait', WAIT_BUCKETS)}, COUNT(*), SUM(run_ms), SUM(wait) FROM ("
        f"SELECT j.name, CASE WHEN {timed} THEN r.duration_ms END AS run_ms, "
        f"CASE WHEN {waited} THEN {wait} END AS wait "
        f"FROM {run_t} r JOIN {job_t} j ON j.id = r.job_id WHERE {_window_runs(connection)}"
        f") a GROUP BY 1, 2, 3"
    )
    runs: dict[str, Histogram] = {}
    waits: dict[str, Histogram] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [_dt(connection, since)] * 2)
        for name, run_bucket, wait_bucket, n, run_ms, wait_total in cursor.fetchall():
            if run_bucket is not None:
                histogram = runs.setdefault(name, Histogram(RUN_BUCKETS))
                histogram.counts[run_bucket] += n
                histogram.total += float(run_ms) / 1000
            if wait_bucket is not None:
                histogram = waits.setdefault(name, Histogram(WAIT_BUCKETS))
                histogram.counts[wait_bucket] += n
                histogram.total += float(wait_total)
    return runs, waits


def workers_seen(now: datetime, since: datetime, using: str) -> int:
    """Worker processes (``host:pid``, as attempts record them) that ended an attempt since
    ``since`` or hold a live lease now (their heartbeat extends it). An idle worker that ran
    nothing in the window is not seen: the database only knows workers by their attempts."""
    connection = connections[using]
    job_t, run_t = _q(connection, Job._meta.db_table), _q(connection, JobRun._meta.db_table)
    sql = (
        f"SELECT COUNT(*) FROM (SELECT r.worker FROM {run_t} r WHERE {_window_runs(connection)} "
        f"UNION SELECT worker FROM {job_t} WHERE status = %s AND lease_expires_at >= %s) w "
        f"WHERE w.worker <> ''"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [_dt(connection, since)] * 2 + [JobStatus.RUNNING.value, _dt(connection, now)]
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
