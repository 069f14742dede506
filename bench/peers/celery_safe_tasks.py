"""Bare Celery on the app bgjobs builds from bench/settings.py: json, acks_late, prefetch 1 (the
bare side of bench/run.py). Its own queue, so the bgjobs worker never takes these."""

from bench.celery_app import app
from bench.peers import body

QUEUE = "peers_safe"


@app.task(name="bench.peers.noop_safe", queue=QUEUE, ignore_result=True)
def noop(n: int, published: float) -> None:
    body.noop(n, published)
