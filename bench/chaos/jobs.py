"""The chaos suite's jobs: log the execution, do the work, write the effect idempotently."""

import os
import signal
import time
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from django_bgjobs import Backoff, Concurrency, JobContext, Schedule, bgjob

# Faults cost attempts (a killed worker, a lost lease): leave room, but finitely.
BACKOFF = Backoff(base=0.5, factor=2, max=4)


def log_execution(job_id: object, key: str, attempt: int = 0) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chaos_execution (key, job_id, attempt, pid, at) "
            "VALUES (%s, %s, %s, %s, %s)",
            [key, job_id, attempt, os.getpid(), timezone.now()],
        )


def effect(job_id: object, key: str, attempt: int = 0) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chaos_effect (key, job_id, attempt, at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING",
            [key, job_id, attempt, timezone.now()],
        )
        return cursor.rowcount == 1


def _log_execution(ctx: JobContext, key: str) -> None:
    log_execution(ctx.job_id, key, ctx.attempt)


def _effect(ctx: JobContext, key: str) -> bool:
    return effect(ctx.job_id, key, ctx.attempt)


@bgjob(takes_context=True, max_attempts=6, backoff=BACKOFF)
def work(ctx: JobContext, key: str, ms: int) -> dict:
    _log_execution(ctx, key)
    time.sleep(ms / 1000)
    return {"attempt": ctx.attempt, "applied": _effect(ctx, key)}


POISON_ATTEMPTS = 3


@bgjob(takes_context=True, max_attempts=POISON_ATTEMPTS, backoff=BACKOFF)
def poison(ctx: JobContext, key: str) -> None:
    """Kills the worker process running it, every time (an OOM kill, a segfault)."""
    _log_execution(ctx, key)
    os.kill(os.getpid(), signal.SIGKILL)


# Scenario 10: ten schedules, every 2-6 s, half of them catching up only the latest missed slot
# (the default), half catching up all. Only beat processes fire them: no other scenario runs one.
TICK_PERIODS = (2, 3, 4, 5, 6)
TICK_SCHEDULES = [
    Schedule(every=timedelta(seconds=seconds), name=f"{policy}{seconds}s", catch_up=policy)
    for policy in ("latest", "all")
    for seconds in TICK_PERIODS
]


def slot_key(schedule: str, slot: datetime) -> str:
    """The ledger key of one slot of one schedule."""
    return f"{schedule}@{slot.isoformat()}"


@bgjob(takes_context=True, max_attempts=6, backoff=BACKOFF, schedules=TICK_SCHEDULES)
def tick(ctx: JobContext) -> dict:
    """Beat's job: like ``work``, keyed by the (schedule, slot) it was enqueued for."""
    from django_bgjobs.models import ScheduleSlot

    slot = ScheduleSlot.objects.select_related("schedule").get(job_id=ctx.job_id)
    key = slot_key(slot.schedule.key, slot.slot_at)
    _log_execution(ctx, key)
    time.sleep(0.05)
    return {"attempt": ctx.attempt, "applied": _effect(ctx, key)}


# Scenario 15: at most LIMIT jobs of each group at once, whatever the faults.
LIMIT = 2


@bgjob(
    takes_context=True,
    max_attempts=6,
    backoff=BACKOFF,
    concurrency=Concurrency(limit=LIMIT, key="group"),
)
def limited(ctx: JobContext, key: str, group: str, ms: int) -> dict:
    """Like ``work``, with its end logged too (``<key>:end``): the checker rebuilds how many
    jobs of each group ran at once from the executions' times."""
    _log_execution(ctx, key)
    time.sleep(ms / 1000)
    applied = _effect(ctx, key)
    _log_execution(ctx, f"{key}:end")
    return {"attempt": ctx.attempt, "applied": applied}


# Scenario 14's durable function, loaded with the jobs.
from bench.chaos import functions  # noqa: E402, F401
