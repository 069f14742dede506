#!/usr/bin/env python
"""The admin at a million jobs: ``.venv/bin/python bench/dashboard.py``.

1. Fills the database ``bgjobs_dashboard`` (BENCH_DASHBOARD_DATABASE_URL; created if missing,
   migrated, its jobs replaced) with 1,000,000 jobs over 7 days and their ~1,050,000 attempts,
   in SQL with generate_series (bench/dashboard_load.sql: 8 job names, 3 queues, 1% dead, a
   backlog of queued jobs, some running, scheduled and retrying), then VACUUM ANALYZE, as
   autovacuum would have.
2. Renders, with Django's test client logged in as a superuser, the dashboard, the job list
   (and a few of its filters), a job's page and the bulk retry count: one warm-up, then
   ``--renders`` (5) each; prints p50 and max, and the statements each page made.
3. Prints EXPLAIN (ANALYZE, BUFFERS) summaries of the heaviest statements of the dashboard and
   the list, and what the dead-letter partial index buys (the same statements without it).

``--reuse`` keeps the jobs already there (if there are ``--jobs`` of them): the figures then
describe a database whose "now" has moved on since it was filled.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.dashboard_settings")

TARGET_MS = 300.0
NAMES = {  # the job names the load script writes, and their queues
    "shop.send_email": "emails",
    "shop.send_sms": "emails",
    "shop.resize_image": "default",
    "shop.sync_inventory": "default",
    "shop.charge_card": "default",
    "shop.build_report": "slow",
    "shop.export_csv": "slow",
    "shop.cleanup": "default",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def ensure_database(url: str) -> None:
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    params = {
        k: v
        for k, v in {
            "host": cfg.get("HOST"),
            "port": cfg.get("PORT"),
            "user": cfg.get("USER"),
            "password": cfg.get("PASSWORD"),
        }.items()
        if v
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (cfg["NAME"],)
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
            say(f"created database {cfg['NAME']}")


def register_jobs() -> None:
    """The load script's job names, defined (so the admin lists them, and no check warns)."""
    from django_bgjobs import bgjob

    for name, queue in NAMES.items():

        def job(*args: Any, **kwargs: Any) -> None:
            pass

        job.__qualname__ = job.__name__ = name.replace(".", "_")
        bgjob(name=name, queue=queue)(job)


def load(jobs: int) -> float:
    from django.db import connection

    sql = (REPO / "bench" / "dashboard_load.sql").read_text()
    now = datetime.now(UTC).isoformat()
    sql = sql.replace(":'now'", f"'{now}'").replace(":jobs", str(int(jobs)))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_bgjobs_job, django_bgjobs_jobrun, django_admin_log CASCADE")
    raw = connection.connection  # psycopg: several statements, no parameters
    with raw.transaction():
        raw.execute(sql)
    raw.autocommit = True
    raw.execute("VACUUM ANALYZE django_bgjobs_job")
    raw.execute("VACUUM ANALYZE django_bgjobs_jobrun")
    return time.perf_counter() - started


def render(client: Any, url: str, renders: int) -> tuple[list[float], list[dict[str, str]]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)  # warm-up (templates, plans, caches)
    assert response.status_code == 200, (url, response.status_code)
    times, queries = [], []
    for _ in range(renders):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries = captured.captured_queries
    return times, queries


def explain(sql: str, limit: int = 14) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
        lines = [row[0] for row in cursor.fetchall()]
    kept = [
        line
        for line in lines
        if not line.strip().startswith(
            ("Buffers:", "Planning:", "Worker ", "Sort Method", "Batches:", "Heap Blocks")
        )
    ]
    return kept[:limit] + ([f"  ... ({len(kept) - limit} more lines)"] if len(kept) > limit else [])


def without_dead_index(statements: list[tuple[str, Any]]) -> list[float]:
    """How long each statement takes with the dead-letter index dropped (then restored: the
    DROP is rolled back)."""
    from django.db import connection, transaction

    took = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX bgjobs_job_dead_idx")
            took = [timed(sql, params) for sql, params in statements]
        transaction.set_rollback(True)
    return took


def brin_comparison() -> tuple[float, float]:
    """The dashboard's heaviest statement (the day's attempts by minute and status, bounded by
    a walk back along the primary key), against a plain range filter served by a BRIN index
    on finished_at, created for the measurement and rolled back."""
    from django.db import connection, transaction
    from django.utils import timezone

    from django_bgjobs.figures import dashboard

    now = timezone.now()
    since = timezone.localtime(now).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=dashboard.DAY_HOURS - 1
    )
    select = (
        "SELECT date_trunc('minute', finished_at AT TIME ZONE 'UTC'), status, COUNT(*), "
        "MIN(id) FROM django_bgjobs_jobrun WHERE "
    )
    walk = timed(
        select + "id > COALESCE((SELECT id FROM django_bgjobs_jobrun WHERE "
        "finished_at < %s ORDER BY id DESC LIMIT 1), 0) AND finished_at >= %s "
        "GROUP BY 1, 2",
        [since, since],
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE INDEX bench_jobrun_finished_brin ON django_bgjobs_jobrun "
                "USING brin (finished_at)"
            )
            cursor.execute("ANALYZE django_bgjobs_jobrun")
            brin = timed(select + "finished_at >= %s GROUP BY 1, 2", [since])
        transaction.set_rollback(True)
    return walk, brin


