"""A job's row and its attempts, read as Django's ``TaskResult``.

Statuses: ``queued``, ``scheduled``, ``blocked`` and ``retrying`` are READY (waiting to run,
again or for the first time), ``running`` is RUNNING, ``succeeded`` is SUCCESSFUL, ``dead``
(no attempts left) and ``cancelled`` are FAILED. One error per failed or lost attempt, one
worker id per attempt, the one under way included (so ``attempts`` counts them).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.tasks.api import InvalidTask, TaskError, TaskResult, TaskResultStatus

STATUSES = {
    JobStatus.QUEUED: TaskResultStatus.READY,
    JobStatus.SCHEDULED: TaskResultStatus.READY,
    JobStatus.BLOCKED: TaskResultStatus.READY,
    JobStatus.RETRYING: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    JobStatus.DEAD: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}
# What an attempt whose worker vanished (its lease expired) reports as its exception.
LOST = "django_bgjobs.exceptions.LeaseLost"
# The line of a formatted traceback that names the exception: "pkg.module.Error: message".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")

if TYPE_CHECKING:
    from django_bgjobs.tasks.api import AnyTask, AnyTaskResult


def task_result(
    job: Job, task: AnyTask, backend: str, runs: list[JobRun] | None = None
) -> AnyTaskResult:
    """``job`` as a TaskResult of ``task``. ``runs``: its attempts, oldest first; None reads
    them (a job just enqueued has none: pass [])."""
    if runs is None:
        runs = list(JobRun.objects.filter(job_id=job.pk).order_by("attempt", "id"))
    workers = [run.worker for run in runs]
    starts = [run.started_at for run in runs]
    if job.status == JobStatus.RUNNING and job.started_at is not None:
        # The attempt under way has no row yet (it is written when the attempt ends).
        workers.append(job.worker)
        starts.append(job.started_at)
    result: AnyTaskResult = TaskResult(
        task=_on_queue(task, job.queue),
        id=str(job.pk),
        status=STATUSES[JobStatus(job.status)],
        enqueued_at=job.created_at,
        started_at=starts[0] if starts else None,
        finished_at=job.finished_at,
        last_attempted_at=starts[-1] if starts else None,
        args=list(job.args),
        kwargs=dict(job.kwargs),
        backend=backend,
        errors=[error for run in runs if (error := task_error(run)) is not None],
        worker_ids=workers,
    )
    if job.status == JobStatus.SUCCEEDED:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _on_queue(task: AnyTask, queue: str) -> AnyTask:
    """``task`` as enqueued on ``queue`` (``.using(queue_name=...)``); itself when its backend
    no longer lists that queue (the job is read all the same)."""
    if task.queue_name == queue:
        return task
    try:
        return task.using(queue_name=queue)
    except InvalidTask:
        return task


def task_error(run: JobRun) -> TaskError | None:
    """The error of a failed or lost attempt; None for any other."""
    if run.status == RunStatus.LOST:
        return TaskError(exception_class_path=LOST, traceback=run.error)
    if run.status != RunStatus.FAILED:
        return None
    return TaskError(
        exception_class_path=exception_class_path(run.traceback or run.error),
        traceback=run.traceback or run.error,
    )


def exception_class_path(traceback: str) -> str:
    """The dotted path of the exception a formatted traceback ends with. Python prints it as
    ``module.QualName`` (bare for builtins); notes after it are skipped by trying each line
    from the end until one names an exception class."""
    for line in reversed(traceback.splitlines()):
        match = _EXCEPTION_LINE.match(line)
        if match is None:
            continue
        name = match.group(1)
        path = name if "." in name else f"builtins.{name}"
        if _is_exception(path):
            return path
    return "builtins.Exception"


def _is_exception(path: str) -> bool:
    try:
        found: Any = import_string(path)
    except ImportError:
        return False
    return isinstance(found, type) and issubclass(found, BaseException)
