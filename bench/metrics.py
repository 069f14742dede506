#!/usr/bin/env python
"""What a Prometheus scrape costs at a million jobs: ``.venv/bin/python bench/metrics.py``.

1. Fills the database ``bgjobs_metrics`` (BENCH_METRICS_DATABASE_URL; created if missing,
   migrated) with ``--jobs`` jobs (1,000,000) over 7 days, 50 names, 4 queues, ~2% dead, a few
   queued, running, scheduled and retrying, and their attempts inserted in the order they ended
   (as workers do), in SQL; then VACUUM ANALYZE. ``--reuse`` keeps the rows already there.
2. Runs ``stats.snapshot()`` (what ``/metrics`` runs) and each of its statements three times,
   with a ``--window`` of 1 hour and of 24 hours, and prints their times and, with
   ``--explain``, their EXPLAIN (ANALYZE, BUFFERS) plans.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_METRICS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bgjobs_metrics"
)

LOAD = """
SET synchronous_commit = off;
TRUNCATE {run}, {job} CASCADE;
INSERT INTO {job} (id, name, queue, priority, args, kwargs, status, attempts, max_attempts,
  created_at, run_after, published_at, started_at, lease_expires_at, worker, cancel_requested,
  result, error, progress_message)
SELECT gen_random_uuid(), 'app.jobs.job_' || (i % 50),
  (ARRAY['default', 'emails', 'slow', 'reports'])[i % 4 + 1], 0, '[1, 2]', '{{}}', st,
  CASE WHEN st IN ('queued', 'scheduled') THEN 0 WHEN st = 'dead' THEN 4 ELSE 1 END, 4, c,
  CASE WHEN st = 'scheduled' THEN c + interval '1 day' END,
  CASE WHEN st = 'scheduled' THEN NULL ELSE c END,
  CASE WHEN st IN ('queued', 'scheduled') THEN NULL ELSE c + random() * interval '2 s' END,
  CASE WHEN st = 'running' THEN now() + interval '30 s' END,
  CASE WHEN st IN ('queued', 'scheduled') THEN '' ELSE 'host-' || i % 4 || ':' || i % 8 END,
  false, CASE WHEN st = 'succeeded' THEN '{{"ok": true}}'::jsonb END,
  CASE WHEN st = 'dead' THEN 'ValueError: this job always fails' ELSE '' END, ''
FROM (SELECT i, now() - interval '7 days' + i * (interval '7 days' / {jobs}) AS c,
        CASE WHEN i > {jobs} - 1000
             THEN (ARRAY['queued', 'queued', 'running', 'succeeded'])[i % 4 + 1]
             WHEN r < 0.95 THEN 'succeeded' WHEN r < 0.97 THEN 'dead'
             WHEN r < 0.98 THEN 'cancelled' WHEN r < 0.985 THEN 'retrying'
             WHEN r < 0.99 THEN 'scheduled' ELSE 'succeeded' END AS st
      FROM (SELECT i, random() AS r FROM generate_series(1, {jobs}) i) s) g;
UPDATE {job} SET finished_at = started_at + random() * interval '500 ms'
  WHERE status IN ('succeeded', 'dead', 'cancelled') AND started_at IS NOT NULL;
INSERT INTO {run} (job_id, attempt, status, worker, started_at, finished_at, duration_ms, error,
  traceback)
SELECT id, a, CASE WHEN status IN ('dead', 'retrying') THEN 'failed'
                   WHEN status = 'cancelled' THEN 'cancelled' ELSE 'succeeded' END,
  worker, started_at, COALESCE(finished_at, started_at + interval '100 ms'),
  (EXTRACT(EPOCH FROM COALESCE(finished_at, started_at + interval '100 ms') - started_at)
   * 1000)::int,
  CASE WHEN status IN ('dead', 'retrying') THEN 'ValueError: this job always fails' ELSE '' END,
  CASE WHEN status IN ('dead', 'retrying') THEN repeat('Traceback line\n', 40) ELSE '' END
FROM {job}, LATERAL generate_series(1, CASE WHEN status = 'dead' THEN 4 ELSE 1 END) a
WHERE started_at IS NOT NULL AND status <> 'running'
ORDER BY COALESCE(finished_at, started_at), a;
"""


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the jobs already loaded")
    parser.add_argument("--explain", action="store_true", help="print the plans too")
    args = parser.parse_args()
    ensure_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings

    from django_bgjobs.figures import stats
    from django_bgjobs.models import Job, JobRun

    call_command("migrate", verbosity=0)
    if not (args.reuse and Job.objects.count() == args.jobs):
        started = time.perf_counter()
        sql = LOAD.format(job=Job._meta.db_table, run=JobRun._meta.db_table, jobs=args.jobs)
        with connection.cursor() as cursor:
            cursor.execute(sql)
            cursor.execute(f"VACUUM ANALYZE {Job._meta.db_table}")
            cursor.execute(f"VACUUM ANALYZE {JobRun._meta.db_table}")
        print(
            f"loaded {args.jobs:,} jobs, {JobRun.objects.count():,} attempts "
            f"in {time.perf_counter() - started:.0f} s"
        )

    statements: list[tuple[str, Any]] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, params))
        return execute(sql, params, many, context)

    for window in (3600, 86400):
        statements.clear()

        with override_settings(BGJOBS={**settings.BGJOBS, "METRICS_WINDOW": window}):
            with connection.execute_wrapper(capture):
                started = time.perf_counter()
                snap = stats.snapshot()
                total = (time.perf_counter() - started) * 1000
            attempts = sum(h.count for h in snap.run_durations.values())
            print(f"\nwindow {window} s: snapshot {total:.0f} ms ({attempts:,} timed attempts)")
            with connection.cursor() as cursor:
                for sql, params in statements:
                    times = []
                    for _ in range(3):
                        started = time.perf_counter()
                        cursor.execute(sql, params)
                        cursor.fetchall()
                        times.append((time.perf_counter() - started) * 1000)
                    print(f"  {', '.join(f'{t:6.1f}' for t in times)} ms  {sql[:70]}...")
                    if args.explain:
                        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                        for (line,) in cursor.fetchall():
                            if "Key:" not in line:  # the bucket CASE expressions are long
                                print(f"      {line[:150]}")


if __name__ == "__main__":
    main()