def timed(sql: str, params: Any = ()) -> float:
    """The statement's execution time (ms) by EXPLAIN ANALYZE, best of three."""
    from django.db import connection

    best = float("inf")
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            best = min(best, float(cursor.fetchone()[0][0]["Execution Time"]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep the jobs already loaded")
    options = parser.parse_args()

    from bench.dashboard_settings import DATABASE_URL

    ensure_database(DATABASE_URL)
    import django

    django.setup()
    register_jobs()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.urls import reverse

    from django_bgjobs.models import Job, JobRun

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [Job._meta.db_table]
        )
        estimate = cursor.fetchone()[0]
    if options.reuse and abs(estimate - options.jobs) < options.jobs * 0.01:
        say(f"reusing the {estimate:,} jobs already loaded")
    else:
        say(f"loading {options.jobs:,} jobs and their attempts (generate_series) ...")
        say(f"  loaded in {load(options.jobs):.1f} s (VACUUM ANALYZE included)")

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size(%s)), "
            "pg_size_pretty(pg_total_relation_size(%s))",
            [Job._meta.db_table, JobRun._meta.db_table],
        )
        job_size, run_size = cursor.fetchone()
    jobs, runs = Job.objects.count(), JobRun.objects.count()
    say(
        f"PostgreSQL {version}; {jobs:,} jobs ({job_size}), {runs:,} attempts ({run_size}); "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    dead = Job.objects.filter(status="dead").order_by("-pk").first()
    assert dead is not None
    since = "2026-01-01T00:00:00"
    changelist = reverse("admin:django_bgjobs_job_changelist")
    pages = [
        ("dashboard", reverse("admin:django_bgjobs_job_dashboard")),
        ("job list", changelist),
        ("job list, status = dead", changelist + "?status__exact=dead"),
        ("job list, name = shop.cleanup", changelist + "?name=shop.cleanup"),
        ("job list, queue = slow, page 20", changelist + "?queue=slow&p=20"),
        (
            "job list, created today",
            changelist
            + "?created_at__gte="
            + datetime.now(UTC).strftime("%Y-%m-%d+00:00:00%%2B00:00"),
        ),
        ("job list, status = cancelled (0.3%)", changelist + "?status__exact=cancelled"),
        ("job list, a name no job has", changelist + "?name=shop.unknown"),
        ("job page (dead, 3 attempts)", reverse("admin:django_bgjobs_job_change", args=[dead.pk])),
        (
            "bulk retry: count",
            reverse("admin:django_bgjobs_job_bulk")
            + f"?bulk=retry&retry-name=shop.send_email&retry-since={since}",
        ),
    ]
    say()
    say(
        f"{'page':<34} {'p50 ms':>8} {'max ms':>8} {'statements':>10}   "
        f"target <= {TARGET_MS:.0f} ms (dashboard, job list)"
    )
    heaviest: dict[str, list[dict[str, str]]] = {}
    for label, url in pages:
        times, queries = render(client, url, options.renders)
        p50 = statistics.median(times)
        mark = ""
        if label in ("dashboard", "job list"):
            mark = "met" if p50 <= TARGET_MS else "MISSED"
            heaviest[label] = sorted(queries, key=lambda q: -float(q["time"]))[:3]
        say(f"{label:<34} {p50:>8.1f} {max(times):>8.1f} {len(queries):>10}   {mark}")

    for label, queries in heaviest.items():
        say()
        say(f"--- the heaviest statements of the {label} (EXPLAIN ANALYZE) ---")
        for query in queries:
            sql = query["sql"]
            say(
                f"* {float(query['time']) * 1000:.1f} ms in the render: "
                f"{sql[:150]}{'...' if len(sql) > 150 else ''}"
            )
            for line in explain(sql):
                say("    " + line)

    say()
    say("--- what the dead-letter partial index (bgjobs_job_dead_idx) buys ---")
    statements = {
        "dashboard: dead jobs by name": Job.objects.filter(status="dead")
        .order_by()
        .values_list("name")
        .annotate(n=Count("*")),
        "bulk retry: count of a name since": Job.objects.filter(
            status="dead", name="shop.send_email", finished_at__gte=datetime(2026, 1, 1, tzinfo=UTC)
        )
        .order_by()
        .values("pk"),
        "job list: status = dead, count": Job.objects.filter(status="dead")
        .order_by()
        .values("pk")[:10_001],
    }
    compiled = [qs.query.sql_with_params() for qs in statements.values()]
    with_index = dict(
        zip(statements, (timed(sql, params) for sql, params in compiled), strict=True)
    )
    without = dict(zip(statements, without_dead_index(compiled), strict=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_relation_size('bgjobs_job_dead_idx'))")
        size = cursor.fetchone()[0]
    for label in statements:
        say(f"{label:<36} with it {with_index[label]:7.1f} ms, without {without[label]:7.1f} ms")
    say(
        f"its size: {size} ({Job.objects.filter(status='dead').count():,} dead jobs); a job pays "
        "for it only when it dies (the predicate is false on enqueue, claim and success)"
    )
    say()
    say("--- not added: a BRIN index on the attempts' finished_at ---")
    pk_walk, brin = brin_comparison()
    say(
        f"the day's attempts counted by minute: as the dashboard does (primary key walk) "
        f"{pk_walk:.1f} ms; with a BRIN index {brin:.1f} ms"
    )


if __name__ == "__main__":
    main()
