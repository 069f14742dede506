"""The admin dashboard's figures, computed from the database when the page is rendered (the
admin draws them: ``admin/charts.py``).

Sized for millions of jobs (bench/dashboard.py measures it): nine statements, none of which
reads the whole job or attempt table.

- Attempts over the last 24 hours, counted by minute and outcome, in the database: the JobRun
  rows of the window are found through the primary key (attempts are inserted as they end, so
  the window is the ids above the newest row that ended before it, as in ``stats.py``). The
  same statement gives the first id of each minute, which bounds every other attempt query.
- Per job name, over the last hour: attempts, outcomes and p50/p95/p99 of run time and wait
  (PostgreSQL's ``percentile_cont``; computed in Python on other databases).
- Queues: queued, running and waiting jobs, each through the dispatcher's partial index.
- Dead jobs by name, through the dead-letter partial index (``bgjobs_job_dead_idx``).
- Recent failed attempts, and the workers of the last minutes (their attempts, and the leases
  their heartbeats keep on running jobs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from django.db import connections, router
from django.db.models import Count, Max, Min, Q, Subquery, Value
from django.db.models.functions import Coalesce, Left, TruncMinute
from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.figures.rows import (
    FAILED,
    Bucket,
    Dashboard,
    Failure,
    NameRow,
    Outcomes,
    QueueRow,
    WorkerRow,
)
from django_bgjobs.figures.stats import TIMED_RUNS, WAITING_SINCE
from django_bgjobs.models import Job, JobRun, RunStatus

DAY_HOURS = 24  # the hourly chart
HOUR_MINUTES = 60  # the per-minute chart; percentiles and rates of "the last hour"
WORKERS_WINDOW = timedelta(minutes=10)
RECENT_FAILURES = 15
ERROR_SHOWN = 300  # characters of an error the dashboard shows
PERCENTILES = (0.5, 0.95, 0.99)

# Attempts whose duration is the function's own: a `lost` one is timed until its lease was
# found expired, a `released` one until its worker's shutdown.
TIMED = TIMED_RUNS


# --- the queries ---------------------------------------------------------------------------------


def build(now: datetime | None = None, using: str | None = None) -> Dashboard:
    """Every figure of the dashboard, from the database, now."""
    started = time.perf_counter()
    now = now or timezone.now()
    using = using or router.db_for_read(Job)
    minute_now = now.astimezone(UTC).replace(second=0, microsecond=0)
    # Hours start on the hour of the current time zone (at :30 in some zones), counted back in
    # UTC so that a DST change makes no hour longer or shorter.
    hour_now = timezone.localtime(now).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    minutes = [
        Bucket(minute_now - timedelta(minutes=HOUR_MINUTES - 1 - i)) for i in range(HOUR_MINUTES)
    ]
    hours = [Bucket(hour_now - timedelta(hours=DAY_HOURS - 1 - i)) for i in range(DAY_HOURS)]

    first_ids = _count_attempts(using, hours[0].start, minutes, hours)

    def first_id(since: datetime) -> int | None:
        """The smallest JobRun id among attempts that ended at or after ``since`` (rounded
        down to its minute); None when no attempt ended since."""
        floor = since.replace(second=0, microsecond=0)
        ids = [i for minute, i in first_ids.items() if minute >= floor]
        return min(ids) if ids else None

    names = _by_name(using, minutes[0].start, first_id(minutes[0].start))
    dead = dead_by_name(using)
    for name, n in dead.items():
        names.setdefault(name, NameRow(name)).dead = n
    dashboard = Dashboard(
        now=now,
        queues=_queues(using, now),
        minutes=minutes,
        hours=hours,
        names=sorted(names.values(), key=lambda row: row.name),
        failures=_failures(using, first_id(hours[0].start)),
        workers=_workers(using, now, first_id(now - WORKERS_WINDOW)),
        dead=sum(dead.values()),
    )
    dashboard.took_ms = (time.perf_counter() - started) * 1000
    return dashboard


def _count_attempts(
    using: str, since: datetime, minutes: list[Bucket], hours: list[Bucket]
) -> dict[datetime, int]:
    """Fill the buckets with the attempts that ended since ``since``, counted by minute and
    status in one grouped statement; returns the first JobRun id of each minute."""
    runs = JobRun.objects.using(using)
    # The newest attempt that ended before the window: every id above it is a candidate.
    before = runs.filter(finished_at__lt=since).order_by("-pk").values("pk")[:1]
    rows = (
        runs.filter(pk__gt=Coalesce(Subquery(before), Value(0)), finished_at__gte=since)
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .order_by()
        .values_list("minute", "status")
        .annotate(n=Count("*"), first=Min("pk"))
    )
    by_minute = {b.start: b for b in minutes}
    first_ids: dict[datetime, int] = {}
    hour_index = 0
    for minute, status, n, first in sorted(rows, key=lambda row: row[0]):
        first_ids[minute] = min(first, first_ids.get(minute, first))
        if minute in by_minute:
            by_minute[minute].outcomes.add(status, n)
        while hour_index + 1 < len(hours) and hours[hour_index + 1].start <= minute:
            hour_index += 1
        if minute >= hours[hour_index].start:
            hours[hour_index].outcomes.add(status, n)
    return first_ids


def _by_name(using: str, since: datetime, first_id: int | None) -> dict[str, NameRow]:
    """Per job name, the attempts that ended since ``since``: outcomes, and the percentiles of
    run time (succeeded, failed, cancelled attempts) and wait: from the job's publication to
    the attempt's start, known for the job's latest attempt when the job was not published
    again since (as in stats.attempt_figures)."""
    if first_id is None:
        return {}
    connection = connections[using]
    if connection.vendor == "postgresql":
        return _by_name_postgresql(using, since, first_id)
    rows: dict[str, NameRow] = {}
    runs_ms: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}
    window = (
        JobRun.objects.using(using)
        .filter(pk__gte=first_id, finished_at__gte=since)
        .order_by()
        .values_list(
            "job__name",
            "status",
            "duration_ms",
            "attempt",
            "started_at",
            "job__attempts",
            "job__published_at",
        )
    )
    for name, status, duration_ms, attempt, started_at, attempts, published_at in window:
        row = rows.setdefault(name, NameRow(name))
        row.outcomes.add(status, 1)
        if status in TIMED and duration_ms is not None:
            runs_ms.setdefault(name, []).append(float(duration_ms))
        if attempt == attempts and published_at is not None and published_at <= started_at:
            waits.setdefault(name, []).append((started_at - published_at).total_seconds())
    for name, row in rows.items():
        row.run_ms = percentiles(runs_ms.get(name, []))
        row.wait_s = percentiles(waits.get(name, []))
    return rows


def _by_name_postgresql(using: str, since: datetime, first_id: int) -> dict[str, NameRow]:
    connection = connections[using]
    quote = connection.ops.quote_name
    job_t, run_t = quote(Job._meta.db_table), quote(JobRun._meta.db_table)

    def listed(statuses: Iterable[RunStatus]) -> str:
        return ", ".join(f"'{status.value}'" for status in statuses)

    fractions = ", ".join(str(p) for p in PERCENTILES)
    sql = (
        f"SELECT j.name, COUNT(*) FILTER (WHERE r.status = '{RunStatus.SUCCEEDED.value}'), "
        f"COUNT(*) FILTER (WHERE r.status IN ({listed(FAILED)})), COUNT(*), "
        f"percentile_cont(ARRAY[{fractions}]) WITHIN GROUP (ORDER BY r.duration_ms) "
        f"FILTER (WHERE r.status IN ({listed(TIMED)}) AND r.duration_ms IS NOT NULL), "
        f"percentile_cont(ARRAY[{fractions}]) WITHIN GROUP "
        f"(ORDER BY EXTRACT(EPOCH FROM (r.started_at - j.published_at))) "
        f"FILTER (WHERE r.attempt = j.attempts AND j.published_at <= r.started_at) "
        f"FROM {run_t} r JOIN {job_t} j ON j.id = r.job_id "
        f"WHERE r.id >= %s AND r.finished_at >= %s GROUP BY j.name"
    )
    rows: dict[str, NameRow] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [first_id, since])
        for name, succeeded, failed, total, run_ms, wait_s in cursor.fetchall():
            rows[name] = NameRow(
                name,
                Outcomes(succeeded, failed, total - succeeded - failed),
                _triple(run_ms),
                _triple(wait_s),
            )
    return rows


def _triple(values: Sequence[float] | None) -> tuple[float, float, float] | None:
    if not values or values[0] is None:
        return None
    return float(values[0]), float(values[1]), float(values[2])


def percentiles(values: list[float]) -> tuple[float, float, float] | None:
    """p50, p95, p99 interpolated between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)

    def at(fraction: float) -> float:
        position = fraction * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    p50, p95, p99 = (at(p) for p in PERCENTILES)
    return p50, p95, p99


