"""Which waiting messages may start: the gates of queues and flow-control keys.

A message with no queue and no flow-control key starts at once: its delivery job is written
with it. The others wait (``admitted_at`` NULL, no job) until their gate has room:

* a queue lets ``parallelism`` of its messages be in delivery at once (retries included: a
  message holds its place until it is delivered, dead or cancelled), in FIFO order;
* a flow-control key lets ``parallelism`` be in delivery and ``rate`` start per ``period``.

Room is counted from the rows (messages admitted whose job has not finished), never kept in a
process, so the limits hold across every worker. Admission takes the gate's row first (an
UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so two admissions of one gate
never both see the same free place. It runs when a publish commits, when a gated message's
delivery finishes (``receivers.py``) and on every dispatcher pass (``sweep``), which also opens
rate windows as time passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.decorators import JobFunction
from django_bgjobs.delivery.models import DELIVER_JOB, DeliveryQueue, FlowControl, Message
from django_bgjobs.models import UNFINISHED, JobStatus
from django_bgjobs.registry import registry

BATCH = 500  # messages admitted per gate per pass
Gate = tuple[str, str]  # (queue, flow key); either may be ""


def job_queue() -> str:
    """The queue delivery jobs (and the tasks that fire message schedules) run on."""
    return str(bgjobs_settings.DELIVERY_JOB_QUEUE or bgjobs_settings.DEFAULT_QUEUE)


def is_gated(message: Message) -> bool:
    return bool(message.queue or message.flow_key)


def _deliver_job() -> JobFunction[..., Any]:
    """The delivery job, found by its name: deliver.py imports this module (through callbacks
    and publish), so this module does not import it. DeliveryConfig.ready() imports it."""
    spec = registry.get(DELIVER_JOB)
    if spec is None:
        raise RuntimeError(
            f"no job is named {DELIVER_JOB!r}: add 'django_bgjobs.delivery' to INSTALLED_APPS"
        )
    return JobFunction(spec)


def start(messages: list[Message], now: datetime, using: str) -> int:
    """Write the delivery jobs of ``messages`` (in the current transaction) and point each
    message at its job. Unsaved messages are only given their job; saved ones are updated,
    unless they were cancelled (or admitted) meanwhile: their job is then cancelled at once.
    Returns how many started."""
    from django_bgjobs import states
    from django_bgjobs.enqueue import enqueue_many

    if not messages:
        return 0
    queue = job_queue()
    deliver_message = _deliver_job()
    calls = []
    for message in messages:
        due = message.not_before if message.not_before and message.not_before > now else None
        calls.append(
            deliver_message.using(
                max_attempts=message.retries + 1,
                run_after=due,
                queue=queue,
            ).prepare(message.pk, gated=is_gated(message))
        )
    jobs = enqueue_many(calls)
    started = 0
    for message, job in zip(messages, jobs, strict=True):
        if not message._state.adding and not Message.objects.using(using).filter(
            pk=message.pk,
            admitted_at__isnull=True,
            cancelled_at__isnull=True,
        ).update(job=job, admitted_at=now):
            states.cancel(job)  # cancelled while it was being admitted: it never runs
            continue
        message.job = job
        message.admitted_at = now
        started += 1
    return started


def admit_new(messages: list[Message], now: datetime, using: str) -> None:
    """Just published (saved, in the publishing transaction): the ungated ones start now; the
    gates of the others are looked at once the transaction commits."""
    start([m for m in messages if not is_gated(m) and m.job_id is None], now, using)
    gates = {(m.queue, m.flow_key) for m in messages if is_gated(m)}
    if gates:
        # robust: the messages are committed; a failed admission (a deadlock, SQLite busy) is
        # the dispatcher's next pass to retry, not an error for the publisher.
        transaction.on_commit(lambda: admit_gates(gates), using=using, robust=True)


def _in_flight(messages: QuerySet[Message]) -> int:
    return (
        messages.filter(
            admitted_at__isnull=False, settled_at__isnull=True, job__status__in=UNFINISHED
        )
        .exclude(queue="", flow_key="")
        .count()
    )


def _waiting(using: str, now: datetime) -> QuerySet[Message]:
    """Messages waiting for their gate and due: a delayed message is admitted when its time
    comes (it neither holds a place nor spends the rate while it waits)."""
    return Message.objects.using(using).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now),
        admitted_at__isnull=True,
        cancelled_at__isnull=True,
    )


def _flow_room(key: str, now: datetime, using: str) -> int:
    """Free places under a flow-control key; its row must already be locked."""
    flow = FlowControl.objects.using(using).filter(key=key).first()
    if flow is None:
        return BATCH
    if flow.paused:
        return 0
    room = BATCH
    of_key = Message.objects.using(using).filter(flow_key=key)
    if flow.parallelism is not None:
        room = min(room, flow.parallelism - _in_flight(of_key))
    if flow.rate is not None:
        since = flow.rate_counted_since(now)
        room = min(room, flow.rate - of_key.filter(admitted_at__gt=since).count())
    return max(room, 0)


def in_flight_anywhere() -> int:
    """Messages in delivery now, gated or not (the API's global parallelism count)."""
    return Message.objects.filter(job__status=JobStatus.RUNNING).count()


def waiting_per_key() -> dict[str, int]:
    """Messages waiting for their flow-control key, per key (one query)."""
    return dict(
        _not_admitted(Message.objects.exclude(flow_key=""))
        .values_list("flow_key")
        .annotate(waiting=Count("pk"))
        .values_list("flow_key", "waiting")
    )


def _not_admitted(messages: QuerySet[Message]) -> QuerySet[Message]:
    return messages.filter(admitted_at__isnull=True, cancelled_at__isnull=True)


def key_figures(flow: FlowControl, now: datetime) -> tuple[int, int, int]:
    """A key's messages waiting for it, in delivery, and let through in the last period (what
    its rate counts), read as admission counts them."""
    of_key = Message.objects.filter(flow_key=flow.key)
    waiting = _not_admitted(of_key).count()
    started = of_key.filter(admitted_at__gt=flow.rate_counted_since(now)).count()
    return waiting, _in_flight(of_key), started


def _lock(
    model: type[DeliveryQueue] | type[FlowControl], field: str, values: Iterable[str], using: str
) -> None:
    # Sorted, so two admissions needing the same rows take them in the same order.
    for value in sorted(set(values)):
        model.objects.using(using).filter(**{field: value}).update(updated_at=F("updated_at"))


def admit_queue(name: str, now: datetime | None = None) -> int:
    """Start the next messages of queue ``name`` that fit, oldest first. Returns how many."""
    using = router.db_for_write(Message)
    now = now or timezone.now()
    with transaction.atomic(using=using):
        _lock(DeliveryQueue, "name", [name], using)
        queue = DeliveryQueue.objects.using(using).filter(name=name).first()
        if queue is None or queue.paused:
            return 0
        room = queue.parallelism - _in_flight(Message.objects.using(using).filter(queue=name))
        if room <= 0:
            return 0
        candidates = list(
            _waiting(using, now).filter(queue=name).order_by("created_at", "pk")[: min(room, BATCH)]
        )
        keys = {m.flow_key for m in candidates if m.flow_key}
        _lock(FlowControl, "key", keys, using)
        flow_room = {key: _flow_room(key, now, using) for key in keys}
        admitted = []
        for message in candidates:  # FIFO: the first that must wait holds back the rest
            if message.flow_key:
                if flow_room[message.flow_key] <= 0:
                    break
                flow_room[message.flow_key] -= 1
            admitted.append(message)
        return start(admitted, now, using)


def admit_flow(key: str, now: datetime | None = None) -> int:
    """Start the next messages of flow-control key ``key`` (those in no queue) that fit."""
    using = router.db_for_write(Message)
    now = now or timezone.now()
    with transaction.atomic(using=using):
        _lock(FlowControl, "key", [key], using)
        room = _flow_room(key, now, using)
        if room <= 0:
            return 0
        admitted = list(
            _waiting(using, now).filter(flow_key=key, queue="").order_by("created_at", "pk")[:room]
        )
        return start(admitted, now, using)


def admit_gates(gates: Iterable[Gate]) -> int:
    """Look at each gate: a queue (with whatever flow keys its messages have) or a key."""
    queues = {queue for queue, _ in gates if queue}
    keys = {key for queue, key in gates if key and not queue}
    admitted = sum(admit_queue(name) for name in sorted(queues))
    # A key shared by queued and unqueued messages: room freed by one side serves both.
    keys |= {key for queue, key in gates if key and queue}
    return admitted + sum(admit_flow(key) for key in sorted(keys))


# Where this process's passes are in the gate tables: each pass looks at the next ``limit``
# gates, so every gate is visited however many there are.
_cursors: dict[str, str] = {"queue": "", "flow": ""}


def _next_gates(
    model: type[DeliveryQueue] | type[FlowControl], field: str, kind: str, limit: int, using: str
) -> list[str]:
    names = model.objects.using(using).order_by(field).values_list(field, flat=True)
    page = list(names.filter(**{f"{field}__gt": _cursors[kind]})[:limit])
    if len(page) < limit:  # wrap around
        page += [n for n in names[: limit - len(page)] if n not in page]
    if page:
        _cursors[kind] = page[-1] if len(page) == limit else ""
    return page


def sweep(limit: int = 100) -> int:
    """The dispatcher's pass over the next ``limit`` queues and flow-control keys: admit what
    fits behind those that have due waiting messages (resumed queues, raised limits and rate
    windows that opened are seen here). Two indexed reads when nothing waits."""
    using = router.db_for_write(Message)
    now = timezone.now()
    admitted = 0
    queues = _next_gates(DeliveryQueue, "name", "queue", limit, using)
    waiting = _waiting(using, now).order_by()
    for name in sorted(set(waiting.filter(queue__in=queues).values_list("queue", flat=True))):
        admitted += admit_queue(name, now)
    keys = _next_gates(FlowControl, "key", "flow", limit, using)
    for key in sorted(
        set(waiting.filter(queue="", flow_key__in=keys).values_list("flow_key", flat=True))
    ):
        admitted += admit_flow(key, now)
    return admitted


# Rate-limited keys the dispatcher's hint looks at, at most: beyond them, whole passes
# (DISPATCH_INTERVAL) open their windows, as before.
HINT_KEYS = 20


def next_due() -> datetime | None:
    """When a waiting message may next be let through because of time alone: a delayed gated
    message's ``not_before``, or the moment a rate-limited key's oldest start leaves its
    window (the dispatcher wakes then for a pass: extensions.register_next_due)."""
    now = timezone.now()
    waiting = Message.objects.filter(admitted_at__isnull=True, cancelled_at__isnull=True)
    found = [
        waiting.filter(not_before__gt=now)
        .order_by("not_before")
        .values_list("not_before", flat=True)
        .first()
    ]
    keys = set(
        waiting.filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .exclude(flow_key="")
        .values_list("flow_key", flat=True)
        .order_by("flow_key")
        .distinct()[:HINT_KEYS]
    )
    for flow in FlowControl.objects.filter(key__in=keys, rate__isnull=False, paused=False):
        oldest = (
            Message.objects.filter(flow_key=flow.key, admitted_at__gt=flow.rate_counted_since(now))
            .order_by("admitted_at")
            .values_list("admitted_at", flat=True)
            .first()
        )
        if oldest is not None:
            found.append(oldest + timedelta(seconds=flow.period))
    return min((when for when in found if when is not None), default=None)
