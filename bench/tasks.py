"""The bare Celery side: plain ``shared_task``s, queue ``bare`` (bgjobs uses ``default``)."""

from __future__ import annotations

import os
import time

import redis
from celery import shared_task
from django.conf import settings

BARE_QUEUE = "bare"
DONE_KEY = "bench:bare:done"
FIRST_KEY = "bench:bare:first_start"
LAST_KEY = "bench:bare:last_end"
TARGET_KEY = "bench:bare:target"
LATENCY_KEY = "bench:bare:latency"

_client: tuple[int, redis.Redis] | None = None


def client() -> redis.Redis:
    """One Redis connection per process (prefork children make their own)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(settings.BENCH_REDIS_URL))
    return _client[1]


@shared_task(name="bench.noop", queue=BARE_QUEUE, ignore_result=True)
def noop() -> None:
    """Does nothing: what enqueue latency is measured with."""


@shared_task(name="bench.counted", queue=BARE_QUEUE, ignore_result=True)
def counted() -> None:
    """A no-op that reports itself: first start, completion count, and the last completion."""
    started = time.time()
    r = client()
    pipe = r.pipeline(transaction=False)
    pipe.set(FIRST_KEY, repr(started), nx=True)
    pipe.incr(DONE_KEY)
    pipe.get(TARGET_KEY)
    _, done, target = pipe.execute()
    if target is not None and done >= int(target):
        r.set(LAST_KEY, repr(time.time()))


@shared_task(name="bench.stamped", queue=BARE_QUEUE, ignore_result=True)
def stamped(published: float) -> None:
    """Records how long after ``published`` (time.time() before .delay()) it started."""
    client().rpush(LATENCY_KEY, repr(time.time() - published))