def _queues(using: str, now: datetime) -> list[QueueRow]:
    """Queued (with the oldest one's wait, as stats.queue_figures measures it), running,
    waiting and blocked jobs per queue: four statements, each over one of the partial indexes
    (a single ``status IN (...)`` would read the whole table)."""
    jobs = Job.objects.using(using).order_by()
    queued = {
        queue: (n, since)
        for queue, n, since in jobs.queued()
        .values_list("queue")
        .annotate(n=Count("*"), since=Min(WAITING_SINCE))
    }
    running = dict(jobs.running().values_list("queue").annotate(n=Count("*")))
    waiting = dict(jobs.waiting().values_list("queue").annotate(n=Count("*")))
    blocked = dict(jobs.blocked().values_list("queue").annotate(n=Count("*")))
    known = list(bgjobs_settings.QUEUES)
    others = sorted((set(queued) | set(running) | set(waiting) | set(blocked)) - set(known))
    rows = []
    for queue in known + others:
        depth, since = queued.get(queue, (0, None))
        age = max((now - since).total_seconds(), 0.0) if since is not None else None
        rows.append(
            QueueRow(
                queue,
                depth,
                age,
                running.get(queue, 0),
                waiting.get(queue, 0),
                known=queue in known,
                blocked=blocked.get(queue, 0),
            )
        )
    return rows


