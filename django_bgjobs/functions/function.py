"""``@function``: a durable function, run as a job of its own name whose steps are stored.

    @function(on=SignedUp, cancel_on=[(UserDeleted, "user_id")], max_attempts=4)
    def onboarding(ctx: FunctionContext, ev: SignedUp) -> None:
        ctx.step.run("welcome-email", send_welcome, ev.user_id)
        ctx.step.sleep("wait-a-day", timedelta(days=1))

A run starts when an event it listens to is sent, from ``.enqueue(event)``, or from its
schedule (``cron=`` / ``every=``, as for jobs). It is a ``Job``: queues, priorities, leases,
the admin, the dashboard and the metrics treat it as one. ``max_attempts`` and ``backoff`` are
each step's; the run's own attempts (one per resumption) are not counted against them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypedDict, TypeVar, Unpack

from django_bgjobs.backoff import Backoff
from django_bgjobs.context import JobContext
from django_bgjobs.decorators import JobFunction, make_spec
from django_bgjobs.exceptions import JobConfigurationError, NonRetriable
from django_bgjobs.flow.options import FlowOptions
from django_bgjobs.functions import specs
from django_bgjobs.functions.events import Event, event_argument, event_type, name_of
from django_bgjobs.registry import origin, registry
from django_bgjobs.schedules import CatchUp, Overlap, schedules_from_options

if TYPE_CHECKING:
    from django_bgjobs.functions.steps import Steps
    from django_bgjobs.models import Job

R = TypeVar("R")


@dataclass(eq=False)
class FunctionContext:
    """What a durable function is given first: ``ctx.step`` (the steps), ``ctx.job`` (the
    attempt's JobContext: ``attempt``, ``logger``, ``progress()``...), ``ctx.run_id``."""

    step: Steps
    job: JobContext

    @property
    def run_id(self) -> Any:
        return self.job.job_id

    @property
    def logger(self) -> Any:
        return self.job.logger


class RunOptions(TypedDict, total=False):
    delay: timedelta | float
    run_after: datetime
    priority: int
    queue: str
    idempotency_key: str


class DurableFunction(Generic[R]):
    """What ``@function`` returns: start a run with ``.enqueue(event)``."""

    def __init__(self, spec: specs.FunctionSpec, job: JobFunction[Any, Any]) -> None:
        self.spec = spec
        self._job = job
        functools.update_wrapper(self, spec.func)  # its name, docstring, module: the function's

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"<function {self.spec.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            f"{self.spec.name} is a durable function: send an event it listens to, or start a "
            "run with .enqueue(event)."
        )

    def using(self, **options: Unpack[RunOptions]) -> DurableFunction[R]:
        """The same function with other options for the runs ``.enqueue()`` starts: ``delay``,
        ``run_after``, ``priority``, ``queue``, ``idempotency_key``, as for a job's ``using``."""
        return DurableFunction(self.spec, self._job.using(**options))

    def enqueue(self, event: Event | None = None) -> Job:
        """Start a run now, in the current transaction (it runs once that commits), with
        ``event`` as its event; the event is not sent to other listeners (use ``.send()``)."""
        from django.db import transaction

        from django_bgjobs.functions.runs import start_runs

        if event is not None and self.spec.on and not isinstance(event, self.spec.on):
            raise TypeError(
                f"{self.spec.name} takes {' or '.join(c.__name__ for c in self.spec.on)}, "
                f"not {type(event).__name__}"
            )
        given = None if event is None else event_argument(event)
        with transaction.atomic():
            [run] = start_runs([(self.spec, given)], self._job.options)
        return run


