#!/usr/bin/env python
"""Durable functions on PostgreSQL + Redis: ``python bench/functions.py`` (also run by bench/run).

1. Event send: ``Heard(n=i).send()`` inside an open transaction (one function listens: the
   event row and one run), and ``Unheard`` (nobody listens), p50/p99 of the call; then the whole
   ``atomic()`` block (send, commit, the on-commit delivery to waiting runs).
2. Per step: a run of 20 no-op steps and the same run without steps, each executed in this
   process through the worker's task body (publishing captured); the difference / 20 is one
   step: statements, commits and the time spent in the database.
3. Resume: 10,000 runs parked until tomorrow, then 50 runs that sleep 1 s, on one worker (2
   processes, the dispatcher every DISPATCH_INTERVAL): how long after its wake time each sleep's
   run started again.

Figures only, no asserts; the issue's targets are printed beside them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

PARKED = 10_000
SLEEPERS = 50


def timed_statements():  # type: ignore[no-untyped-def]
    """An execute wrapper that counts statements and the seconds spent in them."""

    class Timer:
        statements = 0
        seconds = 0.0

        def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                self.seconds += time.perf_counter() - began
                self.statements += 1

    return Timer()


def measure_send(samples: int = 500) -> dict[str, list[float]]:
    from django.db import transaction

    from bench.durable_jobs import Heard, Unheard
    from django_bgjobs.testing import capture_jobs

    out: dict[str, list[float]] = {"heard": [], "unheard": [], "block": []}
    with capture_jobs():
        for n in range(samples + 50):
            for kind, event_class in (("heard", Heard), ("unheard", Unheard)):
                with transaction.atomic():
                    began = time.perf_counter()
                    event_class(n=n).send()
                    if n >= 50:
                        out[kind].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            with transaction.atomic():
                Heard(n=n).send()
            if n >= 50:
                out["block"].append((time.perf_counter() - began) * 1000)
    return out


def measure_step(runs: int = 20) -> dict[str, float]:
    from django.db import connection

    from bench.durable_jobs import STEPS, Heard, no_steps, steps
    from bench.run import counting
    from django_bgjobs.testing import capture_jobs
    from django_bgjobs.worker.task import execute

    totals: dict[str, dict[str, float]] = {}
    with capture_jobs():
        for name, start in (
            ("steps", lambda: steps.enqueue(Heard(n=0))),
            ("none", no_steps.enqueue),
        ):
            jobs = [start() for _ in range(runs + 3)]
            for job in jobs[:3]:  # warm-up
                execute(str(job.pk), 1)
            timer = timed_statements()
            with counting() as counter, connection.execute_wrapper(timer):
                outcomes = {execute(str(job.pk), 1) for job in jobs[3:]}
            assert outcomes == {"succeeded"}, outcomes
            totals[name] = {
                "statements": timer.statements / runs,
                "commits": counter.transactions / runs,
                "db_ms": timer.seconds * 1000 / runs,
            }
    return {
        key: (totals["steps"][key] - totals["none"][key]) / STEPS
        for key in ("statements", "commits", "db_ms")
    } | {f"run_{key}": value for key, value in totals["none"].items()}


def measure_resume(logdir: Path) -> list[float]:
    from django.utils import timezone

    from bench.durable_jobs import sleeper
    from bench.run import running, wait_for
    from django_bgjobs import enqueue_many
    from django_bgjobs.decorators import JobFunction
    from django_bgjobs.models import Job, JobRun, JobStatus, Step

    tomorrow = timezone.now() + timedelta(days=1)
    parked = JobFunction(sleeper.spec.job).using(run_after=tomorrow)
    for start in range(0, PARKED, 1000):
        enqueue_many(parked.prepare() for _ in range(min(1000, PARKED - start)))
    with running("bgjobs", 2, logdir) as worker:
        time.sleep(3)  # the worker is up and its dispatcher has made a pass
        jobs = [sleeper.enqueue() for _ in range(SLEEPERS)]
        ids = [job.pk for job in jobs]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status=JobStatus.SUCCEEDED).count() == SLEEPERS,
            "the sleepers",
            worker,
            timeout=120,
        )
    woke = dict(Step.objects.filter(job_id__in=ids, name="nap").values_list("job_id", "wake_at"))
    resumed = JobRun.objects.filter(job_id__in=ids, attempt=2).values_list("job_id", "started_at")
    return sorted((started - woke[job_id]).total_seconds() * 1000 for job_id, started in resumed)


def main() -> None:
    from bench.run import ensure_database, pct, reset_state, say

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    from django_bgjobs.conf import bgjobs_settings

    call_command("migrate", interactive=False, verbosity=0)
    reset_state()
    say("[1/3] durable functions: event send ...")
    send = measure_send()
    reset_state()
    say("[2/3] durable functions: database work per step ...")
    step = measure_step()
    reset_state()
    say(f"[3/3] durable functions: resume of {SLEEPERS} sleeps among {PARKED:,} parked runs ...")
    logdir = Path(tempfile.mkdtemp(prefix="bgjobs-bench-functions-"))
    resume = measure_resume(logdir)
    reset_state()
    say("")
    say("durable functions (PostgreSQL + Redis)                       p50        p99   target")
    for label, key in (
        ("send() in a transaction, one listener (ms)", "heard"),
        ("send() in a transaction, no listener (ms)", "unheard"),
        ("atomic(): send + commit + delivery (ms)", "block"),
    ):
        target = "p50 <= 1" if key != "block" else ""
        say(f"  {label:<55} {pct(send[key], 0.5):>7.3f} {pct(send[key], 0.99):>9.3f}   {target}")
    say(
        f"  per step: {step['statements']:.1f} statements, {step['commits']:.2f} commits, "
        f"{step['db_ms']:.3f} ms in the database (target: <= 2 commits, <= 1 ms); a run without "
        f"steps: {step['run_statements']:.1f} statements, {step['run_commits']:.2f} commits, "
        f"{step['run_db_ms']:.3f} ms"
    )
    interval = bgjobs_settings.DISPATCH_INTERVAL
    say(
        f"  sleep resumed after its wake time, {len(resume)} runs among {PARKED:,} parked (ms): "
        f"p50 {pct(resume, 0.5):.0f}, p99 {pct(resume, 0.99):.0f}, max {max(resume):.0f} "
        f"(target <= 1000; DISPATCH_INTERVAL {interval:g} s)"
    )
    for path in logdir.iterdir():
        path.unlink()
    logdir.rmdir()


if __name__ == "__main__":
    main()
