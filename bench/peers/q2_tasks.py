"""django-q2's no-op task: a plain function, enqueued by its dotted path."""

from bench.peers import body

PATH = "bench.peers.q2_tasks.noop"


def noop(n: int, published: float) -> None:
    body.noop(n, published)
