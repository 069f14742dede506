"""django-bgjobs, as bench/run.py runs it: ``python -m django bgjobs worker --concurrency 2``."""

from __future__ import annotations

import os

from bench.peers.adapter import Adapter as BaseAdapter
from bench.peers.adapter import Workers, python

SETTINGS = "bench.peers.bgjobs_settings"


class Adapter(BaseAdapter):
    database = "bench_peers_bgjobs"
    settings = SETTINGS
    packages = ("django", "celery")
    uses_redis = True

    def setup(self) -> dict[str, str]:
        from django_bgjobs.celery.app import get_celery_app

        get_celery_app()  # the app enqueue() publishes through
        return super().setup()

    def reset(self) -> None:
        from bench.run import reset_state

        reset_state()  # FLUSHDB of the broker's DB and TRUNCATE of jobs and attempts

    def enqueue(self, n: int, published: float) -> None:
        from bench.peers.jobs import noop

        noop.enqueue(n, published)

    def enqueue_bulk(self, count: int) -> None:
        from bench.peers.jobs import noop
        from django_bgjobs import enqueue_many
        from django_bgjobs.celery import publisher

        # As bench/run.py preloads its drain: one INSERT and one publish batch per 500.
        for start in range(0, count, 500):
            enqueue_many(noop.prepare(n, 0.0) for n in range(start, min(start + 500, count)))
        publisher.flush(120)  # sent by this process's publisher thread: all of it, before the drain

    def workers(self) -> Workers:
        command = [python(), "-m", "django", "bgjobs", "worker", "--concurrency", "2"]
        command += ["--pool", "prefork", "--loglevel", "warning"]
        command += ["--hostname", f"peers-bgjobs-{os.getpid()}@%h"]
        return Workers(
            [command],
            env={"DJANGO_SETTINGS_MODULE": SETTINGS, "BENCH_DISPATCHER": "worker"},
            describe="one worker, 2 prefork processes (bench/settings.py: acks_late, prefetch 1)",
        )

    def check(self, count: int) -> str:
        from django.db.models import Count

        from django_bgjobs.models import Job, JobRun

        jobs = dict(Job.objects.values_list("status").annotate(n=Count("pk")))
        runs = dict(JobRun.objects.values_list("status").annotate(n=Count("pk")))
        return f"jobs by status {jobs}, attempts (JobRun rows) by status {runs}"
