"""Delivering an event to the runs that wait for it: a ``wait_for_event`` step gets the event and
its run is woken; a run whose function has it in ``cancel_on`` is cancelled.

Delivery happens after the sender's transaction commits (and, for an event whose sender died
before that, in the dispatcher's pass), never inside it: a wait registered while the sender's
transaction was open is then either seen here, or sees the event in its own look back (it
looks after its row committed). Each match locks the run's job row first, the row a run takes
when it parks, so a run never parks on a wait that was matched while it was getting there
(``Steps`` checks again once parked).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from django_bgjobs import signals, states
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.functions import runs, specs
from django_bgjobs.functions.argument import run_event
from django_bgjobs.functions.keys import keys_of
from django_bgjobs.models import EventRecord, EventWait, Job, JobStatus, Step, StepStatus

logger = logging.getLogger("django_bgjobs.functions")

# An event its sender's process did not deliver (it died right after the commit) is delivered
# by the dispatcher once it is this old.
DELIVERY_GRACE = timedelta(seconds=2)


def deliver_events(ids: Collection[UUID | str]) -> int:
    """Deliver these events (those not delivered yet); returns how many runs they reached."""
    reached = 0
    for record in EventRecord.objects.filter(pk__in=list(ids), delivered_at__isnull=True):
        reached += deliver(record)
    return reached


def deliver(record: EventRecord) -> int:
    waits = list(
        EventWait.objects.filter(
            event_name=record.name,
            key__in=keys_of(record.data),
            # Only runs that started before the event: an older event is not theirs.
            job__created_at__lte=record.created_at,
        ).order_by("id")
    )
    reached = sum(_match(wait, record) for wait in waits)
    EventRecord.objects.filter(pk=record.pk, delivered_at__isnull=True).update(
        delivered_at=timezone.now()
    )
    return reached


def _match(wait: EventWait, record: EventRecord) -> bool:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=wait.job_id).first()
        if job is None or job.is_finished:  # dead or cancelled: its waits hold for a retry
            return False
        if not wait.step:  # cancel_on
            cancelled = states.cancel(job)
            if cancelled:
                logger.info("run %s of %s cancelled by event %s", job.pk, job.name, record.pk)
            return cancelled
        if not settle_wait(wait.job_id, wait.step, record):
            return False
        states.wake([job.pk])
        return True


def settle_wait(job_id: UUID | str, step: str, record: EventRecord | None) -> bool:
    """The step ``wait_for_event`` got ``record`` (None: it timed out). A conditional UPDATE: a
    step settled already (by another delivery, or by its own look back) is left as it is."""
    now = timezone.now()
    waiting = Step.objects.filter(job_id=job_id, name=step, status=StepStatus.WAITING)
    started = waiting.values_list("started_at", flat=True).first()
    if started is None:
        EventWait.objects.filter(job_id=job_id, step=step).delete()
        return False
    settled = waiting.update(
        status=StepStatus.SUCCEEDED,
        result=None if record is None else run_event(record.name, record.data, record.pk),
        matched_event=record,
        finished_at=now,
        duration_ms=max(int((now - started).total_seconds() * 1000), 0),
    )
    EventWait.objects.filter(job_id=job_id, step=step).delete()
    return bool(settled)


def deliver_stragglers() -> int:
    """The dispatcher's pass: events whose sender died between its commit and their delivery."""
    due = timezone.now() - DELIVERY_GRACE
    ids = list(
        EventRecord.objects.filter(delivered_at__isnull=True, created_at__lt=due)
        .order_by("created_at")
        .values_list("pk", flat=True)[: bgjobs_settings.DISPATCH_BATCH]
    )
    return deliver_events(ids) if ids else 0


def _run_ended(sender: Any, job: Job, **kwargs: Any) -> None:
    """A run ended: the run that invoked it (if any) is woken; when it succeeded, its waits go
    (a dead or cancelled run keeps them for a retry; pruning takes them with the run)."""
    if not specs.is_function(job.name):
        return
    if job.status == JobStatus.SUCCEEDED:
        EventWait.objects.filter(job_id=job.pk).delete()
    parents = list(
        Step.objects.filter(child_id=job.pk, status=StepStatus.WAITING).values_list(
            "job_id", flat=True
        )
    )
    if parents:
        states.wake(parents)


def connect() -> None:
    signals.job_enqueued.connect(runs.retried, dispatch_uid="django_bgjobs.functions.retried")
    for name in ("job_succeeded", "job_dead", "job_cancelled"):
        getattr(signals, name).connect(_run_ended, dispatch_uid=f"django_bgjobs.functions.{name}")
