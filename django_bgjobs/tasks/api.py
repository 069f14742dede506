"""Django's tasks API, from wherever this Django has it: ``django.tasks`` (Django 6.0 and later)
or the ``django-tasks`` package (``django_tasks``, for Django 5.2). The rest of this package
imports the API from here only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
    )
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django 5.2: the django-tasks package
    try:
        from django_tasks import (  # type: ignore[import-not-found, no-redef]
            DEFAULT_TASK_BACKEND_ALIAS,
            task_backends,
        )
    except ImportError as missing:
        raise ImportError(
            "django_bgjobs.tasks needs Django's tasks API: Django 6.0 or later, or on Django "
            "5.2 the django-tasks package (pip install 'django-bgjobs[tasks]')."
        ) from missing
    from django_tasks.backends.base import BaseTaskBackend  # type: ignore[import-not-found, no-redef]
    from django_tasks.base import (  # type: ignore[import-not-found, no-redef]
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
    )
    from django_tasks.exceptions import (  # type: ignore[import-not-found, no-redef]
        InvalidTaskError as InvalidTask,
    )
    from django_tasks.exceptions import (  # type: ignore[no-redef]
        TaskResultDoesNotExist,
    )
    from django_tasks.signals import (  # type: ignore[import-not-found, no-redef]
        task_enqueued,
        task_finished,
        task_started,
    )
    from django_tasks.utils import normalize_json  # type: ignore[import-not-found, no-redef]

if TYPE_CHECKING:
    # Django's stubs make Task and TaskResult generic over the function; this package takes any.
    AnyTask = Task[..., Any]
    AnyTaskResult = TaskResult[..., Any]

__all__ = [
    "AnyTask",
    "AnyTaskResult",
    "DEFAULT_TASK_BACKEND_ALIAS",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
    "normalize_json",
]
