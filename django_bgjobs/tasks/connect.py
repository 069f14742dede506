"""What a process does for django.tasks, once at start-up (``BgJobsConfig.ready``, when TASKS
names this backend): find tasks whose modules are not imported yet by their job's name, and
send Django's ``task_finished`` when one of their jobs ends."""

from __future__ import annotations

from typing import Any

from django_bgjobs import signals
from django_bgjobs.models import Job
from django_bgjobs.registry import registry
from django_bgjobs.tasks import results, specs
from django_bgjobs.tasks.api import task_finished


def connect() -> None:
    registry.add_resolver(specs.resolve)
    signals.job_succeeded.connect(_finished, dispatch_uid="django_bgjobs.tasks.succeeded")
    signals.job_dead.connect(_finished, dispatch_uid="django_bgjobs.tasks.dead")
    signals.job_cancelled.connect(_finished, dispatch_uid="django_bgjobs.tasks.cancelled")


def _finished(sender: Any, job: Job, **kwargs: Any) -> None:
    """Django's task_finished, with the result as it now stands (SUCCESSFUL or FAILED: out of
    attempts, or cancelled)."""
    # Through the registry: it imports the task's module if this process has not (the
    # dispatcher's, marking a lost last attempt dead), once per name.
    found = specs.task_of(job.name) if registry.get(job.name) is not None else None
    if found is None:
        return
    task, alias = found
    sender = type(task.get_backend())
    if task_finished.has_listeners(sender):
        fresh = Job.objects.get(pk=job.pk)
        task_finished.send(sender, task_result=results.task_result(fresh, task, alias))
