"""Every change of a job's status, each one a conditional UPDATE.

Nothing else writes ``Job.status``. The WHERE clause of each UPDATE is the fence: a worker
holding a stale message, or finishing after its lease was taken over, updates zero rows and
learns it lost. Signals are sent after the change is written.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from django_bgjobs import _sql, signals
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus

logger = logging.getLogger("django_bgjobs.states")


def _cut(text: str) -> str:
    limit = bgjobs_settings.MAX_ERROR_LENGTH
    return text if len(text) <= limit else text[: limit - 20] + "\n... (truncated)"


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=bgjobs_settings.LEASE_SECONDS)


@dataclass(frozen=True, slots=True)
class Claim:
    job: Job
    run: JobRun


def claim(job_id: str, attempt: int, worker: str) -> Claim | None:
    """Take a queued job for attempt number ``attempt``; None for a duplicate or stale message."""
    now = timezone.now()
    claimed = _sql.claim(job_id, attempt, worker, now, lease_until(now))
    if claimed is None:
        return None
    job, run = claimed
    announce(signals.job_started, job=job, run=run)
    return Claim(job, run)


def succeed(claim: Claim, result: object) -> bool:
    """Record success; False (and the run marked superseded) when the fence rejected it."""
    now = timezone.now()
    won = _sql.finish(
        claim.job,
        claim.run,
        {
            "status": JobStatus.SUCCEEDED,
            "result": result,
            "error": "",
            "finished_at": now,
            "lease_expires_at": None,
        },
        RunStatus.SUCCEEDED,
        now,
    )
    if won:
        announce(signals.job_succeeded, job=claim.job, run=claim.run)
    return won


def fail(claim: Claim, error: str, traceback: str, retry_in: float | None) -> str | None:
    """Record a failed attempt: retry in ``retry_in`` seconds, or dead when None.

    Returns the job's new status, or None when the fence rejected the write.
    """
    now = timezone.now()
    error, traceback = _cut(error), _cut(traceback)
    if retry_in is not None and claim.run.attempt < claim.job.max_attempts:
        status, run_after, finished_at = JobStatus.RETRYING, now + timedelta(seconds=retry_in), None
    else:
        status, run_after, finished_at = JobStatus.DEAD, None, now
    won = _sql.finish(
        claim.job,
        claim.run,
        {
            "status": status,
            "run_after": run_after,
            "error": error,
            "finished_at": finished_at,
            "lease_expires_at": None,
        },
        RunStatus.FAILED,
        now,
        error=error,
        traceback=traceback,
    )
    if not won:
        return None
    if status == JobStatus.RETRYING and _cancel_instead_of_retry(claim.job, now):
        return JobStatus.CANCELLED
    signal = signals.job_failed if status == JobStatus.RETRYING else signals.job_dead
    announce(signal, job=claim.job, run=claim.run, error=error)
    return status


def _cancel_instead_of_retry(
    job: Job, now: datetime, waiting: JobStatus = JobStatus.RETRYING
) -> bool:
    """A job cancelled while its attempt ran is not run again when that attempt fails (or is
    released): ``waiting`` is the status the attempt's end gave it."""
    stopped = Job.objects.filter(pk=job.pk, status=waiting, cancel_requested=True).update(
        status=JobStatus.CANCELLED, run_after=None, finished_at=now
    )
    if stopped:
        _refresh(job, status=JobStatus.CANCELLED, run_after=None, finished_at=now)
        announce(signals.job_cancelled, job=job)
    return bool(stopped)


def cancelled_while_running(claim: Claim) -> bool:
    """The running job stopped because it was cancelled."""
    now = timezone.now()
    won = _sql.finish(
        claim.job,
        claim.run,
        {
            "status": JobStatus.CANCELLED,
            "finished_at": now,
            "lease_expires_at": None,
        },
        RunStatus.CANCELLED,
        now,
    )
    if won:
        announce(signals.job_cancelled, job=claim.job)
    return won


def heartbeat(job_id: UUID | str, attempt: int) -> tuple[bool, bool]:
    """Extend the lease of a running attempt. Returns (still ours, cancel requested)."""
    now = timezone.now()
    held = Job.objects.attempt_running(job_id, attempt).update(lease_expires_at=lease_until(now))
    if not held:
        return False, False
    cancel = Job.objects.filter(pk=job_id).values_list("cancel_requested", flat=True).first()
    return True, bool(cancel)


def report_progress(
    job_id: UUID | str, attempt: int, done: int, total: int | None, message: str
) -> tuple[bool, bool]:
    """Store progress and extend the lease in one write. Returns (still ours, cancel requested)."""
    now = timezone.now()
    fence = Job.objects.attempt_running(job_id, attempt)
    updated = fence.filter(cancel_requested=False).update(
        progress_done=done,
        progress_total=total,
        progress_message=message[:255],
        lease_expires_at=lease_until(now),
    )
    if updated:
        return True, False
    return fence.exists(), True


