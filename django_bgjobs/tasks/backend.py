"""``TASKS = {"default": {"BACKEND": "django_bgjobs.tasks.Backend"}}``: Django's tasks API on
django-bgjobs. A task enqueued here is a job: a row per attempt, the outbox, leases, retries,
the admin and the dashboard, run by ``manage.py bgjobs worker``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import router, transaction

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.enqueue import insert_calls
from django_bgjobs.models import Job
from django_bgjobs.registry import EnqueueOptions, JobCall
from django_bgjobs.tasks import results, specs
from django_bgjobs.tasks.api import (
    BaseTaskBackend,
    InvalidTask,
    TaskResultDoesNotExist,
    task_enqueued,
)
from django_bgjobs.tasks.task import Task

if TYPE_CHECKING:
    from django_bgjobs.tasks.api import AnyTask, AnyTaskResult


class Backend(BaseTaskBackend):
    """Options (``TASKS[alias]["OPTIONS"]``), for tasks that do not set their own:

    - ``MAX_ATTEMPTS``: attempts in all (default ``BGJOBS["MAX_ATTEMPTS"]``, 4);
    - ``BACKOFF``: a dict of :class:`~django_bgjobs.Backoff`'s fields (default
      ``BGJOBS["BACKOFF"]``), or a function ``(exception, task_result) -> seconds | None``.

    Django's priorities (-100 to 100) are spread over bgjobs' ten (0 to 9) in order; queues must
    be in ``BGJOBS["QUEUES"]`` as well as in the backend's ``QUEUES``.
    """

    task_class = Task
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        specs.check_options(alias, self.options)

    def validate_task(self, task: AnyTask) -> None:
        super().validate_task(task)
        if task.queue_name not in bgjobs_settings.QUEUES:
            raise InvalidTask(
                f"Queue {task.queue_name!r} is not in BGJOBS['QUEUES'] "
                f"({bgjobs_settings.QUEUES!r}): add it there, so that workers consume it."
            )
        specs.register(task, self.alias, self.options)

    def enqueue(self, task: AnyTask, args: Any, kwargs: Any) -> AnyTaskResult:  # type: ignore[override]
        self.validate_task(task)
        spec = specs.register(task, self.alias, self.options)
        options = EnqueueOptions(
            run_after=task.run_after,
            priority=specs.priority(task.priority),
            queue=task.queue_name,
        )
        jobs, _ = insert_calls([JobCall(spec, options, tuple(args), dict(kwargs))])
        result = results.task_result(jobs[0], task, self.alias, runs=[])
        # As the job's message: once the caller's transaction commits (at once in autocommit).
        sender = type(self)
        transaction.on_commit(
            lambda: task_enqueued.send(sender, task_result=result),
            using=router.db_for_write(Job),
            robust=True,
        )
        return result

    def get_result(self, result_id: str) -> AnyTaskResult:
        try:
            job = Job.objects.get(pk=UUID(str(result_id)))
        except (ValueError, Job.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        found = specs.task_of(job.name)
        if found is None:
            raise TaskResultDoesNotExist(f"{result_id} is a job, not a django.tasks task")
        task, alias = found
        return results.task_result(job, task, alias)
