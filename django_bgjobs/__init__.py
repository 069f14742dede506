"""Background jobs for Django, tracked in the database and executed by Celery."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from django_bgjobs.backoff import Backoff
from django_bgjobs.context import JobContext
from django_bgjobs.decorators import JobFunction, bgjob
from django_bgjobs.exceptions import (
    BgJobsError,
    JobCancelled,
    JobConfigurationError,
    NonRetriable,
    PayloadError,
    RetryAfter,
)
from django_bgjobs.flow.options import (
    Batch,
    Concurrency,
    Debounce,
    RateLimit,
    Singleton,
    Throttle,
)
from django_bgjobs.functions.events import Event, event, send_events
from django_bgjobs.functions.function import DurableFunction, FunctionContext, function
from django_bgjobs.hooks import on_signup
from django_bgjobs.registry import JobCall
from django_bgjobs.schedules import Schedule

if TYPE_CHECKING:
    from django_bgjobs.models import Job

try:
    __version__ = version("django-bgjobs")
except PackageNotFoundError:  # running from a checkout
    __version__ = "0+unknown"


def enqueue_many(calls: Iterable[JobCall]) -> list[Job]:
    """Enqueue prepared calls (``job.prepare(...)``) in one INSERT and one publish batch."""
    # Imported here: this package is imported before Django's models are ready.
    from django_bgjobs.enqueue import enqueue_many as _enqueue_many

    return _enqueue_many(calls)


__all__ = [
    "Backoff",
    "Batch",
    "BgJobsError",
    "Concurrency",
    "Debounce",
    "DurableFunction",
    "Event",
    "FunctionContext",
    "JobCancelled",
    "JobConfigurationError",
    "JobContext",
    "JobCall",
    "JobFunction",
    "NonRetriable",
    "PayloadError",
    "RateLimit",
    "RetryAfter",
    "Schedule",
    "Singleton",
    "Throttle",
    "bgjob",
    "enqueue_many",
    "event",
    "function",
    "on_signup",
    "send_events",
]
