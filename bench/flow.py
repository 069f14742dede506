#!/usr/bin/env python
"""Flow control on PostgreSQL + Redis: ``python bench/flow.py`` (also run by bench/run).

1. Drain: 5,000 no-op jobs over 1,000 keys with a concurrency of 1 per key (5 jobs a key),
   against the same 5,000 jobs of a job without a limit, each drained by one worker of 2
   processes started after the jobs were enqueued: jobs per second, and the ratio. The two
   drains alternate, ROUNDS times (BENCH_FLOW_ROUNDS, default 5): on a 2-core VM one pair's
   ratio moves by 0.1 or more from run to run, so the median of the pairs is the figure.
2. Admission with 100,000 blocked jobs (100 a key over 1,000 keys): a key's holder finishes,
   then one admission lets its next job through (lock the key, count its places, pick the
   next, queue it): p50 and p99 of that call, and of the same call when the key is full.

Figures only, no asserts; the issue's targets are printed beside them.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

JOBS = 5_000
KEYS = 1_000
BLOCKED = 100_000
SAMPLES = 300
ROUNDS = int(os.environ.get("BENCH_FLOW_ROUNDS", "5"))


def drain(job, logdir: Path) -> float:  # type: ignore[no-untyped-def]
    """Jobs per second: JOBS jobs enqueued, then one worker started to drain them."""
    from bench.run import running, wait_for
    from django_bgjobs import enqueue_many
    from django_bgjobs.celery import publisher
    from django_bgjobs.models import Job, JobStatus

    for start in range(0, JOBS, 1000):
        enqueue_many(job.prepare(n % KEYS) for n in range(start, start + 1000))
    publisher.flush(120)  # every message sent before the drain: no publishing beside it
    with running("bgjobs", 2, logdir) as worker:
        wait_for(
            lambda: Job.objects.filter(status=JobStatus.SUCCEEDED).count() == JOBS,
            f"{JOBS} jobs of {job.name}",
            worker,
            timeout=600,
            poll=0.05,
        )
        # From the worker's first claim: its start-up is not the drain.
        first = Job.objects.order_by("started_at").values_list("started_at", flat=True).first()
        last = Job.objects.order_by("-finished_at").values_list("finished_at", flat=True).first()
    return JOBS / (last - first).total_seconds()


def measure_admission() -> tuple[list[float], list[float]]:
    from django.db import connection

    from bench.jobs import limited_job
    from django_bgjobs import enqueue_many
    from django_bgjobs.flow import admission
    from django_bgjobs.models import Job, JobStatus
    from django_bgjobs.testing import capture_jobs

    with capture_jobs():
        for start in range(0, BLOCKED, 5000):
            enqueue_many(limited_job.prepare(n % KEYS) for n in range(start, start + 5000))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")
    keys = list(
        Job.objects.filter(status=JobStatus.QUEUED).values_list("flow_key", flat=True)[:SAMPLES]
    )
    full, freed = [], []
    with capture_jobs():
        for key in keys:
            began = time.perf_counter()
            assert admission.admit([key]) == 0  # the key is full
            full.append((time.perf_counter() - began) * 1000)
            Job.objects.filter(flow_key=key, status=JobStatus.QUEUED).update(
                status=JobStatus.SUCCEEDED
            )
            began = time.perf_counter()
            assert admission.admit([key]) == 1
            freed.append((time.perf_counter() - began) * 1000)
    return full, freed


def main() -> None:
    from bench.run import ensure_database, pct, reset_state, say

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from bench.jobs import keyed_job, limited_job

    logdir = Path(tempfile.mkdtemp(prefix="bgjobs-bench-flow-"))
    plains, limiteds = [], []
    for n in range(1, ROUNDS + 1):
        reset_state()
        say(f"[{n}/{ROUNDS}] flow control: drain of {JOBS:,} jobs without a limit ...")
        plains.append(drain(keyed_job, logdir))
        reset_state()
        say(
            f"[{n}/{ROUNDS}] flow control: drain of {JOBS:,} jobs, concurrency 1 on each of "
            f"{KEYS:,} keys ..."
        )
        limiteds.append(drain(limited_job, logdir))
    reset_state()
    say(f"flow control: admission among {BLOCKED:,} blocked jobs ...")
    full, freed = measure_admission()
    reset_state()
    ratios = [limited / plain for plain, limited in zip(plains, limiteds, strict=True)]
    say("")
    say("flow control (PostgreSQL + Redis, one worker of 2 processes)")
    say(f"  drain without a limit                     {_jobs_per_second(plains)}")
    say(f"  drain, concurrency 1 per key ({KEYS:,} keys)  {_jobs_per_second(limiteds)}")
    say(
        f"  ratio, pair by pair: {', '.join(f'{r:.2f}x' for r in ratios)}; "
        f"median {statistics.median(ratios):.2f}x (target >= 0.8x)"
    )
    say(
        f"  admission, {BLOCKED:,} blocked: a place freed  p50 {pct(freed, 0.5):.2f} ms, "
        f"p99 {pct(freed, 0.99):.2f} ms (target p50 < 2 ms); key full p50 "
        f"{pct(full, 0.5):.2f} ms"
    )
    for path in logdir.iterdir():
        path.unlink()
    logdir.rmdir()


def _jobs_per_second(rounds: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in rounds) + " jobs/s"


if __name__ == "__main__":
    main()
