#!/usr/bin/env python
"""Bare Celery vs django-bgjobs, side by side, on PostgreSQL + Redis: ``python bench/run.py``.

Three measurements, one run, figures printed as a table (no asserts; the ratios are printed next
to the targets):

1. Enqueue latency per call (p50/p99): ``noop.delay()`` of a no-op ``shared_task`` vs
   ``noop_job.enqueue()`` of a no-op ``@bgjob`` in autocommit (so the INSERT, the commit and the
   on-commit publish all happen inside the call). Calls alternate in blocks of 100 between the
   two, after a warm-up, with no worker running.
2. Drain throughput: N no-op jobs enqueued with the worker stopped, then ONE worker with 2 prefork
   processes started as a subprocess. Timed from the first job's start to the last job's
   completion, both recorded by the jobs' side: for bare Celery the task writes its start time
   (SET NX) and an INCR to Redis, and the one whose INCR reaches N writes the end time; for
   bgjobs min(JobRun.started_at) .. max(JobRun.finished_at) over the N jobs, all of which must be
   ``succeeded`` with one JobRun each. Worker start-up is outside the window (it is printed too).
   The broker queue must then be empty (left-over messages, e.g. republished duplicates, are
   counted and consumed first) before measurement 3 starts.
3. Enqueue->start latency (p50/p99) with that worker running and warm: jobs enqueued one at a time
   SPACING ms apart. bgjobs: JobRun.started_at - Job.created_at (created_at is taken at the start
   of enqueue()). Bare: time.time() in the task minus time.time() taken just before .delay().

The bare worker is ``celery -A bench.celery_app worker`` (with bgjobs' dispatcher off), the bgjobs
worker is ``python -m django bgjobs worker`` (= ``manage.py bgjobs worker``); both on the same
Celery app settings (json, acks_late, prefetch 1: bgjobs' SAFE_DEFAULTS + bench/settings.py).

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/bgjobs_bench, created if
missing), CELERY_BROKER_URL (default redis://127.0.0.1:6379/14, FLUSHed), BENCH_CONN_MAX_AGE
(Django's CONN_MAX_AGE for the bench, default 0 = Django's default; "none" = persistent).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")


# --- small helpers -----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))  # ceil(q * n)
    return ordered[rank - 1]


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Figures:
    enqueue_ms: dict[str, list[float]] = field(default_factory=dict)
    drain_seconds: dict[str, float] = field(default_factory=dict)
    drain_wall: dict[str, float] = field(default_factory=dict)
    prepare_seconds: dict[str, float] = field(default_factory=dict)
    start_latency_ms: dict[str, list[float]] = field(default_factory=dict)
    pg_work: dict[str, tuple[int, int]] = field(default_factory=dict)  # sessions, commits
    leftover: dict[str, tuple[int, float]] = field(default_factory=dict)  # messages, seconds
    insert_floor_ms: list[float] = field(default_factory=list)
    load: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- database and broker set-up ----------------------------------------------------------------


def ensure_database() -> None:
    """CREATE DATABASE for DATABASE_URL's name if it does not exist (through the postgres db)."""
    import dj_database_url
    import psycopg

    from bench import settings as bench_settings

    cfg = dj_database_url.parse(bench_settings.DATABASE_URL)
    params = {
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
    }
    params = {k: v for k, v in params.items() if v}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (cfg["NAME"],)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
            say(f"created database {cfg['NAME']}")


def redis_client():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def broker_backlog(queue: str) -> int:
    """Messages waiting in a kombu Redis queue (every priority list) plus unacknowledged ones."""
    r = redis_client()
    names = [queue, *(f"{queue}\x06\x16{p}" for p in range(1, 10))]
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    pipe.hlen("unacked")
    return sum(pipe.execute())


def wait_for_empty_queue(figures: Figures, side: str, queue: str, worker: Worker) -> None:
    """Before measuring latency, let the worker consume whatever is still in the broker."""
    left = broker_backlog(queue)
    t0 = time.monotonic()
    wait_for(
        lambda: broker_backlog(queue) == 0,
        f"{side}: empty broker queue",
        worker,
        timeout=300,
        poll=0.1,
    )
    figures.leftover[side] = (left, time.monotonic() - t0)


