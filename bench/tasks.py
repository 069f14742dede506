"""The bare Celery side: plain ``shared_task``s, queue ``bare`` (bgjobs uses ``default``)."""

from __future__ import annotations

import os
import time

import httpx
import redis
from celery import shared_task
from django.conf import settings

from django_bgjobs.webhooks.sign import qstash_signature

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


# bench/delivery.py: the bare side of outbound delivery.
SIGNING_KEY = "sig_BenchBareCeleryKey8mhY7kAjqNGc"  # QStash's shape: sig_ + 28 characters
_http: tuple[int, httpx.Client] | None = None


def http_client() -> httpx.Client:
    """One httpx.Client per process, made once (httpx's advice), like the Redis client."""
    global _http
    if _http is None or _http[0] != os.getpid():
        _http = (os.getpid(), httpx.Client(timeout=30.0, trust_env=False))
    return _http[1]


@shared_task(name="bench.post_signed", queue=BARE_QUEUE, ignore_result=True)
def post_signed(url: str, body: str, message_id: str) -> int:
    """POST ``body`` to ``url`` with an ``Upstash-Signature`` JWT made by the function bgjobs
    signs with (a new one per request); a 4xx/5xx raises. Nothing is recorded."""
    data = body.encode()
    response = http_client().post(
        url,
        content=data,
        headers={
            "Content-Type": "application/json",
            "Upstash-Message-Id": message_id,
            "Upstash-Signature": qstash_signature(data, url, SIGNING_KEY, time.time()),
        },
    )
    response.raise_for_status()
    return response.status_code
