"""The transitions asked for from outside a run: cancel and retry (people, through the API,
the admin or a command, one job or a batch), and waking parked runs (an event they waited
for)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from django_bgjobs import signals
from django_bgjobs.celery.publisher import publish_on_commit
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job, JobStatus
from django_bgjobs.states.base import announce, announce_blocked, ready


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
                # Attempt numbers keep counting up so that each stays a unique fence value.
                max_attempts=F("attempts") + budget,
                run_after=None,
                finished_at=None,
                cancel_requested=False,
                error="",
                **ready(now),
            )
        jobs = list(
            Job.objects.filter(pk__in=list(names), status__in=(JobStatus.QUEUED, JobStatus.BLOCKED))
        )
        # Inside the transaction, as for any enqueue: what receivers write (a durable
        # function's failed step given a fresh budget) commits before a worker can claim.
        for job in jobs:
            announce(signals.job_enqueued, job=job)
        publish_on_commit([job for job in jobs if job.status == JobStatus.QUEUED])
        announce_blocked({job.flow_key for job in jobs if job.status == JobStatus.BLOCKED})
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


def wake(job_ids: Collection[UUID | str]) -> list[Job]:
    """Queue these waiting jobs now (a parked run whose event arrived) and publish them once
    the current transaction commits. Returns the jobs woken; others are left as they are."""

    now = timezone.now()
    with transaction.atomic():
        woken = Job.objects.waiting().filter(pk__in=list(job_ids))
        pks = list(woken.select_for_update().values_list("pk", flat=True))
        if not pks:
            return []
        Job.objects.waiting().filter(pk__in=pks).update(run_after=None, **ready(now))
        jobs = list(Job.objects.filter(pk__in=pks))
        publish_on_commit([job for job in jobs if job.status == JobStatus.QUEUED])
        announce_blocked({job.flow_key for job in jobs if job.status == JobStatus.BLOCKED})
    return jobs
