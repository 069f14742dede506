"""Tasks written for Django's tasks API (``django.tasks``), run by the django-bgjobs backend
that tests/settings.py's TASKS names. Not autodiscovered: the worker imports this module when it
meets one of its jobs, by the job's name."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.dispatch import receiver

from django_bgjobs.tasks import task as bgjobs_task
from django_bgjobs.tasks.api import TaskContext, task_finished, task_started
from tests.models import Effect

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks package
    from django_tasks import task  # type: ignore[import-not-found, no-redef]


class Declined(Exception):
    """A failure a test can name by its class path."""


@task
def add(a: int, b: int) -> int:
    return a + b


@task(priority=50, queue_name="emails")
def send_welcome(user_id: int) -> dict[str, Any]:
    Effect.objects.create(key=f"welcome:{user_id}", pid=os.getpid())
    return {"sent_to": user_id}


@task(takes_context=True)
def remembers(context: TaskContext, key: str) -> dict[str, Any]:
    Effect.objects.create(
        key=key, job_id=context.task_result.id, attempt=context.attempt, pid=os.getpid()
    )
    return {"id": context.task_result.id, "attempt": context.attempt}


@task
async def sleeps_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "awake"


@bgjobs_task(max_attempts=3)
def always_declines(key: str) -> None:
    Effect.objects.create(key=key, pid=os.getpid())
    raise Declined(f"declined {key}")


def give_up_after_first(exception: BaseException, task_result: Any) -> float | None:
    """The proposal's backoff function: no second attempt for a Declined."""
    Effect.objects.create(
        key=f"backoff:{type(exception).__name__}:{len(task_result.errors)}:{task_result.status}"
    )
    return None if isinstance(exception, Declined) else 0.05


@bgjobs_task(max_attempts=5, backoff=give_up_after_first)
def declines_once(key: str) -> None:
    Effect.objects.create(key=key)
    raise Declined(key)


def retry_quickly(exception: BaseException, task_result: Any) -> float | None:
    return 0.05


@bgjobs_task(max_attempts=4, backoff=retry_quickly)
def succeeds_on_third(key: str, context_free: bool = True) -> int:
    Effect.objects.create(key=key)
    tries = Effect.objects.filter(key=key).count()
    if tries < 3:
        raise Declined(f"try {tries}")
    return tries


def backoff_that_breaks(exception: BaseException, task_result: Any) -> float | None:
    raise RuntimeError("a bug in the backoff function")


@bgjobs_task(max_attempts=2, backoff=backoff_that_breaks)
def fails_with_a_broken_backoff(key: str) -> None:
    Effect.objects.create(key=key)
    raise Declined(key)


def backoff_as_timedelta(exception: BaseException, task_result: Any) -> Any:
    from datetime import timedelta

    return timedelta(milliseconds=50)


@bgjobs_task(max_attempts=2, backoff=backoff_as_timedelta)
def retried_after_a_timedelta(key: str) -> None:
    Effect.objects.create(key=key)
    raise Declined(key)


@receiver(task_started, dispatch_uid="tests.task_defs.started")
def _started(sender: Any, task_result: Any, **kwargs: Any) -> None:
    if task_result.task.func is send_welcome.func:
        Effect.objects.create(key=f"started:{task_result.id}:{task_result.status}")


@receiver(task_finished, dispatch_uid="tests.task_defs.finished")
def _finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    if task_result.task.func in (send_welcome.func, always_declines.func):
        Effect.objects.create(key=f"finished:{task_result.id}:{task_result.status}")
