"""Bare Celery with Celery's default settings: ``celery -A bench.peers.celery_default_app``.

Nothing configured but the broker: acknowledgement before the task runs (acks_late off),
prefetch multiplier 4, json, the default queue ``celery``, no result backend. No Django.
"""

from celery import Celery

from bench.peers import body
from bench.peers.redis_stats import redis_url

app = Celery("bench_peers_default", broker=redis_url())


# ignore_result as on the safe side's task (there is no result backend to store one anyway).
@app.task(name="bench.peers.noop_default", ignore_result=True)
def noop(n: int, published: float) -> None:
    body.noop(n, published)
