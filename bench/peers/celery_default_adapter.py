"""Bare Celery with Celery's defaults (acks early, prefetch multiplier 4), no Django."""

from __future__ import annotations

import os

from bench.peers import redis_stats
from bench.peers.adapter import Adapter as BaseAdapter
from bench.peers.adapter import Workers, python


class Adapter(BaseAdapter):
    packages = ("celery", "kombu")
    uses_redis = True

    def reset(self) -> None:
        redis_stats.flush()

    def enqueue(self, n: int, published: float) -> None:
        from bench.peers.celery_default_app import noop

        noop.delay(n, published)

    def close(self) -> None:
        """No database connection to close (and no Django settings to find one in)."""

    def workers(self) -> Workers:
        command = [python(), "-m", "celery", "-A", "bench.peers.celery_default_app", "worker"]
        command += ["--concurrency", "2", "--pool", "prefork", "--loglevel", "warning"]
        command += ["--hostname", f"peers-default-{os.getpid()}@%h"]
        return Workers(
            [command],
            # Celery's Django fix-up would load Django settings if this were set.
            unset_env=["DJANGO_SETTINGS_MODULE"],
            describe="one worker, 2 prefork processes, acks early, prefetch multiplier 4",
        )
