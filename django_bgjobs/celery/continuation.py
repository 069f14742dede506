"""A key's next job, run at once by the worker process whose job handed it its place.

On PostgreSQL a job under a concurrency limit hands its place to its key's next blocked job in
its finishing statement (states/attempts.py). Publishing that job for any worker costs a
message and a trip through the broker, per job. Instead, the process that freed the place runs
the job next itself, once per message: the job after that one is published as usual, so a
busy key goes to the back of the queue and cannot keep a process to itself, and every other
key's job waiting at the broker gets its turn first.

Only where nothing bounds the message's run time (no time limit on the message or on the next
job: Celery times a message, not the jobs run within it), and only for a job of the same queue
(one this worker consumes). The job row is ``queued`` and ``published_at`` is set, as for a
publish: if the process dies before claiming it, the dispatcher publishes it again after
REPUBLISH_AFTER.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from django_bgjobs.celery.broker import MessageRef

_taking: ContextVar[list[MessageRef] | None] = ContextVar("bgjobs_continuation", default=None)


@contextmanager
def taking_one() -> Iterator[list[MessageRef]]:
    """Within: the first handed job that may run in this process is put in the list instead of
    being published; the caller runs it (or publishes it) afterwards."""
    taken: list[MessageRef] = []
    token = _taking.set(taken)
    try:
        yield taken
    finally:
        _taking.reset(token)


def keep_one(refs: Sequence[MessageRef], queue: str) -> list[MessageRef]:
    """Keep one of ``refs`` (jobs just handed a place by a job of ``queue``) for this process,
    if it is taking one; returns the ones to publish."""
    from django_bgjobs.registry import registry

    taken = _taking.get()
    if taken is None or taken:
        return list(refs)
    for n, ref in enumerate(refs):
        spec = registry.get(ref.name)
        if ref.queue == queue and spec is not None and spec.timeout is None:
            taken.append(ref)
            return [*refs[:n], *refs[n + 1 :]]
    return list(refs)
