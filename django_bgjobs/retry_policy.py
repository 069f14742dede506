"""Whether a failed attempt is tried again, and when."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded

from django_bgjobs.backoff import Backoff
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.exceptions import NonRetriable, RetryAfter

if TYPE_CHECKING:
    from django_bgjobs.registry import JobSpec


def retry_delay(spec: JobSpec, exc: BaseException, attempt: int) -> float | None:
    """Seconds until the next attempt after ``exc`` ended attempt ``attempt``; None: no retry.

    The attempt budget (``max_attempts``) is checked by the state transition, not here.
    """
    if isinstance(exc, NonRetriable):
        return None
    if isinstance(exc, RetryAfter):
        return exc.seconds
    if spec.retry is not None:
        return spec.retry(exc, attempt)
    # A timeout is retried whatever retry_on says: it is the job's own limit, not a bug in it.
    if spec.retry_on and not isinstance(exc, (*spec.retry_on, SoftTimeLimitExceeded)):
        return None
    return spec.backoff.delay(attempt)


def delay_after_loss(name: str, attempt: int) -> float:
    """Backoff after an attempt whose worker vanished (lease expired)."""
    from django_bgjobs.registry import registry

    spec = registry.get(name)
    backoff = spec.backoff if spec else Backoff.from_setting(bgjobs_settings.BACKOFF)
    return backoff.delay(attempt)
