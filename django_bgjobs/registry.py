"""The job registry: what ``@bgjob`` was told about each job (``JobSpec``), by name, and the
value objects of one enqueue (``EnqueueOptions``, ``JobCall``). A leaf: the decorator
(decorators.py), the enqueue path, the worker and the admin read it; it imports none of them."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from django_bgjobs.backoff import Backoff
from django_bgjobs.exceptions import JobConfigurationError
from django_bgjobs.schedules import Schedule

if TYPE_CHECKING:
    from django_bgjobs.flow.spec import FlowSpec

MIN_PRIORITY, MAX_PRIORITY = 0, 9


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything @bgjob was told about one job."""

    func: Callable[..., Any]
    name: str
    queue: str
    max_attempts: int
    backoff: Backoff
    timeout: float | None
    retry_on: tuple[type[BaseException], ...]
    priority: int
    takes_context: bool
    signature: inspect.Signature = field(repr=False)
    redact: frozenset[str] = frozenset()
    schedules: tuple[Schedule, ...] = ()
    flow: FlowSpec | None = None
    # Decides the delay before the next attempt instead of backoff and retry_on (None: no
    # more attempts): a django.tasks task's backoff function (tasks/specs.py).
    retry: Callable[[BaseException, int], float | None] | None = None


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Per-enqueue choices made with ``.using(...)``."""

    run_after: datetime | None = None
    delay: timedelta | None = None
    priority: int | None = None
    queue: str | None = None
    idempotency_key: str | None = None
    # The primary key of the user who owns the job (the status API shows it to them).
    owner_id: Any = None
    max_attempts: int | None = None

    def due_at(self, now: datetime) -> datetime | None:
        if self.run_after is not None:
            if timezone.is_naive(self.run_after):
                raise ValueError("run_after must be timezone-aware (use django.utils.timezone)")
            return self.run_after
        if self.delay is not None:
            return now + self.delay
        return None


@dataclass(frozen=True, slots=True)
class JobCall:
    """One prepared call of a job, for ``enqueue_many``."""

    spec: JobSpec
    options: EnqueueOptions
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class Registry:
    """Job name -> spec, filled as modules holding @bgjob functions are imported."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}
        self._resolvers: list[Callable[[str], None]] = []
        self._unresolved: set[str] = set()  # names the resolvers could not find
        self._asking: set[str] = set()  # names being resolved, by the thread holding the lock
        # One thread resolves at a time: another asking meanwhile waits for it instead of
        # taking the name for unknown. Reentrant: the import may ask the registry again.
        self._resolving = threading.RLock()

    def add_resolver(self, resolver: Callable[[str], None]) -> None:
        """``resolver(name)`` is called for a name the registry does not know, once per name,
        to import what defines it (a django.tasks task is registered when its module is)."""
        if resolver not in self._resolvers:
            self._resolvers.append(resolver)

    def add(self, spec: JobSpec) -> None:
        known = self._specs.get(spec.name)
        if known is not None and origin(known.func) != origin(spec.func):
            raise JobConfigurationError(
                f"Two jobs are named {spec.name!r}: {origin(known.func)} and "
                f"{origin(spec.func)}. Give one of them @bgjob(name=...)."
            )
        self._specs[spec.name] = spec

    def get(self, name: str) -> JobSpec | None:
        spec = self._specs.get(name)
        if spec is not None or not self._resolvers or name in self._unresolved:
            return spec
        with self._resolving:  # another thread resolving this name: wait for its answer
            spec = self._specs.get(name)
            if spec is None and name not in self._unresolved and name not in self._asking:
                self._asking.add(name)  # the import asking for it again gets None
                try:
                    for resolve in self._resolvers:
                        resolve(name)
                finally:
                    self._asking.discard(name)
                spec = self._specs.get(name)
                if spec is None:
                    self._unresolved.add(name)
        return spec

    def names(self) -> list[str]:
        return sorted(self._specs)


registry = Registry()


def origin(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"
