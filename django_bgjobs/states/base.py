"""What every transition shares: the attempt's lease, error text cut to size, the signals sent
after a write, and the cancel that wins over a retry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, DateTimeField, Value, When
from django.dispatch import Signal

from django_bgjobs import signals
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job, JobRun, JobStatus

logger = logging.getLogger("django_bgjobs.states")


def cut(text: str) -> str:
    """``text`` within MAX_ERROR_LENGTH: its start and its end, the middle left out (a
    traceback's last line names the exception; a message's start says what failed)."""
    limit = bgjobs_settings.MAX_ERROR_LENGTH
    if len(text) <= limit:
        return text
    marker = "\n... (truncated) ...\n"
    head = max((limit - len(marker)) // 4, 0)
    tail = max(limit - len(marker) - head, 0)
    return text[:head] + marker + text[len(text) - tail :]


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=bgjobs_settings.LEASE_SECONDS)


@dataclass(frozen=True, slots=True)
class Claim:
    job: Job
    run: JobRun


def cancel_instead_of_retry(
    job: Job, now: datetime, waiting: JobStatus = JobStatus.RETRYING
) -> bool:
    """A job cancelled while its attempt ran is not run again when that attempt fails (or is
    released): ``waiting`` is the status the attempt's end gave it."""
    stopped = Job.objects.filter(pk=job.pk, status=waiting, cancel_requested=True).update(
        status=JobStatus.CANCELLED, run_after=None, finished_at=now
    )
    if stopped:
        refresh(job, status=JobStatus.CANCELLED, run_after=None, finished_at=now)
        announce(signals.job_cancelled, job=job)
    return bool(stopped)


def ready(now: datetime) -> dict[str, Any]:
    """The UPDATE's values for jobs that may start now: ``queued`` (published at ``now``), or
    ``blocked`` for those under a concurrency limit, which wait for a place (flow/)."""
    return {
        "status": Case(
            When(gated=True, then=Value(JobStatus.BLOCKED)), default=Value(JobStatus.QUEUED)
        ),
        "published_at": Case(
            When(gated=True, then=Value(None, output_field=DateTimeField())),
            default=Value(now, output_field=DateTimeField()),
        ),
    }


def announce_blocked(flow_keys: set[str | None]) -> None:
    """Once the transaction commits: these keys have new blocked jobs (admission looks)."""
    keys = {key for key in flow_keys if key}
    if keys:
        transaction.on_commit(lambda: announce(signals.jobs_blocked, flow_keys=keys), robust=True)


def announce(signal: Signal, **kwargs: Any) -> None:
    """Send a signal after a transition was written. A receiver's error is logged and does not
    undo or disturb the transition (it would otherwise be taken for the job's own failure)."""
    for receiver, response in signal.send_robust(sender=Job, **kwargs):
        if isinstance(response, Exception):
            logger.error("signal receiver %r failed", receiver, exc_info=response)


def refresh(job: Job, **values: object) -> None:
    for name, value in values.items():
        setattr(job, name, value)
