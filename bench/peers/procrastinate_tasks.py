"""Procrastinate's no-op task (a sync function: the worker runs it in a thread)."""

from procrastinate.contrib.django import app

from bench.peers import body


@app.task(name="bench.peers.noop")
def noop(n: int, published: float) -> None:
    body.noop(n, published)
