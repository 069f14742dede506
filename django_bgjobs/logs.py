"""Structured log lines for every step of a job, as ``logging`` records with ``extra``.

Any JSON formatter shows the fields: job_id, job_name, attempt, queue, status, duration_ms, error.
"""

from __future__ import annotations

import logging
from typing import Any

from django_bgjobs import signals

logger = logging.getLogger("django_bgjobs.jobs")


def _fields(job: Any, run: Any = None, **more: Any) -> dict[str, Any]:
    fields = {
        "job_id": str(job.pk),
        "job_name": job.name,
        "attempt": job.attempts,
        "queue": job.queue,
        "status": job.status,
    }
    if run is not None and run.duration_ms is not None:
        fields["duration_ms"] = run.duration_ms
    fields.update(more)
    return fields


def _enqueued(job: Any, **kwargs: Any) -> None:
    logger.info("job %s enqueued: %s", job.pk, job.name, extra=_fields(job))


def _started(job: Any, run: Any, **kwargs: Any) -> None:
    logger.info(
        "job %s started: %s attempt %s/%s",
        job.pk,
        job.name,
        job.attempts,
        job.max_attempts,
        extra=_fields(job, worker=run.worker),
    )


def _succeeded(job: Any, run: Any, **kwargs: Any) -> None:
    logger.info("job %s succeeded: %s", job.pk, job.name, extra=_fields(job, run))


def _failed(job: Any, error: str, run: Any = None, **kwargs: Any) -> None:
    logger.warning(
        "job %s failed, will retry at %s: %s attempt %s/%s: %s",
        job.pk,
        job.run_after,
        job.name,
        job.attempts,
        job.max_attempts,
        error,
        extra=_fields(job, run, error=error, retry_at=str(job.run_after)),
    )


def _dead(job: Any, error: str, run: Any = None, **kwargs: Any) -> None:
    logger.error(
        "job %s is dead: %s after %s attempt(s): %s",
        job.pk,
        job.name,
        job.attempts,
        error,
        extra=_fields(job, run, error=error),
    )


def _cancelled(job: Any, **kwargs: Any) -> None:
    logger.info("job %s cancelled: %s", job.pk, job.name, extra=_fields(job))


def _released(job: Any, run: Any, **kwargs: Any) -> None:
    logger.warning(
        "job %s released: %s attempt %s was still running when its worker %s shut down; "
        "queued again",
        job.pk,
        job.name,
        run.attempt,
        run.worker,
        extra=_fields(job, run, worker=run.worker),
    )


def connect() -> None:
    for signal, receiver in (
        (signals.job_enqueued, _enqueued),
        (signals.job_started, _started),
        (signals.job_succeeded, _succeeded),
        (signals.job_failed, _failed),
        (signals.job_dead, _dead),
        (signals.job_cancelled, _cancelled),
        (signals.job_released, _released),
    ):
        signal.connect(receiver, dispatch_uid=f"django_bgjobs.logs.{receiver.__name__}")
