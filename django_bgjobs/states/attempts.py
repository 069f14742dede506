"""The transitions of a running attempt: its claim, its outcome (success, failure, cancelled, given
back at shutdown, parked by a durable function), and its heartbeat and progress."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from django_bgjobs import _sql, signals, wake
from django_bgjobs.celery import continuation
from django_bgjobs.celery.broker import MessageRef, publish
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.states.base import (
    Claim,
    announce,
    cancel_instead_of_retry,
    cut,
    lease_until,
)


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
    hand_off = _hand_off(claim)
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
        hand_off=hand_off,
    )
    if won:
        _publish_handed(claim, hand_off)
        announce(signals.job_succeeded, job=claim.job, run=claim.run)
    return won


def fail(claim: Claim, error: str, traceback: str, retry_in: float | None) -> str | None:
    """Record a failed attempt: retry in ``retry_in`` seconds, or dead when None.

    Returns the job's new status, or None when the fence rejected the write.
    """
    now = timezone.now()
    error, traceback = cut(error), cut(traceback)
    if retry_in is not None and claim.run.attempt < claim.job.max_attempts:
        status, run_after, finished_at = JobStatus.RETRYING, now + timedelta(seconds=retry_in), None
    else:
        status, run_after, finished_at = JobStatus.DEAD, None, now
    hand_off = _hand_off(claim)
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
        hand_off=hand_off,
    )
    if not won:
        return None
    _publish_handed(claim, hand_off)
    if run_after is not None:  # a retry due before the dispatcher's next pass: wake it
        transaction.on_commit(
            lambda: wake.due_at(run_after), using=router.db_for_write(Job), robust=True
        )
    if status == JobStatus.RETRYING and cancel_instead_of_retry(claim.job, now):
        return JobStatus.CANCELLED
    signal = signals.job_failed if status == JobStatus.RETRYING else signals.job_dead
    announce(signal, job=claim.job, run=claim.run, error=error)
    return status


def _hand_off(claim: Claim) -> _sql.HandOff | None:
    """The place a job under a concurrency limit leaves as its attempt ends, for its key's
    next job (PostgreSQL: in the finishing statement). None: the signal's admission does it."""
    from django_bgjobs.registry import registry

    job = claim.job
    if not (job.gated and job.flow_key):
        return None
    if connections[router.db_for_write(Job)].vendor != "postgresql":
        return None
    spec = registry.get(job.name)
    flow = spec.flow if spec is not None else None
    if flow is None or flow.concurrency is None:
        return None
    return _sql.HandOff(job.flow_key, flow.gate, flow.concurrency)


def _publish_handed(claim: Claim, hand_off: _sql.HandOff | None) -> None:
    if hand_off is None:
        return
    # Read by flow/admission.py's receivers: the place went to the next job (or no job of the
    # key waited for it), so no admission is needed.
    claim.job.place_passed_on = True  # type: ignore[attr-defined]
    refs = [MessageRef(pk, attempts + 1, *rest) for pk, attempts, *rest in hand_off.handed]
    if not refs:
        return
    queue = claim.job.queue

    def publish_unless_kept() -> None:
        # In a worker, the process that freed the place may run the next job itself.
        if to_publish := continuation.keep_one(refs, queue):
            publish(to_publish)

    transaction.on_commit(publish_unless_kept, robust=True)


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
            error=cut(reason),
        )
    if cancel_instead_of_retry(job, now, waiting=JobStatus.QUEUED):
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
            "error": cut(error),
            "lease_expires_at": None,
        },
        RunStatus.FAILED if failed else RunStatus.PARKED,
        now,
        error=cut(error),
        traceback=cut(traceback),
    )
    if not won:
        return False
    waiting = JobStatus.RETRYING if failed else JobStatus.SCHEDULED
    if not cancel_instead_of_retry(claim.job, now, waiting=waiting) and failed:
        announce(signals.job_failed, job=claim.job, run=claim.run, error=error)
    return True
