"""The exceptions a job function, or a caller of the API, may meet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured


class BgJobsError(Exception):
    """Base of every error raised by django-bgjobs."""


class JobConfigurationError(BgJobsError, ImproperlyConfigured):
    """A @bgjob declaration or a BGJOBS setting is wrong; raised at import time."""


class PayloadError(BgJobsError, TypeError):
    """The arguments given to enqueue() cannot be stored as JSON, or do not fit the function."""


class NonRetriable(BgJobsError):
    """Raise from a job to fail it for good: it goes straight to ``dead``, no more attempts."""


class RetryAfter(BgJobsError):
    """Raise from a job to be run again after ``seconds``: a rate-limited API's ``Retry-After``.
    It does not spend one of the job's attempts (the attempt is recorded, and the budget grows
    by one, as Oban's snooze does); ``spend_attempt=True`` makes it count as a failed attempt."""

    def __init__(self, seconds: float, message: str = "", *, spend_attempt: bool = False) -> None:
        if seconds < 0:
            raise ValueError("RetryAfter(seconds) needs seconds >= 0")
        self.seconds = float(seconds)
        self.spend_attempt = spend_attempt
        super().__init__(message or f"retry requested in {self.seconds:g}s")


class JobCancelled(BgJobsError):
    """Raised inside a running job (by ctx.progress / ctx.check_cancelled) once it was cancelled."""


class LeaseLost(BgJobsError):
    """Raised inside a running job whose lease was taken over: another attempt owns the job now."""


class Suspend(BaseException):
    """Raised by a durable function's step to end this attempt without ending the run: it sleeps
    or waits until ``until`` (the dispatcher, or a matching event, resumes it), or its step
    failed and is tried again then (``error``, ``traceback``: that step's failure). Not an
    Exception, so that a function's own ``except Exception`` does not swallow it. ``recheck``
    runs once the run is parked: it wakes the run if what it waits for arrived meanwhile."""

    def __init__(
        self,
        until: datetime,
        *,
        error: str = "",
        traceback: str = "",
        recheck: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(error or f"suspended until {until.isoformat()}")
        self.until = until
        self.error = error
        self.traceback = traceback
        self.recheck = recheck