def reset_state() -> None:
    """Empty the broker's Redis DB and the job tables."""
    from django.db import connection

    from django_bgjobs.models import Job, JobRun

    redis_client().flushdb()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {JobRun._meta.db_table}, {Job._meta.db_table} CASCADE")


def environment() -> list[tuple[str, str]]:
    import celery
    import django
    import kombu
    import psycopg
    import redis as redis_py
    from django.db import connection

    info = redis_client().info("server")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync_commit = cursor.fetchone()[0]
        cursor.execute("SHOW fsync")
        fsync = cursor.fetchone()[0]
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from django.conf import settings

    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "django_bgjobs"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        revision = f"{head}{' + uncommitted changes in django_bgjobs/' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        revision = "?"
    return [
        ("django_bgjobs", revision),
        ("python", platform.python_version()),
        ("celery", celery.__version__),
        ("kombu", kombu.__version__),
        ("django", django.get_version()),
        ("redis-py", redis_py.__version__),
        ("psycopg", psycopg.__version__),
        ("redis-server", str(info.get("redis_version"))),
        ("PostgreSQL", f"{pg_version} (synchronous_commit={sync_commit}, fsync={fsync})"),
        ("cores", f"{os.cpu_count()} ({usable} usable), {cpu}"),
        ("os", platform.platform()),
        ("CONN_MAX_AGE", repr(settings.DATABASES["default"]["CONN_MAX_AGE"])),
    ]


