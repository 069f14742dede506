"""The exceptions a job function, or a caller of the API, may meet."""

from __future__ import annotations

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
    """Raise from a job to be attempted again after ``seconds`` (counts as an attempt)."""

    def __init__(self, seconds: float, message: str = "") -> None:
        if seconds < 0:
            raise ValueError("RetryAfter(seconds) needs seconds >= 0")
        self.seconds = float(seconds)
        super().__init__(message or f"retry requested in {self.seconds:g}s")


class JobCancelled(BgJobsError):
    """Raised inside a running job (by ctx.progress / ctx.check_cancelled) once it was cancelled."""


class LeaseLost(BgJobsError):
    """Raised inside a running job whose lease was taken over: another attempt owns the job now."""
