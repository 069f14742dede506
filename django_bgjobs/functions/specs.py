"""What ``@function`` was told about each durable function, by name, and which functions listen
to each event. Filled as the modules holding them are imported (``<app>/jobs.py`` loads by
itself, as for jobs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_bgjobs.exceptions import JobConfigurationError
from django_bgjobs.registry import JobSpec, origin

if TYPE_CHECKING:
    from django_bgjobs.functions.events import Event


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A durable function: its code, the events that start it and cancel it, and the job spec
    its runs are jobs of (queue, attempts, backoff, timeout, schedules)."""

    func: Callable[..., Any]
    job: JobSpec
    on: tuple[type[Event], ...]
    cancel_on: tuple[tuple[type[Event], str], ...]
    takes_event: bool

    @property
    def name(self) -> str:
        return self.job.name


_functions: dict[str, FunctionSpec] = {}
_listeners: dict[str, dict[str, FunctionSpec]] = {}


def add(spec: FunctionSpec) -> None:
    known = _functions.get(spec.name)
    if known is not None and origin(known.func) != origin(spec.func):
        raise JobConfigurationError(
            f"Two functions are named {spec.name!r}: {origin(known.func)} and "
            f"{origin(spec.func)}. Give one of them @function(name=...)."
        )
    _functions[spec.name] = spec
    for event_class in spec.on:
        _listeners.setdefault(event_class.event_name, {})[spec.name] = spec


def get(name: str) -> FunctionSpec | None:
    return _functions.get(name)


def listening_to(event_name: str) -> list[FunctionSpec]:
    return list(_listeners.get(event_name, {}).values())


def is_function(job_name: str) -> bool:
    return job_name in _functions
