"""``@bgjob``: turn a module-level function into a job, validated when decorated; the
``JobFunction`` it returns enqueues it, prepares calls for ``enqueue_many`` or runs it here."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    NoReturn,
    ParamSpec,
    TypeVar,
    Unpack,
    overload,
)
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import models

from django_bgjobs._payload import validate_arguments
from django_bgjobs.backoff import Backoff
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.exceptions import JobConfigurationError, PayloadError
from django_bgjobs.flow.options import FlowOptions
from django_bgjobs.flow.spec import ArgumentReader, flow_spec
from django_bgjobs.schedules import CatchUp, Overlap, Schedule, schedules_from_options

if TYPE_CHECKING:
    from django_bgjobs.context import JobContext
    from django_bgjobs.models import Job

from django_bgjobs.registry import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    EnqueueOptions,
    JobCall,
    JobSpec,
    origin,
    registry,
)

P = ParamSpec("P")
R = TypeVar("R")


class JobFunction(Generic[P, R]):
    """What ``@bgjob`` returns: enqueue it, or call it in-process with ``.call()``."""

    def __init__(self, spec: JobSpec, options: EnqueueOptions | None = None) -> None:
        self.spec = spec
        self.options = options or EnqueueOptions()
        functools.update_wrapper(self, spec.func)  # its name, docstring, module: the function's

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"<bgjob {self.spec.name} queue={self.spec.queue!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            f"{self.spec.name} is a background job: use .enqueue(...) to run it on a worker, "
            "or .call(...) to run it here and now."
        )

    def using(
        self,
        *,
        delay: timedelta | float | None = None,
        run_after: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        owner: Any = None,
        max_attempts: int | None = None,
    ) -> JobFunction[P, R]:
        """The same job with other enqueue options: ``job.using(delay=timedelta(minutes=5))``.

        ``delay`` is a timedelta or a number of seconds; ``run_after`` an aware datetime.
        ``owner`` is a user (``request.user``) or a user's primary key: that user may read the
        job through the status API. An anonymous user means no owner. ``max_attempts``
        replaces the job's own for this enqueue.
        """
        if isinstance(delay, (int, float)) and not isinstance(delay, bool):
            delay = timedelta(seconds=delay)
        if delay is not None and not isinstance(delay, timedelta):
            raise TypeError(f"delay must be a timedelta or seconds, not {delay!r}")
        if delay is not None and run_after is not None:
            raise ValueError("Give delay= or run_after=, not both")
        if queue is not None:
            _check_queue(queue, self.spec.name)
        if priority is not None:
            _check_priority(priority, self.spec.name)
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
            raise ValueError("idempotency_key must be 1 to 255 characters")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be an integer >= 1, not {max_attempts!r}")
        changes: dict[str, Any] = {
            key: value
            for key, value in {
                "delay": delay,
                "run_after": run_after,
                "priority": priority,
                "queue": queue,
                "idempotency_key": idempotency_key,
                "owner_id": _owner_id(owner),
                "max_attempts": max_attempts,
            }.items()
            if value is not None
        }
        return JobFunction(self.spec, replace(self.options, **changes))

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Write the job in the current transaction; it is sent to a worker after commit."""
        from django_bgjobs.enqueue import enqueue_calls

        return enqueue_calls([JobCall(self.spec, self.options, args, kwargs)])[0]

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> JobCall:
        """A call to pass to ``enqueue_many``, checked like enqueue() would."""
        return JobCall(self.spec, self.options, args, kwargs)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, no database row (with a throwaway context)."""
        from django_bgjobs.context import JobContext

        if self.spec.takes_context:
            ctx = JobContext(
                job_id=None,
                name=self.spec.name,
                attempt=1,
                max_attempts=self.spec.max_attempts,
                queue=self.spec.queue,
                tracked=False,
            )
            return self.spec.func(ctx, *args, **kwargs)  # type: ignore[no-any-return]
        return self.spec.func(*args, **kwargs)  # type: ignore[no-any-return]


def _check_queue(queue: str, name: str, default: bool = False) -> None:
    queues = bgjobs_settings.QUEUES
    if isinstance(queues, str) or queue not in queues:
        origin = " (BGJOBS['DEFAULT_QUEUE'])" if default else ""
        raise JobConfigurationError(
            f"Job {name!r} uses queue {queue!r}{origin}, which is not in BGJOBS['QUEUES'] "
            f"({queues!r}). Add it there so workers consume it."
        )


def _owner_id(owner: Any) -> Any:
    """A user, an anonymous user (no owner) or a user's primary key -> the primary key."""
    if owner is None or getattr(owner, "is_anonymous", False) is True:
        return None
    if isinstance(owner, models.Model):
        user_model = get_user_model()
        if not isinstance(owner, user_model):
            raise TypeError(
                f"owner must be a {user_model.__name__} (or its primary key), not a "
                f"{type(owner).__name__}"
            )
        if owner.pk is None:
            raise ValueError("owner is an unsaved user: save it before enqueueing its jobs")
        return owner.pk
    if isinstance(owner, bool) or not isinstance(owner, (int, str, UUID)):
        raise TypeError(f"owner must be a user or a user's primary key, not {owner!r}")
    return owner