def release(job_id: UUID | str, attempt: int, reason: str) -> Job | None:
    """Give a running attempt back to the queue: its worker is shutting down and the attempt
    outlived the grace period. The attempt is recorded as ``released`` and the job is
    ``queued`` again, now, without spending one of its attempts (a deploy is not the job's
    fault). Returns the job (``queued``, for the caller to publish once the attempt's process
    is stopped; or ``cancelled`` if someone asked for that meanwhile), or None when the fence
    says attempt ``attempt`` is no longer running: it finished, or another took over.

    ``published_at`` is set as for any publish: if the caller dies before publishing, the
    dispatcher republishes after REPUBLISH_AFTER. The attempt's own late report is rejected by
    the fence in ``_sql.finish`` and does not overwrite the ``released`` row.
    """
    now = timezone.now()
    with transaction.atomic():
        won = Job.objects.attempt_running(job_id, attempt).update(
            status=JobStatus.QUEUED,
            published_at=now,
            run_after=None,
            lease_expires_at=None,
            # The budget grows by the attempt given back; attempt numbers keep counting up
            # (the next one is attempt + 1), so each stays a unique fence value.
            max_attempts=F("max_attempts") + 1,
        )
        if not won:
            return None
        job = Job.objects.get(pk=job_id)
        started = job.started_at or now
        run = JobRun.objects.create(
            job=job,
            attempt=attempt,
            status=RunStatus.RELEASED,
            worker=job.worker,
            started_at=started,
            finished_at=now,
            duration_ms=max(int((now - started).total_seconds() * 1000), 0),
            error=_cut(reason),
        )
    if _cancel_instead_of_retry(job, now, waiting=JobStatus.QUEUED):
        return job
    announce(signals.job_released, job=job, run=run)
    return job


def suspend(claim: Claim, until: datetime, error: str = "", traceback: str = "") -> bool:
    """End a durable function's attempt without ending its run: it waits (``scheduled``) until
    ``until``, or, after a failed step (``error``), is retried then (``retrying``). Neither
    spends an attempt: the run's budget grows by this one, as for a release; a step's own
    attempts are counted on its Step row. False when the fence rejected the write."""
    now = timezone.now()
    failed = bool(error)
    won = _sql.finish(
        claim.job,
        claim.run,
        {
            "status": JobStatus.RETRYING if failed else JobStatus.SCHEDULED,
            "run_after": until,
            "max_attempts": claim.job.max_attempts + 1,
            "error": _cut(error),
            "lease_expires_at": None,
        },
        RunStatus.FAILED if failed else RunStatus.PARKED,
        now,
        error=_cut(error),
        traceback=_cut(traceback),
    )
    if not won:
        return False
    waiting = JobStatus.RETRYING if failed else JobStatus.SCHEDULED
    if not _cancel_instead_of_retry(claim.job, now, waiting=waiting) and failed:
        announce(signals.job_failed, job=claim.job, run=claim.run, error=error)
    return True


def wake(job_ids: Collection[UUID | str]) -> list[Job]:
    """Queue these waiting jobs now (a parked run whose event arrived) and publish them once
    the current transaction commits. Returns the jobs woken; others are left as they are."""
    from django_bgjobs.celery.broker import publish_on_commit

    now = timezone.now()
    with transaction.atomic():
        woken = Job.objects.waiting().filter(pk__in=list(job_ids))
        pks = list(woken.select_for_update().values_list("pk", flat=True))
        if not pks:
            return []
        Job.objects.waiting().filter(pk__in=pks).update(
            status=JobStatus.QUEUED, run_after=None, published_at=now
        )
        jobs = list(Job.objects.queued().filter(pk__in=pks, published_at=now))
        publish_on_commit(jobs)
    return jobs


# --- Transitions made by the dispatcher -------------------------------------------------------


