"""``Task`` with the retry fields of Django's open proposal (django/new-features#142), and the
``@task`` decorator that sets them: ``@task(max_attempts=5, backoff=...)``.

The backend's ``task_class``: Django's own ``@task`` makes these too (with the fields unset, so
the backend's OPTIONS apply), and ``.using()`` keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_bgjobs.backoff import Backoff
from django_bgjobs.tasks.api import DEFAULT_TASK_BACKEND_ALIAS, InvalidTask, TaskResult
from django_bgjobs.tasks.api import Task as DjangoTask

BackoffFunction = Callable[[BaseException, "TaskResult[..., Any]"], float | None]
"""The proposal's backoff: seconds until the next attempt after ``exception`` ended the attempt
that ``task_result`` describes (its ``errors`` and ``attempts`` include that attempt), or None
for no more attempts."""


if TYPE_CHECKING:
    _Base = DjangoTask[..., Any]
else:
    _Base = DjangoTask  # not generic at run time on Django 6


@dataclass(frozen=True, slots=True, kw_only=True)
class Task(_Base):
    max_attempts: int | None = None
    """Attempts in all, the first included; None: the backend's ``OPTIONS["MAX_ATTEMPTS"]``."""
    backoff: Backoff | BackoffFunction | None = None
    """The delay before each retry; None: the backend's ``OPTIONS["BACKOFF"]``."""


def task(
    function: Callable[..., Any] | None = None,
    *,
    priority: int = 0,
    queue_name: str = "default",
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    takes_context: bool = False,
    max_attempts: int | None = None,
    backoff: Backoff | BackoffFunction | None = None,
) -> Any:
    """Django's ``@task``, with ``max_attempts`` and ``backoff`` as the proposal for retries in
    django.tasks has them. The backend must be django-bgjobs'."""
    from django_bgjobs.tasks.api import task_backends

    def wrapper(func: Callable[..., Any]) -> Task:
        task_class = task_backends[backend].task_class
        if not issubclass(task_class, Task):
            raise InvalidTask(
                f"max_attempts and backoff need the django-bgjobs backend; TASKS[{backend!r}] "
                f"is {type(task_backends[backend]).__name__}"
            )
        return task_class(
            priority=priority,
            func=func,
            queue_name=queue_name,
            backend=backend,
            takes_context=takes_context,
            run_after=None,
            max_attempts=max_attempts,
            backoff=backoff,
        )

    return wrapper(function) if function else wrapper
