"""The transitions the dispatcher makes: due jobs queued, lost messages published again, expired
leases turned into lost attempts."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import router, transaction

from django_bgjobs import _sql, signals
from django_bgjobs.celery.broker import MessageRef, publish
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.retry_policy import delay_after_loss
from django_bgjobs.states.base import announce, announce_blocked, cancel_instead_of_retry, ready


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
        Job.objects.waiting().filter(pk__in=ids).update(**ready(now))
        announce_blocked(
            set(
                Job.objects.filter(pk__in=ids, status=JobStatus.BLOCKED).values_list(
                    "flow_key", flat=True
                )
            )
        )
        return list(Job.objects.queued().filter(pk__in=ids, published_at=now))


def admit(flow_key: str, gate: str, limit: int, now: datetime) -> int:
    """Blocked jobs of ``flow_key`` given a place under its concurrency (flow/admission.py
    says which key, when): queued, and published once the transaction commits. Returns how
    many."""
    using = router.db_for_write(Job)
    with transaction.atomic(using=using):
        admitted = _sql.admit(flow_key, gate, limit, now, using)
        refs = [
            MessageRef(pk, attempts + 1, queue, priority, name)
            for pk, attempts, queue, priority, name in admitted
        ]
        if refs:
            transaction.on_commit(lambda: publish(refs), using=using, robust=True)
    return len(refs)


def ungate(flow_key: str, now: datetime) -> int:
    """The code no longer limits this key (flow/admission.py found its limit dropped): its
    blocked jobs are queued, and no longer count or wait, then or on a retry."""
    with transaction.atomic():
        ids = list(Job.objects.blocked(flow_key).select_for_update().values_list("pk", flat=True))
        Job.objects.blocked(flow_key).filter(pk__in=ids).update(
            status=JobStatus.QUEUED, published_at=now, gated=False
        )
        jobs = list(Job.objects.queued().filter(pk__in=ids, published_at=now))
        refs = [MessageRef.next_attempt(job) for job in jobs]
        if refs:
            transaction.on_commit(lambda: publish(refs), robust=True)
    return len(refs)


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
        if status == JobStatus.RETRYING and cancel_instead_of_retry(job, now):
            continue
        signal = signals.job_failed if status == JobStatus.RETRYING else signals.job_dead
        announce(signal, job=job, run=None, error=error)
    return changed


def next_due() -> datetime | None:
    """When the earliest waiting job is due (None: none waits): the dispatcher sleeps until
    then rather than a whole DISPATCH_INTERVAL. One read of ``bgjobs_job_due_idx``."""
    return Job.objects.waiting().order_by("run_after").values_list("run_after", flat=True).first()