def _check_priority(priority: int, name: str) -> None:
    if not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise JobConfigurationError(
            f"Job {name!r}: priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY} "
            f"(higher runs first), not {priority!r}"
        )


def make_spec(
    func: Callable[..., Any],
    *,
    name: str | None,
    queue: str | None,
    max_attempts: int | None,
    backoff: Backoff | None,
    timeout: float | None,
    retry_on: tuple[type[BaseException], ...],
    priority: int,
    takes_context: bool,
    redact: tuple[str, ...] = (),
    schedules: tuple[Schedule, ...] = (),
    flow: FlowOptions | None = None,
    flow_arguments: tuple[inspect.Signature, ArgumentReader] | None = None,
) -> JobSpec:
    """The checked spec of a job. ``flow_arguments``: what flow-control keys are read from,
    when not the job's own arguments (a durable function's: its event's fields)."""
    where = origin(func) if hasattr(func, "__qualname__") else repr(func)
    if not inspect.isfunction(func):
        raise JobConfigurationError(f"@bgjob decorates plain functions, not {func!r}")
    if func.__name__ == "<lambda>":
        raise JobConfigurationError(
            f"@bgjob cannot take a lambda ({where}): workers find jobs by name. Use a def."
        )
    if "<locals>" in func.__qualname__:
        raise JobConfigurationError(
            f"@bgjob on a nested function ({where}): workers import jobs by module path, so "
            "define it at the top level of a module."
        )
    job_name = name or origin(func)
    _check_queue(queue or bgjobs_settings.DEFAULT_QUEUE, job_name, default=queue is None)
    queue = queue or bgjobs_settings.DEFAULT_QUEUE
    _check_priority(priority, job_name)
    attempts = bgjobs_settings.MAX_ATTEMPTS if max_attempts is None else max_attempts
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise JobConfigurationError(
            f"Job {job_name!r}: max_attempts must be an integer >= 1, not {attempts!r}"
        )
    if timeout is not None and not timeout > 0:
        raise JobConfigurationError(f"Job {job_name!r}: timeout must be > 0 seconds")
    if not isinstance(retry_on, tuple) or not all(
        isinstance(e, type) and issubclass(e, BaseException) for e in retry_on
    ):
        raise JobConfigurationError(
            f"Job {job_name!r}: retry_on must be a tuple of exception classes, not {retry_on!r}"
        )
    signature = inspect.signature(func)
    if takes_context:
        params = list(signature.parameters.values())
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise JobConfigurationError(
                f"Job {job_name!r} has takes_context=True: its first parameter receives the "
                "JobContext, so it needs one (def job(ctx, ...))."
            )
        signature = signature.replace(parameters=params[1:])
    if isinstance(redact, str) or not all(isinstance(name, str) for name in redact):
        raise JobConfigurationError(
            f"Job {job_name!r}: redact must be a tuple of argument names, not {redact!r}"
        )
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = sorted(set(redact) - set(signature.parameters))
    if unknown and not takes_any_keyword:
        raise JobConfigurationError(
            f"Job {job_name!r}: redact names {', '.join(map(repr, unknown))}, which "
            f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
            f"{func.__name__}{signature}"
        )
    try:
        job_backoff = backoff or Backoff.from_setting(bgjobs_settings.BACKOFF)
    except (TypeError, ValueError) as exc:
        raise JobConfigurationError(f"BGJOBS['BACKOFF'] is invalid: {exc}") from None
    for schedule in schedules:
        try:
            validate_arguments(job_name, signature, schedule.args, schedule.kwargs)
        except PayloadError as exc:
            raise JobConfigurationError(f"Job {job_name!r}, {schedule.describe()}: {exc}") from None
    return JobSpec(
        func=func,
        name=job_name,
        queue=queue,
        max_attempts=attempts,
        backoff=job_backoff,
        timeout=timeout,
        retry_on=retry_on,
        priority=priority,
        takes_context=takes_context,
        signature=signature,
        redact=frozenset(redact),
        schedules=schedules,
        flow=flow_spec(
            flow or {},
            job_name,
            flow_arguments[0] if flow_arguments else signature,
            f"Job {job_name!r}",
            flow_arguments[1] if flow_arguments else None,
        ),
    )


