"""What happens to a message after it is published: its state, cancelling it, the dead-letter
queue (DLQ). The delivery job's status is the message's state; nothing here keeps a copy."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from django_bgjobs import states
from django_bgjobs.delivery import callbacks
from django_bgjobs.delivery.models import DeliveryAttempt, Message
from django_bgjobs.delivery.publish import Published, copy_of, send
from django_bgjobs.models import UNFINISHED, JobStatus

# The job's status, as QStash names a message's state.
_STATES = {
    JobStatus.SCHEDULED: "CREATED",
    JobStatus.QUEUED: "ACTIVE",
    JobStatus.RUNNING: "ACTIVE",
    JobStatus.RETRYING: "RETRY",
    JobStatus.SUCCEEDED: "DELIVERED",
    JobStatus.DEAD: "FAILED",
    JobStatus.CANCELLED: "CANCELLED",
}


def message_state(message: Message) -> str:
    """CREATED (waiting for its time, its queue or its flow-control key), ACTIVE, RETRY,
    DELIVERED, FAILED (dead-lettered) or CANCELLED."""
    if message.cancelled_at is not None and message.job_id is None:
        return "CANCELLED"
    if message.job_id is None:
        return "CREATED" if message.admitted_at is None else "DELIVERED"
    job = message.job
    assert job is not None
    return _STATES[JobStatus(job.status)]


def cancel(message_id: str) -> bool:
    """Cancel a message that is not finished: a waiting one never starts; one with a job has
    its job cancelled (an attempt in flight finishes, and no other follows)."""
    message = Message.objects.filter(pk=message_id).select_related("job").first()
    if message is None:
        return False
    now = timezone.now()
    if message.job_id is None:
        if Message.objects.filter(
            pk=message_id, admitted_at__isnull=True, cancelled_at__isnull=True
        ).update(cancelled_at=now):
            return True
        # Admitted (or cancelled) since it was read: cancel what it is now.
        message = Message.objects.filter(pk=message_id).select_related("job").first()
        if message is None or message.job is None:
            return False
    assert message.job is not None
    if not states.cancel(message.job):
        return False
    Message.objects.filter(pk=message_id).update(cancelled_at=now)
    return True


def reopen(message: Message) -> None:
    """Its dead or cancelled delivery job was retried: out of the DLQ, no longer cancelled, and
    holding its gate's place again while it is delivered."""
    Message.objects.filter(pk=message.pk).update(
        dlq_id=None, dlq_removed_at=None, cancelled_at=None, settled_at=None
    )
    message.dlq_id = message.dlq_removed_at = message.cancelled_at = message.settled_at = None


def cancel_many(message_ids: Collection[str]) -> int:
    return sum(cancel(message_id) for message_id in message_ids)


def dead_letters() -> QuerySet[Message]:
    """The DLQ: messages whose delivery failed for good, not yet retried or deleted."""
    return Message.objects.filter(dlq_id__isnull=False, dlq_removed_at__isnull=True)


def dead_letter(message: Message) -> str | None:
    """Give a message whose delivery job died its DLQ id, and send its failure callback, once
    (the conditional UPDATE decides between the job_dead receiver and the sweep)."""
    for n in range(50):
        dlq_id = f"{int(time.time() * 1000)}-{n}"
        try:
            with transaction.atomic():
                if not Message.objects.filter(pk=message.pk, dlq_id__isnull=True).update(
                    dlq_id=dlq_id
                ):
                    return None
                last = DeliveryAttempt.objects.filter(message=message).order_by("-id").first()
                callbacks.send(message, "failure_callback", last, dlq_id)
            return dlq_id
        except IntegrityError:  # another message died in the same millisecond
            continue
    raise RuntimeError(f"no free DLQ id for message {message.pk}")


def retry_dead(dlq_id: str, overrides: Mapping[str, Any] | None = None) -> Published | None:
    """Publish a dead-lettered message again (a new message id), with ``overrides`` (Publish
    fields such as ``retries``), and take it out of the DLQ. None: no such DLQ entry."""
    with transaction.atomic():
        message = dead_letters().select_for_update().filter(dlq_id=dlq_id).first()
        if message is None:
            return None
        [published] = send(copy_of(message, **dict(overrides or {})))
        Message.objects.filter(pk=message.pk).update(dlq_removed_at=timezone.now())
    return published


def delete_dead(dlq_ids: Collection[str]) -> int:
    """Take entries out of the DLQ (the message rows stay, for their history)."""
    return dead_letters().filter(dlq_id__in=list(dlq_ids)).update(dlq_removed_at=timezone.now())


def settle(message: Message, dead: bool) -> None:
    """Its delivery job finished: dead-letter the message if the job died (unless the job did
    it already), and take a gated message out of the in-flight index."""
    if dead and message.dlq_id is None:
        dead_letter(message)
    if message.queue or message.flow_key:
        Message.objects.filter(pk=message.pk, settled_at__isnull=True).update(
            settled_at=timezone.now()
        )


def in_flight() -> QuerySet[Message]:
    """Gated messages admitted and not seen finished: the partial index's rows. Ungated ones
    are never in it (they hold no place), and their end needs no settling."""
    return Message.objects.filter(admitted_at__isnull=False, settled_at__isnull=True).exclude(
        queue="", flow_key=""
    )


_straggler_cursor = [""]  # where this process's passes are in the in-flight index


def settle_stragglers(limit: int = 500) -> int:
    """Messages whose job finished while no receiver ran (the process stopped in between, or
    the job was cancelled or pruned outside a worker): settle them now. Part of the dispatcher's
    pass; it reads the next ``limit`` rows of the in-flight index, so all of them in turn."""
    page = list(
        in_flight()
        .filter(pk__gt=_straggler_cursor[0])
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    _straggler_cursor[0] = page[-1] if len(page) == limit else ""
    found = list(
        Message.objects.filter(pk__in=page)
        .exclude(job__status__in=UNFINISHED)
        .select_related("job")
        .order_by()
    )
    for message in found:
        settle(message, dead=message.job is not None and message.job.status == JobStatus.DEAD)
    return len(found)
