"""A django.tasks ``Task`` as a bgjobs job: a spec in the registry under the task's module path,
whose function runs the task the way Django's API says it runs.

The backend registers a task when Django validates it, which is when the module defining it is
imported (``@task`` builds the Task and validates it). A worker that meets a job of a task whose
module it has not imported yet imports it by the job's name (``resolve``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_bgjobs.backoff import Backoff
from django_bgjobs.context import JobContext
from django_bgjobs.decorators import make_spec
from django_bgjobs.exceptions import JobConfigurationError
from django_bgjobs.models import Job
from django_bgjobs.registry import MAX_PRIORITY, MIN_PRIORITY, JobSpec, registry
from django_bgjobs.tasks import results
from django_bgjobs.tasks.api import (
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    InvalidTask,
    TaskContext,
    TaskError,
    TaskResultStatus,
    normalize_json,
    task_started,
)
from django_bgjobs.tasks.task import BackoffFunction

logger = logging.getLogger("django_bgjobs.tasks")

OPTIONS = frozenset({"MAX_ATTEMPTS", "BACKOFF"})
# Set on the exception by the task's runner: the delay its backoff function chose (None: no
# more attempts), read back by the spec's retry hook when the failure is recorded.
_RETRY_IN = "_bgjobs_task_retry_in"

_NOT_ASKED = object()

# Job name -> (the Task, its backend's alias), for the tasks this process registered.
_tasks: dict[str, tuple[AnyTask, str]] = {}

if TYPE_CHECKING:
    from django_bgjobs.tasks.api import AnyTask


def priority(task_priority: int) -> int:
    """Django's -100..100 onto bgjobs' 0..9, order kept: -100 -> 0, 0 (the default) -> 4,
    100 -> 9."""
    span = TASK_MAX_PRIORITY - TASK_MIN_PRIORITY + 1
    levels = MAX_PRIORITY - MIN_PRIORITY + 1
    return MIN_PRIORITY + (task_priority - TASK_MIN_PRIORITY) * levels // span


def check_options(alias: str, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ImproperlyConfigured(
            f"TASKS[{alias!r}]['OPTIONS'] has {', '.join(map(repr, unknown))}: the django-bgjobs "
            f"backend knows {', '.join(sorted(OPTIONS))}"
        )
    backoff = options.get("BACKOFF")
    if backoff is not None and not isinstance(backoff, (dict, Backoff)) and not callable(backoff):
        raise ImproperlyConfigured(
            f"TASKS[{alias!r}]['OPTIONS']['BACKOFF'] must be a dict of Backoff's fields or a "
            f"function (exception, task_result) -> seconds or None, not {backoff!r}"
        )


def register(task: AnyTask, alias: str, options: Mapping[str, Any]) -> JobSpec:
    """The job spec of ``task``, added to the registry the first time. Raises InvalidTask."""
    name = task.module_path
    known = _tasks.get(name)
    spec = registry.get(name) if known is not None else None
    if known is not None and known[0].func is task.func and spec is not None:
        return spec
    max_attempts = getattr(task, "max_attempts", None)
    if max_attempts is None:
        max_attempts = options.get("MAX_ATTEMPTS")
    backoff = getattr(task, "backoff", None)
    if backoff is None:
        backoff = options.get("BACKOFF")
    try:
        decide = backoff if callable(backoff) and not isinstance(backoff, Backoff) else None
        spec = make_spec(
            _runner(task, alias, decide),
            name=name,
            queue=task.queue_name,
            max_attempts=max_attempts,
            backoff=Backoff.from_setting(backoff) if isinstance(backoff, (dict, Backoff)) else None,
            timeout=None,
            retry_on=(),
            priority=priority(task.priority),
            takes_context=True,  # the runner's first argument: the job's context
        )
    except (JobConfigurationError, TypeError, ValueError) as exc:
        raise InvalidTask(str(exc)) from exc
    if decide is not None:
        spec = replace(spec, retry=functools.partial(_chosen_delay, spec.backoff))
    registry.add(spec)
    _tasks[name] = (task, alias)
    return spec


def task_of(name: str) -> tuple[AnyTask, str] | None:
    """The task behind job name ``name`` and its backend's alias, importing it if need be."""
    if name not in _tasks:
        resolve(name)
    return _tasks.get(name)


def resolve(name: str) -> None:
    """Import the module that defines the task named ``name``: building its Task registers it
    (the registry's fallback for a name it does not know)."""
    try:
        import_string(name)
    except ImportError:
        pass  # not a task's path: the caller reports the job as unknown
    except Exception:  # its module failed to import: say why, then it is an unknown job
        logger.exception("importing %s, to find the task of its jobs, failed", name)


def _runner(task: AnyTask, alias: str, decide: BackoffFunction | None) -> Callable[..., Any]:
    """The function the worker calls for ``task``'s jobs: with the job's context first, as a
    job with ``takes_context``; it calls the task with its TaskContext if it asked for one."""

    def run(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
        result = None
        sender = type(task.get_backend())  # Django's signals are sent by the backend's class
        if task.takes_context or task_started.has_listeners(sender):
            result = results.task_result(Job.objects.get(pk=ctx.job_id), task, alias)
            task_started.send(sender, task_result=result)
        context = [TaskContext(task_result=result)] if result and task.takes_context else []
        try:
            value = task.call(*context, *args, **kwargs)
        except Exception as exc:
            if decide is not None and ctx.attempt < ctx.max_attempts:
                try:
                    setattr(exc, _RETRY_IN, _ask(decide, exc, ctx, task, alias))
                except Exception:  # the default backoff applies (_chosen_delay)
                    logger.exception("the backoff function of %s failed", task.module_path)
            raise
        return normalize_json(value)

    functools.update_wrapper(run, task.func)
    params = list(inspect.signature(task.func).parameters.values())
    if task.takes_context:
        params = params[1:]  # Django's TaskContext: the runner passes it, not the caller
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_ONLY)
    run.__signature__ = inspect.Signature([context, *params])  # type: ignore[attr-defined]
    return run


def _ask(
    decide: BackoffFunction, exc: BaseException, ctx: JobContext, task: AnyTask, alias: str
) -> float | None:
    """The backoff function's answer for this failure, with the TaskResult the proposal gives
    it: this attempt included in ``errors``, status FAILED."""
    import traceback

    result = results.task_result(Job.objects.get(pk=ctx.job_id), task, alias)
    kind = type(exc)
    result.errors.append(
        TaskError(
            exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
            traceback="".join(traceback.format_exception(exc)),
        )
    )
    object.__setattr__(result, "status", TaskResultStatus.FAILED)
    seconds = decide(exc, result)
    if isinstance(seconds, timedelta):
        return seconds.total_seconds()
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
        raise TypeError(f"a backoff function returns seconds or None, not {seconds!r}")
    return None if seconds is None else float(seconds)


def _chosen_delay(fallback: Backoff, exc: BaseException, attempt: int) -> float | None:
    """The spec's retry hook: what the backoff function chose when the task raised ``exc``. A
    failure it was not asked about (it raised itself, or the failure came before or around the
    task: a lost database connection, a cancellation) gets the default backoff, as a task
    without a backoff function would."""
    chosen: float | None | object = getattr(exc, _RETRY_IN, _NOT_ASKED)
    if chosen is _NOT_ASKED:
        return fallback.delay(attempt)
    return chosen if isinstance(chosen, float) else None
