"""Jobs the tests enqueue. Loaded by autodiscovery (tests is an installed app), like users' jobs."""

import os
import signal
import time

from django_bgjobs import Backoff, JobContext, NonRetriable, RetryAfter, bgjob
from tests.models import Effect


@bgjob
def noop() -> None:
    pass


@bgjob
def echo(payload: dict) -> dict:
    """Returns its argument: what went in comes back out."""
    return payload


@bgjob
def handle_webhook(receipt_id: int) -> dict:
    """The handler of the test webhook endpoints: reads the stored delivery."""
    from django_bgjobs.models import InboundWebhook

    receipt = InboundWebhook.objects.get(pk=receipt_id)
    Effect.objects.create(key=f"webhook:{receipt.endpoint}:{receipt.message_id}")
    return {"endpoint": receipt.endpoint, "bytes": len(receipt.body)}


@bgjob(queue="emails", max_attempts=2, priority=5)
def add(a: int, b: int) -> int:
    return a + b


@bgjob(takes_context=True)
def record(ctx: JobContext, key: str) -> dict:
    Effect.objects.create(key=key, job_id=str(ctx.job_id), attempt=ctx.attempt, pid=os.getpid())
    return {"key": key, "attempt": ctx.attempt}


@bgjob(takes_context=True, max_attempts=5, backoff=Backoff(base=0.01, factor=2, max=0.05))
def flaky(ctx: JobContext, key: str, failures: int) -> str:
    Effect.objects.create(key=key, job_id=str(ctx.job_id), attempt=ctx.attempt, pid=os.getpid())
    if ctx.attempt <= failures:
        raise ConnectionError(f"attempt {ctx.attempt} failed on purpose")
    return f"ok after {ctx.attempt}"


@bgjob(max_attempts=3, backoff=Backoff(base=0.01, factor=2, max=0.05))
def always_fails(key: str) -> None:
    Effect.objects.create(key=key)
    raise ValueError("this job always fails")


@bgjob(max_attempts=5)
def gives_up() -> None:
    raise NonRetriable("the card was declined")


@bgjob(takes_context=True, max_attempts=3)
def asks_later(ctx: JobContext, seconds: float) -> int:
    if ctx.attempt == 1:
        raise RetryAfter(seconds)
    return ctx.attempt


@bgjob(max_attempts=4, retry_on=(ConnectionError,))
def wrong_kind_of_error() -> None:
    raise KeyError("not a ConnectionError: no retry")


@bgjob(takes_context=True, queue="slow")
def long_task(ctx: JobContext, steps: int, pause: float) -> int:
    for step in range(steps):
        time.sleep(pause)
        ctx.progress(step + 1, steps, f"step {step + 1}")
    return steps


@bgjob(
    takes_context=True, queue="slow", max_attempts=2, backoff=Backoff(base=0.01, factor=1, max=0.01)
)
def killer(ctx: JobContext, key: str) -> None:
    """A poison job: kills the worker process running it, every time."""
    Effect.objects.create(key=key, job_id=str(ctx.job_id), attempt=ctx.attempt, pid=os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


@bgjob(timeout=0.5, max_attempts=2, backoff=Backoff(base=0.01, factor=1, max=0.01))
def too_slow() -> None:
    time.sleep(5)


@bgjob
def returns_a_set() -> set:
    return {1, 2}


@bgjob(takes_context=True)
async def async_double(ctx: JobContext, n: int) -> int:
    return n * 2


@bgjob
def database_backend_pid() -> int:
    from django.db import connection

    connection.ensure_connection()
    return connection.connection.info.backend_pid


class Canary:
    """Unpickling this writes a file: proof that pickle was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


@bgjob(redact=("token",), max_attempts=1)
def uses_a_secret(email: str, token: str) -> None:
    raise ValueError(f"the API refused token {token!r} for {email}")


@bgjob(takes_context=True, max_attempts=3, backoff=Backoff(base=0.01, factor=1, max=0.01))
def fails_after_cancel(ctx: JobContext, key: str) -> None:
    """Cancelled by someone while it runs, then fails: it must not be retried."""
    Effect.objects.create(key=key, job_id=str(ctx.job_id), attempt=ctx.attempt)
    from django_bgjobs.models import Job

    Job.objects.get(pk=ctx.job_id).cancel()
    raise ConnectionError("failed after being cancelled")


@bgjob(max_attempts=2)
def returns_a_nul() -> str:
    return "report\x00"


@bgjob(max_attempts=2, backoff=Backoff(base=0.01, factor=1, max=0.01))
def exits() -> None:
    raise SystemExit(3)


@bgjob(takes_context=True)
async def async_with_progress(ctx: JobContext, steps: int) -> int:
    for step in range(steps):
        await ctx.aprogress(step + 1, steps)
    return steps


@bgjob(takes_context=True, queue="slow", max_attempts=1)
def naps(ctx: JobContext, key: str, first: float, then: float = 0.0) -> int:
    """Sleeps ``first`` seconds on its first attempt, ``then`` on later ones (graceful shutdown
    tests). One attempt only: a release must not spend it."""
    Effect.objects.create(key=key, job_id=str(ctx.job_id), attempt=ctx.attempt, pid=os.getpid())
    time.sleep(first if ctx.attempt == 1 else then)
    return ctx.attempt


@bgjob(takes_context=True, queue="slow", max_attempts=1)
def ignores_interruptions(ctx: JobContext, key: str, seconds: float) -> None:
    """Swallows every exception (a soft time limit too) until ``seconds`` have passed."""
    Effect.objects.create(key=key, job_id=str(ctx.job_id), attempt=ctx.attempt, pid=os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:  # on purpose: a job that will not stop
            pass


# --- scheduled: fired by real beat processes (tests/test_beat.py) ------------------------------

from datetime import timedelta  # noqa: E402

from django_bgjobs import Schedule  # noqa: E402


@bgjob(
    takes_context=True,
    schedules=[
        Schedule(every=timedelta(seconds=1), name="1s"),
        Schedule(every=timedelta(seconds=2), name="2s"),
    ],
)
def beat_tick(ctx: JobContext) -> str:
    """Records the (schedule, slot) it runs for, as Effect "<schedule key>@<slot>"."""
    from django_bgjobs.models import ScheduleSlot

    slot = ScheduleSlot.objects.select_related("schedule").get(job_id=ctx.job_id)
    Effect.objects.create(
        key=f"{slot.schedule.key}@{slot.slot_at.isoformat()}",
        job_id=str(ctx.job_id),
        attempt=ctx.attempt,
        pid=os.getpid(),
    )
    return slot.slot_at.isoformat()


# The durable functions and the jobs under flow control, loaded with the jobs (a worker imports
# this module by autodiscovery).
from tests import flow_jobs, functions  # noqa: E402, F401
