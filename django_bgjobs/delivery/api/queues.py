"""Queues: made by ``POST /v2/queues`` or by the first enqueue to a name. Delivery order and
parallelism are the engine's (``DeliveryQueue`` rows are what it reads); this is their upkeep."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from django_bgjobs.delivery.api.errors import InputError
from django_bgjobs.delivery.models import DeliveryQueue, Message

NAME = re.compile(r"[A-Za-z0-9._\-]{1,200}")
MAX_PARALLELISM = 10_000


class QueueError(InputError):
    pass


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise QueueError(f"invalid queue name {name!r} (letters, digits, '.', '_', '-')")
    return name


def upsert(data: Any) -> DeliveryQueue:
    """``{"queueName", "parallelism"?, "paused"?}``: make the queue or change it."""
    if not isinstance(data, dict):
        raise QueueError("the body must be a JSON object with 'queueName'")
    name = check_name(data.get("queueName"))
    parallelism = data.get("parallelism", 1)
    paused = data.get("paused", False)
    if type(parallelism) is not int or not 1 <= parallelism <= MAX_PARALLELISM:
        raise QueueError(f"'parallelism' must be a whole number from 1 to {MAX_PARALLELISM}")
    if not isinstance(paused, bool):
        raise QueueError("'paused' must be true or false")
    now = timezone.now()
    queue, created = DeliveryQueue.objects.get_or_create(
        name=name,
        defaults={
            "parallelism": parallelism,
            "paused": paused,
            "created_at": now,
            "updated_at": now,
        },
    )
    if not created:
        queue.parallelism, queue.paused, queue.updated_at = parallelism, paused, now
        queue.save(update_fields=["parallelism", "paused", "updated_at"])
    return queue


def set_paused(name: str, paused: bool) -> bool:
    return (
        DeliveryQueue.objects.filter(name=name).update(paused=paused, updated_at=timezone.now()) > 0
    )


def delete(name: str) -> bool:
    """Delete the queue and cancel the messages still waiting in it (admission never lets a
    message through a queue that does not exist, so they would wait for ever). Messages
    already in delivery finish."""
    from django_bgjobs.delivery import lifecycle

    with transaction.atomic():
        deleted, _ = DeliveryQueue.objects.filter(name=name).delete()
        if deleted:
            waiting = Message.objects.filter(
                queue=name, admitted_at__isnull=True, cancelled_at__isnull=True
            )
            lifecycle.cancel_many(list(waiting.values_list("pk", flat=True)))
    return deleted > 0


def lags(names: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue (not yet let through, not cancelled), one query."""
    rows = (
        Message.objects.filter(
            queue__in=list(names), admitted_at__isnull=True, cancelled_at__isnull=True
        )
        .values("queue")
        .annotate(n=Count("id"))
        .values_list("queue", "n")
    )
    return dict(rows)