def pg_counters() -> tuple[int, int]:
    """(sessions established, transactions committed) so far in this database, from
    pg_stat_database (PostgreSQL 14+; updated by each backend at most once a second and when it
    exits, so read them with the worker stopped)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        sessions, commits = cursor.fetchone()
    return int(sessions), int(commits)


def settle_stats() -> tuple[int, int]:
    time.sleep(1.2)  # let backends (ours included) report their counters
    return pg_counters()


# --- worker subprocesses -----------------------------------------------------------------------


class Worker:
    """A real Celery worker process (and its prefork children) started for one measurement."""

    def __init__(self, kind: str, concurrency: int, logdir: Path) -> None:
        self.kind = kind
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": os.pathsep.join(
                [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "PYTHONUNBUFFERED": "1",
        }
        if kind == "bare":
            from bench.tasks import BARE_QUEUE

            env["BENCH_DISPATCHER"] = "off"  # nothing of bgjobs runs in the bare worker
            cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.celery_app",
                "worker",
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "--queues",
                BARE_QUEUE,
                "--loglevel",
                "warning",
                "--hostname",
                f"bench-bare-{os.getpid()}@%h",
            ]
        else:
            env["BENCH_DISPATCHER"] = "worker"
            cmd = [
                sys.executable,
                "-m",
                "django",
                "bgjobs",
                "worker",
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "--loglevel",
                "warning",
                "--hostname",
                f"bench-bgjobs-{os.getpid()}@%h",
            ]
        self.cmd = cmd
        self.log_path = logdir / f"worker-{kind}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.spawned_at = time.time()
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.kind} worker exited with {self.proc.returncode}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                # Only our own worker's process group (its prefork children).
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


@contextmanager
def running(kind: str, concurrency: int, logdir: Path):
    worker = Worker(kind, concurrency, logdir)
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(condition, what: str, worker: Worker, timeout: float, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{worker.tail()}")
        time.sleep(poll)


# --- 1. enqueue latency ------------------------------------------------------------------------


def measure_enqueue(figures: Figures, calls: int, warmup: int, block: int = 100) -> None:
    from django.db import connection

    from bench.jobs import noop_job
    from bench.tasks import noop

    assert connection.get_autocommit(), "enqueue latency is measured in autocommit"
    clock = time.perf_counter_ns
    bare: list[float] = []
    bg: list[float] = []

    def bare_call() -> None:
        noop.delay()

    def bg_call() -> None:
        noop_job.enqueue()

    for _ in range(warmup):
        bare_call()
        bg_call()
    done = 0
    while done < calls:
        n = min(block, calls - done)
        for fn, out in ((bare_call, bare), (bg_call, bg)):
            for _ in range(n):
                t0 = clock()
                fn()
                out.append((clock() - t0) / 1e6)
        done += n
    figures.enqueue_ms = {"bare": bare, "bgjobs": bg}
    # Check that the bgjobs messages really went to the broker: sent by the publisher thread,
    # beside the calls (celery/publisher.py), all of them by now.
    from django_bgjobs.celery import publisher

    publisher.flush()
    r = redis_client()
    queued = r.llen("default") + sum(r.llen(f"default\x06\x16{p}") for p in range(1, 10))
    figures.notes.append(
        f"enqueue: {calls + warmup} bgjobs messages expected in Redis queue 'default', "
        f"found {queued}"
    )


# --- database work per job, counted in-process --------------------------------------------------


class DbCounter:
    """Queries, commits (atomic blocks) and new connections on the default connection."""

    def __init__(self) -> None:
        self.queries = 0
        self.autocommit_statements = 0
        self.commits = 0
        self.connects = 0
        self.statements: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        self.queries += 1
        if not connection.in_atomic_block:
            self.autocommit_statements += 1
        self.statements.append(sql.split(" ", 2)[0] + " " + _table_of(sql))
        return execute(sql, params, many, context)

    @property
    def transactions(self) -> int:
        return self.commits + self.autocommit_statements


def _table_of(sql: str) -> str:
    for word in ("UPDATE", "INTO", "FROM"):
        if f"{word} " in sql:
            rest = sql.split(f"{word} ", 1)[1].split()
            return rest[0].strip('"') if rest else ""
    return ""


@contextmanager
def counting():
    from django.db import connection
    from django.db.backends.signals import connection_created

    counter = DbCounter()
    original_commit = connection.commit

    def commit() -> None:
        counter.commits += 1
        original_commit()

    def created(sender, connection, **kwargs) -> None:
        counter.connects += 1

    # The claim, the finish and the admission run as server-side prepared statements on a
    # psycopg cursor of their own, which Django's execute wrappers do not see: count them here.
    from django_bgjobs import _sql

    real_prepared, real_rows = _sql._execute_prepared, _sql._rows

    def prepared(conn, sql, params):  # type: ignore[no-untyped-def]
        counter(lambda *args: None, sql, params, False, {})
        return real_prepared(conn, sql, params)

    def rows(conn, sql, params, is_prepared):  # type: ignore[no-untyped-def]
        if is_prepared:
            counter(lambda *args: None, sql, params, False, {})
        return real_rows(conn, sql, params, is_prepared)

    connection.commit = commit
    connection_created.connect(created, weak=False)
    _sql._execute_prepared, _sql._rows = prepared, rows
    try:
        with connection.execute_wrapper(counter):
            yield counter
    finally:
        _sql._execute_prepared, _sql._rows = real_prepared, real_rows
        connection_created.disconnect(created)
        del connection.commit


def measure_db_work(figures: Figures, samples: int = 50) -> dict[str, DbCounter]:
    """Per enqueue() and per execution of the worker's task body (close_old_connections +
    run_attempt), in this process, with publishing captured (no broker)."""
    from bench.jobs import noop_job
    from django_bgjobs.testing import capture_jobs
    from django_bgjobs.worker.task import execute

    with capture_jobs():
        jobs = [noop_job.enqueue() for _ in range(3)]  # warm-up
        for job in jobs:
            execute(str(job.pk), 1)
        with counting() as enq:
            jobs = [noop_job.enqueue() for _ in range(samples)]
        with counting() as run:
            results = [execute(str(job.pk), 1) for job in jobs]
    if set(results) != {"succeeded"}:
        figures.notes.append(f"db work: unexpected outcomes {sorted(set(results))}")
    return {"enqueue": enq, "execute": run, "samples": samples}  # type: ignore[dict-item]


def measure_insert_floor(samples: int = 500) -> list[float]:
    """One single-row INSERT + COMMIT into a logged table, raw psycopg cursor, autocommit: the
    least a durable enqueue can cost in this database (ms per call)."""
    from django.db import connection

    out = []
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_insert_probe (id bigserial, v text)")
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            cursor.execute("INSERT INTO bench_insert_probe (v) VALUES (%s)", ["x"])
            out.append((time.perf_counter_ns() - t0) / 1e6)
        cursor.execute("DROP TABLE bench_insert_probe")
    return out


# --- 2 + 3. drain throughput and enqueue->start latency ----------------------------------------


def bench_bare(
    figures: Figures, n: int, latency_jobs: int, spacing: float, concurrency: int, logdir: Path
) -> None:
    from bench import tasks

    r = redis_client()
    r.flushdb()
    r.set(tasks.TARGET_KEY, n)
    t0 = time.perf_counter()
    for _ in range(n):
        tasks.counted.delay()
    figures.prepare_seconds["bare"] = time.perf_counter() - t0

    before = settle_stats()
    with running("bare", concurrency, logdir) as worker:
        wait_for(lambda: r.get(tasks.LAST_KEY) is not None, f"{n} bare tasks", worker, timeout=300)
        done_wall = time.time()
        first = float(r.get(tasks.FIRST_KEY))
        last = float(r.get(tasks.LAST_KEY))
        figures.drain_seconds["bare"] = last - first
        figures.drain_wall["bare"] = done_wall - worker.spawned_at
        figures.notes.append(f"bare drain: {int(r.get(tasks.DONE_KEY))} completions counted")

        wait_for_empty_queue(figures, "bare", tasks.BARE_QUEUE, worker)
        r.delete(tasks.LATENCY_KEY)
        for _ in range(latency_jobs):
            tasks.stamped.delay(time.time())
            time.sleep(spacing)
        wait_for(
            lambda: r.llen(tasks.LATENCY_KEY) >= latency_jobs,
            "bare latency tasks",
            worker,
            timeout=120,
            poll=0.05,
        )
        figures.start_latency_ms["bare"] = [
            float(v) * 1000 for v in r.lrange(tasks.LATENCY_KEY, 0, -1)
        ]
    after = settle_stats()
    figures.pg_work["bare"] = (after[0] - before[0], after[1] - before[1])


def bench_bgjobs(
    figures: Figures, n: int, latency_jobs: int, spacing: float, concurrency: int, logdir: Path
) -> None:
    from django.db.models import Count, Max, Min

    from bench.jobs import noop_job
    from django_bgjobs import enqueue_many
    from django_bgjobs.celery import publisher
    from django_bgjobs.models import Job, JobRun, JobStatus

    reset_state()
    t0 = time.perf_counter()
    batch = 500
    for start in range(0, n, batch):
        enqueue_many(noop_job.prepare() for _ in range(min(batch, n - start)))
    # Every message at the broker before the worker starts: the publisher thread of this
    # process must not share the cores with the drain.
    publisher.flush(120)
    figures.prepare_seconds["bgjobs"] = time.perf_counter() - t0
    drain_ids = set(Job.objects.values_list("pk", flat=True))
    assert len(drain_ids) == n

    def finished() -> bool:
        return Job.objects.filter(status=JobStatus.SUCCEEDED).count() >= n

    before = settle_stats()
    with running("bgjobs", concurrency, logdir) as worker:
        wait_for(finished, f"{n} bgjobs jobs", worker, timeout=400, poll=0.25)
        done_wall = time.time()
        span = JobRun.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
        figures.drain_seconds["bgjobs"] = (span["last"] - span["first"]).total_seconds()
        figures.drain_wall["bgjobs"] = done_wall - worker.spawned_at
        statuses = {
            row["status"]: row["n"] for row in Job.objects.values("status").annotate(n=Count("pk"))
        }
        runs = {
            row["status"]: row["n"]
            for row in JobRun.objects.values("status").annotate(n=Count("pk"))
        }
        figures.notes.append(
            f"bgjobs drain: jobs by status {statuses}; JobRun rows by status {runs} "
            f"(every attempt tracked in PostgreSQL)"
        )

        wait_for_empty_queue(figures, "bgjobs", "default", worker)
        latency_ids = []
        for _ in range(latency_jobs):
            latency_ids.append(noop_job.enqueue().pk)
            time.sleep(spacing)

        def all_started() -> bool:
            return (
                Job.objects.filter(pk__in=latency_ids, status=JobStatus.SUCCEEDED).count()
                >= latency_jobs
            )

        wait_for(all_started, "bgjobs latency jobs", worker, timeout=120, poll=0.05)
        rows = JobRun.objects.filter(job_id__in=latency_ids).values_list(
            "started_at", "job__created_at"
        )
        figures.start_latency_ms["bgjobs"] = [
            (started - created).total_seconds() * 1000 for started, created in rows
        ]
    after = settle_stats()
    figures.pg_work["bgjobs"] = (after[0] - before[0], after[1] - before[1])


# --- report ------------------------------------------------------------------------------------


def report(
    figures: Figures, env: list[tuple[str, str]], db: dict, args: argparse.Namespace, elapsed: float
) -> None:
    say()
    say("Environment")
    for key, value in env:
        say(f"  {key:<14} {value}")

    rows: list[tuple[str, float, float, str, str]] = []

    def row(label: str, bare: float, bg: float, unit: str, target: str = "") -> None:
        rows.append((label, bare, bg, unit, target))

    eb, eg = figures.enqueue_ms["bare"], figures.enqueue_ms["bgjobs"]
    row("1. enqueue latency p50", pct(eb, 0.5), pct(eg, 0.5), "ms", "bgjobs <= 2.0x bare")
    row("   enqueue latency p99", pct(eb, 0.99), pct(eg, 0.99), "ms")
    row("   enqueue latency mean", sum(eb) / len(eb), sum(eg) / len(eg), "ms")
    db_, dg = figures.drain_seconds["bare"], figures.drain_seconds["bgjobs"]
    row(
        f"2. drain throughput ({args.jobs} jobs)",
        args.jobs / db_,
        args.jobs / dg,
        "jobs/s",
        "bgjobs >= 0.5x bare",
    )
    row("   drain time (first start..last end)", db_, dg, "s")
    row(
        "   incl. worker start-up (spawn..done)",
        figures.drain_wall["bare"],
        figures.drain_wall["bgjobs"],
        "s",
    )
    sb, sg = figures.start_latency_ms["bare"], figures.start_latency_ms["bgjobs"]
    row("3. enqueue->start latency p50", pct(sb, 0.5), pct(sg, 0.5), "ms", "(reported)")
    row("   enqueue->start latency p99", pct(sb, 0.99), pct(sg, 0.99), "ms")

    say()
    say(
        f"Results (one worker, --concurrency {args.concurrency} prefork; enqueue: "
        f"{args.calls} calls each after {args.warmup} warm-up; latency: {args.latency_jobs} "
        f"jobs {args.spacing_ms:g} ms apart)"
    )
    header = (
        f"  {'measurement':<40} {'bare Celery':>12} {'bgjobs':>12} {'unit':<7} "
        f"{'bgjobs/bare':>11}  target"
    )
    say(header)
    say("  " + "-" * (len(header) + 12))
    for label, bare, bg, unit, target in rows:
        ratio = bg / bare if bare else float("nan")
        say(f"  {label:<40} {bare:>12.3f} {bg:>12.3f} {unit:<7} {ratio:>10.2f}x  {target}")

    say()
    say("Against the targets")
    enqueue_ratio = pct(eg, 0.5) / pct(eb, 0.5)
    drain_ratio = (args.jobs / dg) / (args.jobs / db_)
    say(
        f"  enqueue p50: bgjobs = {enqueue_ratio:.2f}x bare Celery (target <= 2.00x): "
        f"{'met' if enqueue_ratio <= 2 else 'MISSED'}"
    )
    say(
        f"  drain throughput: bgjobs = {drain_ratio:.2f}x bare Celery (target >= 0.50x): "
        f"{'met' if drain_ratio >= 0.5 else 'MISSED'}"
    )
    say(
        f"  enqueue->start p50: bgjobs {pct(sg, 0.5):.2f} ms vs bare {pct(sb, 0.5):.2f} ms "
        f"({pct(sg, 0.5) / pct(sb, 0.5):.2f}x)"
    )

    floor = figures.insert_floor_ms
    say(
        f"  floor for a durable enqueue: bare .delay() p50 {pct(eb, 0.5):.3f} ms + one raw "
        f"INSERT+COMMIT p50 {pct(floor, 0.5):.3f} ms (p99 {pct(floor, 0.99):.3f}) = "
        f"{(pct(eb, 0.5) + pct(floor, 0.5)) / pct(eb, 0.5):.2f}x bare, before any ORM work"
    )

    samples = db["samples"]
    say()
    say(f"Database work per job (in-process, {samples} samples, publishing captured)")
    for label, key in (("enqueue()", "enqueue"), ("execute (task body)", "execute")):
        c: DbCounter = db[key]
        say(
            f"  {label:<22} {c.queries / samples:5.2f} queries, {c.transactions / samples:5.2f} "
            f"transactions ({c.commits / samples:.2f} atomic commits + "
            f"{c.autocommit_statements / samples:.2f} autocommit statements), "
            f"{c.connects / samples:.2f} new connections"
        )
    per = db["execute"].statements[: len(db["execute"].statements) // samples]
    say(f"  execute statements: {', '.join(per)}")

    say()
    jobs_total = args.jobs + args.latency_jobs
    say(
        f"PostgreSQL work while each worker ran ({jobs_total} jobs: drain + latency; from "
        "pg_stat_database, includes this script's polling)"
    )
    for side in ("bare", "bgjobs"):
        sessions, commits = figures.pg_work[side]
        say(
            f"  {side:<7} {sessions:>7} sessions opened ({sessions / jobs_total:.2f}/job), "
            f"{commits:>7} transactions committed ({commits / jobs_total:.2f}/job)"
        )

    for side in ("bare", "bgjobs"):
        left, seconds = figures.leftover[side]
        say(
            f"  {side:<7} messages still in the broker when all {args.jobs} were done: {left} "
            f"(consumed in {seconds:.1f}s before measurement 3)"
        )

    say()
    say("Notes")
    for note in figures.notes:
        say(f"  - {note}")
    say(
        f"  - pre-loading the drain queue (not timed): bare {figures.prepare_seconds['bare']:.2f}s "
        f"({args.jobs} x .delay()), bgjobs {figures.prepare_seconds['bgjobs']:.2f}s "
        f"(enqueue_many in batches of 500)"
    )
    say(
        "  - load average (1, 5, 15 min): "
        + "; ".join(f"{when} {a:.2f} {b:.2f} {c:.2f}" for when, (a, b, c) in figures.load)
        + f" on {os.cpu_count()} cores"
    )
    say(f"  - bench finished in {elapsed:.1f}s")


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="enqueue calls measured per side")
    parser.add_argument("--warmup", type=int, default=200, help="enqueue warm-up calls per side")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs drained per side")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes")
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument(
        "--spacing-ms",
        type=float,
        default=20.0,
        help="pause between enqueues in the latency measurement (a modest rate: "
        "keep it below what the bgjobs worker drains, or it measures queueing)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker log files")
    args = parser.parse_args()

    started = time.monotonic()
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    from django_bgjobs.celery.app import get_celery_app

    call_command("migrate", interactive=False, verbosity=0)
    get_celery_app()  # the app both sides publish through (shared_task binds to it)
    reset_state()
    env = environment()
    say("bench: " + ", ".join(f"{k} {v}" for k, v in env[:9]))

    figures = Figures()
    figures.load.append(("start", os.getloadavg()))
    cores = os.cpu_count() or 1
    if figures.load[0][1][0] > cores * 0.5:
        say(
            f"warning: load average {figures.load[0][1][0]:.2f} on {cores} cores: other work on "
            "this machine will distort the figures"
        )
    logdir = Path(tempfile.mkdtemp(prefix="bgjobs-bench-"))
    try:
        say(f"[1/4] enqueue latency: {args.calls} calls per side ...")
        measure_enqueue(figures, args.calls, args.warmup)
        reset_state()
        say("[2/4] database work per enqueue and per executed job ...")
        db = measure_db_work(figures)
        figures.insert_floor_ms = measure_insert_floor()
        reset_state()
        say(f"[3/4] bare Celery: drain {args.jobs}, then enqueue->start latency ...")
        bench_bare(
            figures, args.jobs, args.latency_jobs, args.spacing_ms / 1000, args.concurrency, logdir
        )
        say(f"[4/4] django-bgjobs: drain {args.jobs}, then enqueue->start latency ...")
        bench_bgjobs(
            figures, args.jobs, args.latency_jobs, args.spacing_ms / 1000, args.concurrency, logdir
        )
        reset_state()
    finally:
        if args.keep_logs:
            say(f"worker logs kept in {logdir}")
        else:
            for path in logdir.iterdir():
                path.unlink()
            logdir.rmdir()
    figures.load.append(("end", os.getloadavg()))
    report(figures, env, db, args, time.monotonic() - started)


if __name__ == "__main__":
    main()
