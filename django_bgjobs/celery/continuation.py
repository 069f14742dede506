"""A key's next job, run at once by the worker process whose job handed it its place.

On PostgreSQL a job under a concurrency limit hands its place to its key's next blocked job in
its finishing statement (states/attempts.py). Publishing that job for any worker costs a
message and a trip through the broker, per job. Instead, the process that freed the place runs
the job next itself, once per message: the job after that one is published as usual, so a
busy key goes to the back of the queue and cannot keep a process to itself, and every other
key's job waiting at the broker gets its turn first.

Not where a time limit applies (on the message, the task, or the worker: Celery times a
message, not the jobs run within it), not for a job of another queue (this worker may not
consume it), and not once the worker is shutting down (the job goes to another worker). The
job row is ``queued`` and ``published_at`` is set, as for a publish: if the process dies before
claiming it, the dispatcher publishes it again after REPUBLISH_AFTER.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django_bgjobs.celery.broker import MessageRef

_taking: ContextVar[list[MessageRef] | None] = ContextVar("bgjobs_continuation", default=None)

# Set by the worker (worker/task.py) before its pool processes are forked, so they share it.
_stopping: Any = None  # a shared byte: 1 once the worker's warm shutdown began


def share_stop_flag() -> None:
    """In the worker's main process, before the pool starts: make the flag its processes see."""
    global _stopping
    _stopping = multiprocessing.RawValue("b", 0)


def stop_taking() -> None:
    """The worker is shutting down: handed jobs are published for other workers from now on."""
    if _stopping is not None:
        _stopping.value = 1


@contextmanager
def taking(into: list[MessageRef]) -> Iterator[None]:
    """Within: the first handed job that may run in this process is put in ``into`` instead of
    being published; the caller runs it (or publishes it) afterwards."""
    token = _taking.set(into)
    try:
        yield
    finally:
        _taking.reset(token)


def keep_one(refs: Sequence[MessageRef], queue: str) -> list[MessageRef]:
    """Keep one of ``refs`` (jobs just handed a place by a job of ``queue``) for this process,
    if it is taking one; returns the ones to publish."""
    from django_bgjobs.registry import registry

    taken = _taking.get()
    if taken is None or taken or (_stopping is not None and _stopping.value):
        return list(refs)
    for n, ref in enumerate(refs):
        spec = registry.get(ref.name)
        if ref.queue == queue and spec is not None and spec.timeout is None:
            taken.append(ref)
            return [*refs[:n], *refs[n + 1 :]]
    return list(refs)