def function(
    *,
    on: type[Event] | Sequence[type[Event]] = (),
    cancel_on: Sequence[tuple[type[Event], str]] = (),
    name: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    backoff: Backoff | None = None,
    timeout: float | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    priority: int = 0,
    cron: str | None = None,
    tz: str | None = None,
    every: timedelta | None = None,
    catch_up: CatchUp = "latest",
    overlap: Overlap = "allow",
    **flow: Unpack[FlowOptions],
) -> Callable[[Callable[..., R]], DurableFunction[R]]:
    """Make a module-level function ``f(ctx, event)`` (or ``f(ctx)``) a durable function.

    ``on`` names the event classes that start a run (one run per function and event sent).
    ``cancel_on`` pairs an event class with a field of the starting event: such an event
    whose field has the same value cancels the run (waiting or sleeping at once; a running one
    at its next step). ``max_attempts``, ``backoff`` and ``retry_on`` apply to each step;
    ``timeout`` (seconds) to each attempt of the run; ``cron``/``every`` start runs on a
    schedule, without an event. ``concurrency``, ``throttle``, ``rate_limit``, ``debounce``
    and ``singleton`` apply to its runs as to jobs; their keys name fields of the event.
    """
    starts = (on,) if isinstance(on, type) else tuple(on)
    declared = schedules_from_options(cron, every, tz, (), catch_up, overlap)

    def decorate(func: Callable[..., R]) -> DurableFunction[R]:
        where = origin(func) if hasattr(func, "__qualname__") else repr(func)
        if not inspect.isfunction(func) or func.__name__ == "<lambda>":
            raise JobConfigurationError(f"@function decorates plain functions, not {where}")
        if "<locals>" in func.__qualname__:
            raise JobConfigurationError(
                f"@function on a nested function ({where}): define it at the top level of a "
                "module, where workers find it."
            )
        takes_event = _check_signature(func, where, starts)
        if "batch" in flow:
            raise JobConfigurationError(
                f"@function {where}: Batch gathers jobs' arguments; a function's runs each "
                "take one event"
            )
        _check_events(starts, cancel_on, where)
        job_spec = make_spec(
            run_function,
            name=name or where,
            queue=queue,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
            retry_on=retry_on,
            priority=priority,
            takes_context=True,
            schedules=declared,
            flow=flow,
            flow_arguments=(_event_fields(starts), _event_data),
        )
        spec = specs.FunctionSpec(
            func=func,
            job=job_spec,
            on=starts,
            cancel_on=tuple(cancel_on),
            takes_event=takes_event,
        )
        specs.add(spec)
        registry.add(job_spec)
        return DurableFunction(spec, JobFunction(job_spec))

    return decorate


def run_function(ctx: JobContext, event: dict[str, Any] | None = None) -> Any:
    """The job every run is: the function, called with its steps and its event."""
    from django_bgjobs.functions.steps import Steps

    spec = specs.get(ctx.name)
    if spec is None:
        raise NonRetriable(f"no @function is named {ctx.name!r} in this worker")
    typed: Event | None = None
    if event is not None:
        event_class = event_type(event["name"])
        if event_class is None:
            raise NonRetriable(f"the run's event {event['name']!r} has no @event class here")
        typed = event_class.from_payload(event["data"])
    steps = Steps(ctx, spec, typed, event.get("id") if event else None)
    context = FunctionContext(step=steps, job=ctx)
    return spec.func(context, typed) if spec.takes_event else spec.func(context)


def _event_fields(starts: tuple[type[Event], ...]) -> inspect.Signature:
    """What a flow-control key may name: the fields every starting event has."""
    common = set.intersection(*({f.name for f in fields(c)} for c in starts)) if starts else set()  # type: ignore[arg-type]
    return inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in sorted(common)]
    )


def _event_data(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    event = kwargs.get("event")
    return event["data"] if event else {}


def _check_signature(func: Callable[..., Any], where: str, starts: tuple[type[Event], ...]) -> bool:
    """Whether the function takes the event (a second parameter)."""
    positional = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not positional:
        raise JobConfigurationError(f"@function {where} takes the context first: def f(ctx, ev)")
    if starts and len(positional) < 2:
        raise JobConfigurationError(
            f"@function {where} is started by events ({', '.join(c.__name__ for c in starts)}): "
            "it takes the event after the context, def f(ctx, ev)"
        )
    return len(positional) >= 2


def _check_events(
    starts: tuple[type[Event], ...], cancel_on: Sequence[tuple[type[Event], str]], where: str
) -> None:
    for event_class in starts:
        if not (isinstance(event_class, type) and issubclass(event_class, Event)):
            raise JobConfigurationError(f"@function {where}: on= takes Event classes")
        name_of(event_class)
    for pair in cancel_on:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], str)):
            raise JobConfigurationError(
                f"@function {where}: cancel_on takes (EventClass, 'field') pairs, not {pair!r}"
            )
        cancel_class, field = pair
        name_of(cancel_class)
        for event_class in (*starts, cancel_class):
            if field not in {f.name for f in fields(event_class)}:  # type: ignore[arg-type]
                raise JobConfigurationError(
                    f"@function {where}: cancel_on matches on {field!r}, which "
                    f"{event_class.__name__} has no field of"
                )
