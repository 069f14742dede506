"""Enqueue: validate, INSERT in the caller's transaction, publish after commit (the outbox)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import datetime

from django.db import router, transaction
from django.db.models import Model
from django.utils import timezone

from django_bgjobs import _sql, signals, states
from django_bgjobs._payload import validate_arguments
from django_bgjobs.celery.publisher import publish_on_commit
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.flow import at_enqueue
from django_bgjobs.models import Job, JobStatus
from django_bgjobs.registry import JobCall


def _build(call: JobCall, now: datetime) -> Job:
    spec, options = call.spec, call.options
    validate_arguments(spec.name, spec.signature, call.args, call.kwargs)
    due = options.due_at(now)
    waits = due is not None and due > now
    return Job(
        name=spec.name,
        queue=options.queue or spec.queue,
        priority=spec.priority if options.priority is None else options.priority,
        args=list(call.args),
        kwargs=call.kwargs,
        status=JobStatus.SCHEDULED if waits else JobStatus.QUEUED,
        max_attempts=options.max_attempts or spec.max_attempts,
        idempotency_key=options.idempotency_key,
        created_at=now,
        run_after=due if waits else None,
        # Set now, in the same INSERT: if this process dies before publishing, the dispatcher
        # republishes after REPUBLISH_AFTER; if publishing fails, the broker module clears it.
        published_at=None if waits else now,
        owner_id=options.owner_id,
    )


def enqueue_many(calls: Iterable[JobCall]) -> list[Job]:
    """Enqueue several prepared calls (``job.prepare(...)``): one INSERT, one publish batch.

    Returns the jobs in order; for a call whose idempotency key already had a job within the
    window, that existing job.
    """
    return enqueue_calls(list(calls))


def enqueue_calls(calls: list[JobCall]) -> list[Job]:
    return insert_calls(calls)[0]


def insert_calls(
    calls: Sequence[JobCall], along: Sequence[Model] = ()
) -> tuple[list[Job], list[Job]]:
    """Enqueue ``calls``: the jobs in order (for a call whose idempotency key had a job, that
    job), and those created. ``along``: other new rows to insert with the jobs, in the same
    statement where the database allows (an event with the runs it starts)."""
    now = timezone.now()
    jobs = [_build(call, now) for call in calls]
    using = router.db_for_write(Job)
    locking: dict[str, str] = {}  # the keys whose rows the decisions need: key -> gate
    for call, job in zip(calls, jobs, strict=True):
        if (flow := call.spec.flow) is not None:
            at_enqueue.prepare(job, call, flow)
            if flow.locks_at_enqueue and job.flow_key is not None:
                locking[job.flow_key] = flow.gate
    # Flow control decides against the state of each key, its row locked until the jobs are
    # in: one transaction (no savepoint inside the caller's).
    with transaction.atomic(using=using, savepoint=False) if locking else nullcontext():
        at_enqueue.lock_keys(set(locking), locking, now, using)
        new: set[int] = set()
        batch: dict[str, Job] = {}
        for index, (call, job) in enumerate(zip(calls, jobs, strict=True)):
            if call.spec.flow is not None:
                jobs[index] = at_enqueue.apply(job, call.spec.flow, now, using, batch)
            if jobs[index] is job:
                new.add(index)
        plain = [job for i, job in enumerate(jobs) if i in new and job.idempotency_key is None]
        _sql.insert_rows([along, plain], using)
        created = list(plain)
        for index in sorted(new):
            job = jobs[index]
            if job.idempotency_key is not None:
                kept = _insert_keyed(job, now, using)
                if kept is job:
                    created.append(job)
                jobs[index] = kept
        publish_on_commit([job for job in created if job.status == JobStatus.QUEUED], using=using)
        states.announce_blocked(
            {job.flow_key for job in created if job.status == JobStatus.BLOCKED}
        )
        for job in created:
            states.announce(signals.job_enqueued, job=job)
    return jobs, created


def _insert_keyed(job: Job, now: datetime, using: str) -> Job:
    """Insert unless a job with this (name, key) exists within the window; race-free.

    The unique constraint decides between concurrent enqueues (ON CONFLICT DO NOTHING waits for
    the other transaction). A holder older than the window gives up its key, and we try again.
    """
    window_start = now - bgjobs_settings.IDEMPOTENCY_WINDOW
    same_key = Job.objects.using(using).filter(name=job.name, idempotency_key=job.idempotency_key)
    for _ in range(5):
        Job.objects.using(using).bulk_create([job], ignore_conflicts=True)
        holder = same_key.first()
        if holder is None:  # the holder's transaction rolled back, or its key was just released
            continue
        if holder.pk == job.pk:
            return job
        if holder.created_at >= window_start:
            return holder
        same_key.filter(pk=holder.pk).update(idempotency_key=None)
    raise RuntimeError(
        f"could not settle idempotency key {job.idempotency_key!r} for {job.name}: "
        "it keeps changing hands"
    )