def promote_due(now: datetime, limit: int, due_by: datetime | None = None) -> list[Job]:
    """Move waiting jobs due by ``due_by`` (default: now) to ``queued``; returns them for
    publishing. (``testing`` passes a far ``due_by`` to skip delays and backoff.)"""
    with transaction.atomic():
        ids = list(
            Job.objects.due(due_by or now)
            .order_by("-priority", "run_after")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        Job.objects.waiting().filter(pk__in=ids).update(status=JobStatus.QUEUED, published_at=now)
        return list(Job.objects.queued().filter(pk__in=ids, published_at=now))


def reclaim_unpublished(now: datetime, limit: int) -> list[Job]:
    """Queued jobs never published (broker down) or published long ago and never started."""
    stale = now - timedelta(seconds=bgjobs_settings.REPUBLISH_AFTER)
    with transaction.atomic():
        jobs = list(
            Job.objects.published_before(stale)
            .order_by("-priority", "created_at")
            .select_for_update(skip_locked=True)[:limit]
        )
        if jobs:
            Job.objects.filter(pk__in=[j.pk for j in jobs]).update(published_at=now)
    return jobs


def expire_leases(now: datetime, limit: int) -> list[Job]:
    """Running jobs whose worker stopped heartbeating: the attempt is lost; retry or dead."""
    from django_bgjobs.retry_policy import delay_after_loss

    expired = list(
        Job.objects.lease_expired(now)
        .order_by("lease_expires_at")
        .values("pk", "name", "attempts", "max_attempts", "worker", "started_at")[:limit]
    )
    changed: list[Job] = []
    for row in expired:
        error = "lost: the worker stopped heartbeating (killed, out of memory, or gone)"
        if row["attempts"] < row["max_attempts"]:
            status = JobStatus.RETRYING
            run_after: datetime | None = now + timedelta(
                seconds=delay_after_loss(row["name"], row["attempts"])
            )
        else:
            status, run_after = JobStatus.DEAD, None
        with transaction.atomic():
            won = (
                Job.objects.attempt_running(row["pk"], row["attempts"])
                .filter(lease_expires_at__lt=now)
                .update(
                    status=status,
                    run_after=run_after,
                    error=error,
                    lease_expires_at=None,
                    finished_at=now if status == JobStatus.DEAD else None,
                )
            )
            if not won:
                continue
            JobRun.objects.create(
                job_id=row["pk"],
                attempt=row["attempts"],
                status=RunStatus.LOST,
                worker=row["worker"],
                started_at=row["started_at"] or now,
                finished_at=now,
                duration_ms=int((now - (row["started_at"] or now)).total_seconds() * 1000),
                error=error,
            )
        job = Job.objects.get(pk=row["pk"])
        changed.append(job)
        if status == JobStatus.RETRYING and _cancel_instead_of_retry(job, now):
            continue
        signal = signals.job_failed if status == JobStatus.RETRYING else signals.job_dead
        announce(signal, job=job, run=None, error=error)
    return changed


# --- Transitions asked for by people (API, admin, command) -----------------------------------


def cancel(job: Job) -> bool:
    """Cancel a waiting or queued job now; ask a running one to stop. False if it had finished."""
    if cancel_many([job.pk]):
        job.refresh_from_db()
        return True
    asked = Job.objects.running().filter(pk=job.pk).update(cancel_requested=True)
    if asked:
        job.cancel_requested = True
    return bool(asked)


def retry(job: Job) -> bool:
    """Queue a dead or cancelled job again with a fresh budget of attempts; publish on commit."""
    if not retry_many([job.pk]):
        return False
    job.refresh_from_db()
    return True


def retry_many(job_ids: Collection[UUID | str]) -> list[Job]:
    """Queue dead or cancelled jobs again, each with a fresh budget of attempts (its job's
    ``max_attempts``), in one transaction and a few statements, and publish them on commit.
    Returns the jobs queued again; the others are left as they are."""
    from django_bgjobs.celery.broker import publish_on_commit
    from django_bgjobs.registry import registry

    now = timezone.now()
    with transaction.atomic():
        # Locked, so that the UPDATEs below change exactly these rows (on PostgreSQL; SQLite
        # serialises writers).
        names = dict(
            Job.objects.retriable()
            .filter(pk__in=list(job_ids))
            .select_for_update()
            .values_list("pk", "name")
        )
        if not names:
            return []
        by_budget: dict[int, list[Any]] = {}
        for pk, name in names.items():
            spec = registry.get(name)
            budget = spec.max_attempts if spec else bgjobs_settings.MAX_ATTEMPTS
            by_budget.setdefault(budget, []).append(pk)
        for budget, pks in by_budget.items():
            Job.objects.retriable().filter(pk__in=pks).update(
                status=JobStatus.QUEUED,
                # Attempt numbers keep counting up so that each stays a unique fence value.
                max_attempts=F("attempts") + budget,
                run_after=None,
                finished_at=None,
                cancel_requested=False,
                published_at=now,
                error="",
            )
        jobs = list(Job.objects.queued().filter(pk__in=list(names), published_at=now))
        publish_on_commit(jobs)
    for job in jobs:
        announce(signals.job_enqueued, job=job)
    return jobs


def cancel_many(job_ids: Collection[UUID | str]) -> list[Job]:
    """Cancel the waiting or queued jobs among these, in one transaction; running and finished
    ones are left alone. Returns the jobs cancelled."""
    now = timezone.now()
    with transaction.atomic():
        pks = list(
            Job.objects.cancellable()
            .filter(pk__in=list(job_ids))
            .select_for_update()
            .values_list("pk", flat=True)
        )
        if not pks:
            return []
        Job.objects.cancellable().filter(pk__in=pks).update(
            status=JobStatus.CANCELLED, finished_at=now, run_after=None
        )
        jobs = list(Job.objects.filter(pk__in=pks, status=JobStatus.CANCELLED, finished_at=now))
    for job in jobs:
        announce(signals.job_cancelled, job=job)
    return jobs


def announce(signal: Signal, **kwargs: Any) -> None:
    """Send a signal after a transition was written. A receiver's error is logged and does not
    undo or disturb the transition (it would otherwise be taken for the job's own failure)."""
    for receiver, response in signal.send_robust(sender=Job, **kwargs):
        if isinstance(response, Exception):
            logger.error("signal receiver %r failed", receiver, exc_info=response)


def _refresh(job: Job, **values: object) -> None:
    for name, value in values.items():
        setattr(job, name, value)
