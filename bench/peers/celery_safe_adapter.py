"""Bare Celery with bgjobs' safe settings (acks_late, prefetch 1): bench/run.py's bare side."""

from __future__ import annotations

import os

from bench.peers import redis_stats
from bench.peers.adapter import Adapter as BaseAdapter
from bench.peers.adapter import Workers, python
from bench.peers.bgjobs_adapter import SETTINGS


class Adapter(BaseAdapter):
    # The settings' database, which bare Celery does not use: its figures show that it does not.
    database = "bench_peers_bgjobs"
    settings = SETTINGS
    packages = ("celery", "kombu")
    uses_redis = True

    def reset(self) -> None:
        redis_stats.flush()

    def enqueue(self, n: int, published: float) -> None:
        from bench.peers.celery_safe_tasks import noop

        noop.delay(n, published)

    def workers(self) -> Workers:
        from bench.peers.celery_safe_tasks import QUEUE

        command = [python(), "-m", "celery", "-A", "bench.celery_app", "worker"]
        command += ["--concurrency", "2", "--pool", "prefork", "--queues", QUEUE]
        command += ["--loglevel", "warning", "--hostname", f"peers-safe-{os.getpid()}@%h"]
        return Workers(
            [command],
            # bench/run.py's bare worker: nothing of bgjobs runs in it.
            env={"DJANGO_SETTINGS_MODULE": SETTINGS, "BENCH_DISPATCHER": "off"},
            describe="one worker, 2 prefork processes, acks_late, prefetch multiplier 1",
        )
