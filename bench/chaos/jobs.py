"""The chaos suite's jobs: log the execution, do the work, write the effect idempotently."""

import os
import signal
import time

from django.db import connection
from django.utils import timezone

from django_bgjobs import Backoff, JobContext, bgjob

# Faults cost attempts (a killed worker, a lost lease): leave room, but finitely.
BACKOFF = Backoff(base=0.5, factor=2, max=4)


def _log_execution(ctx: JobContext, key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chaos_execution (key, job_id, attempt, pid, at) "
            "VALUES (%s, %s, %s, %s, %s)",
            [key, ctx.job_id, ctx.attempt, os.getpid(), timezone.now()],
        )


@bgjob(takes_context=True, max_attempts=6, backoff=BACKOFF)
def work(ctx: JobContext, key: str, ms: int) -> dict:
    _log_execution(ctx, key)
    time.sleep(ms / 1000)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chaos_effect (key, job_id, attempt, at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING",
            [key, ctx.job_id, ctx.attempt, timezone.now()],
        )
        applied = cursor.rowcount == 1
    return {"attempt": ctx.attempt, "applied": applied}


POISON_ATTEMPTS = 3


@bgjob(takes_context=True, max_attempts=POISON_ATTEMPTS, backoff=BACKOFF)
def poison(ctx: JobContext, key: str) -> None:
    """Kills the worker process running it, every time (an OOM kill, a segfault)."""
    _log_execution(ctx, key)
    os.kill(os.getpid(), signal.SIGKILL)