@overload
def bgjob(func: Callable[P, R], /) -> JobFunction[P, R]: ...
@overload
def bgjob(
    *,
    name: str | None = ...,
    queue: str | None = ...,
    max_attempts: int | None = ...,
    backoff: Backoff | None = ...,
    timeout: float | None = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
    priority: int = ...,
    takes_context: Literal[False] = ...,
    redact: tuple[str, ...] = ...,
    cron: str | None = ...,
    tz: str | None = ...,
    every: timedelta | None = ...,
    schedules: list[Schedule] | tuple[Schedule, ...] = ...,
    catch_up: CatchUp = ...,
    overlap: Overlap = ...,
    **flow: Unpack[FlowOptions],
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...
@overload
def bgjob(
    *,
    name: str | None = ...,
    queue: str | None = ...,
    max_attempts: int | None = ...,
    backoff: Backoff | None = ...,
    timeout: float | None = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
    priority: int = ...,
    takes_context: Literal[True],
    redact: tuple[str, ...] = ...,
    cron: str | None = ...,
    tz: str | None = ...,
    every: timedelta | None = ...,
    schedules: list[Schedule] | tuple[Schedule, ...] = ...,
    catch_up: CatchUp = ...,
    overlap: Overlap = ...,
    **flow: Unpack[FlowOptions],
) -> Callable[[Callable[Concatenate[JobContext, P], R]], JobFunction[P, R]]: ...


def bgjob(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    backoff: Backoff | None = None,
    timeout: float | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    priority: int = 0,
    takes_context: bool = False,
    redact: tuple[str, ...] = (),
    cron: str | None = None,
    tz: str | None = None,
    every: timedelta | None = None,
    schedules: list[Schedule] | tuple[Schedule, ...] = (),
    catch_up: CatchUp = "latest",
    overlap: Overlap = "allow",
    **flow: Unpack[FlowOptions],
) -> Any:
    """Make a module-level function a background job.

    ``max_attempts`` counts every run, the first included. ``retry_on`` limits retries to those
    exception types (others go dead at once); empty means retry on any exception. ``timeout`` is
    in seconds per attempt. ``priority`` 0-9, higher first. With ``takes_context=True`` the
    function's first parameter receives a :class:`~django_bgjobs.context.JobContext`.
    ``redact`` names arguments that are never shown: masked in the admin, scrubbed from errors.
    ``cron`` (in ``tz``) or ``every`` runs the job by itself (``catch_up`` and ``overlap`` as in
    :class:`~django_bgjobs.schedules.Schedule`); ``schedules`` declares several, each with its
    own arguments. They are synced into django-celery-beat after ``migrate``.
    ``concurrency``, ``throttle``, ``rate_limit``, ``debounce`` and ``singleton`` control how
    its jobs flow, per key, across every worker (:mod:`django_bgjobs.flow.options`).
    """
    declared = schedules_from_options(cron, every, tz, schedules, catch_up, overlap)

    def decorate(f: Callable[..., Any]) -> JobFunction[Any, Any]:
        spec = make_spec(
            f,
            name=name,
            queue=queue,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
            retry_on=retry_on,
            priority=priority,
            takes_context=takes_context,
            redact=redact,
            schedules=declared,
            flow=flow,
        )
        registry.add(spec)
        return JobFunction(spec)

    if func is not None:
        return decorate(func)
    return decorate