def dead_by_name(using: str) -> dict[str, int]:
    return dict(
        Job.objects.using(using).dead().order_by().values_list("name").annotate(n=Count("*"))
    )


def _failures(using: str, first_id: int | None) -> list[Failure]:
    """The newest failed or lost attempts of the last day: a walk back along JobRun's primary
    key, stopped at the day's first id."""
    if first_id is None:
        return []
    rows = (
        JobRun.objects.using(using)
        .filter(pk__gte=first_id, status__in=FAILED)
        .annotate(error_start=Left("error", ERROR_SHOWN))
        .order_by("-pk")
        .values_list(
            "pk", "job_id", "job__name", "attempt", "status", "finished_at", "error_start"
        )[:RECENT_FAILURES]
    )
    return [Failure(*row) for row in rows]


def _workers(using: str, now: datetime, first_id: int | None) -> list[WorkerRow]:
    """Workers (``host:pid`` of the process that ran an attempt) seen in WORKERS_WINDOW: those
    that ended attempts, and those that hold a running job, seen at their last heartbeat (the
    lease it extended, less LEASE_SECONDS). A worker that has run nothing lately is not seen:
    the database knows workers only by their attempts."""
    workers: dict[str, WorkerRow] = {}
    if first_id is not None:
        for worker, ended, last in (
            JobRun.objects.using(using)
            .filter(pk__gte=first_id, finished_at__gte=now - WORKERS_WINDOW)
            .exclude(worker="")
            .order_by()
            .values_list("worker")
            .annotate(n=Count("*"), last=Max("finished_at"))
        ):
            workers[worker] = WorkerRow(worker, last, ended=ended)
    lease = timedelta(seconds=bgjobs_settings.LEASE_SECONDS)
    for worker, running, stale, lease_until in (
        Job.objects.using(using)
        .running()
        .exclude(worker="")
        .order_by()
        .values_list("worker")
        .annotate(
            n=Count("*"),
            stale=Count("pk", filter=Q(lease_expires_at__lt=now)),
            last=Max("lease_expires_at"),
        )
    ):
        heartbeat = (lease_until - lease) if lease_until is not None else now
        row = workers.setdefault(worker, WorkerRow(worker, heartbeat))
        row.running, row.stale_leases = running, stale
        row.last_seen = max(row.last_seen, min(heartbeat, now))
    return sorted(workers.values(), key=lambda w: w.worker)
