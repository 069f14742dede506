"""Publishing messages: ``publish()`` from Python, ``send()`` / ``send_many()`` for the API.

A publish writes ``Message`` rows in the caller's transaction (one per URL-group endpoint),
deduplicated within ``DELIVERY_DEDUP_WINDOW``. A message with no queue and no flow-control key
gets its delivery job in the same transaction; the others wait for ``admission.py``, which is
asked to look at their gates once the transaction commits (and every dispatcher pass).

The request itself (``Publish``, ``Callback``, ``Flow``, ``PublishError``...) and its checks are
``publish_request.py``'s; they are imported from here, the documented path.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict, Unpack, overload

from django.db import router, transaction
from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.delivery import labels, redaction
from django_bgjobs.delivery.models import FlowControl, Message, Topic, WorkflowRun, WorkflowStep
from django_bgjobs.delivery.publish_request import (
    Callback,
    Flow,
    Publish,
    Published,
    PublishError,
    RunEnded,
    UnknownTopic,
    check_destination_url,
    check_request,
    is_url,
)
from django_bgjobs.delivery.workflow_steps import call_type

__all__ = [
    "Callback",
    "Flow",
    "Publish",
    "PublishError",
    "PublishOptions",
    "Published",
    "RunEnded",
    "UnknownTopic",
    "check_destination_url",
    "check_request",
    "copy_of",
    "is_url",
    "new_message_id",
    "publish",
    "send",
    "send_many",
]

_BASE58 = "".join(c for c in string.ascii_letters + string.digits if c not in "0OIl")


def new_message_id() -> str:
    return "msg_" + "".join(secrets.choice(_BASE58) for _ in range(28))


def _callback_json(callback: Callback | None) -> dict[str, Any] | None:
    if callback is None:
        return None
    data = asdict(callback)
    data["headers"] = dict(callback.headers)
    return data


def _dedup_key(request: Publish, url: str) -> str | None:
    if request.deduplication_id:
        raw = b"id\0" + request.deduplication_id.encode() + b"\0" + url.encode()
    elif request.content_based_deduplication:
        # QStash hashes the destination, the body, Content-Type and the forwarded headers.
        headers = sorted((k.lower(), v) for k, v in request.headers.items())
        raw = b"content\0" + url.encode() + b"\0" + repr(headers).encode() + b"\0" + request.body
    else:
        return None
    return hashlib.sha256(raw).hexdigest()


def _targets(request: Publish, using: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """(url, topic, endpoint name, group headers) for each message the request makes."""
    if is_url(request.destination):
        check_destination_url(request.destination)
        return [(request.destination, "", "", {})]
    topic = Topic.objects.using(using).filter(name=request.destination).first()
    if topic is None:
        raise UnknownTopic(
            f"{request.destination!r} is neither a URL (http:// or https://) nor a URL group; "
            "create the group first (admin, or POST /v2/topics/{name}/endpoints)"
        )
    endpoints = list(topic.endpoints.all())
    if not endpoints:
        raise PublishError(
            f"URL group {topic.name!r} has no endpoints: add some first (the "
            "admin's URL groups, or POST /v2/topics/{name}/endpoints)"
        )
    return [(e.url, topic.name, e.name, dict(topic.headers)) for e in endpoints]


def _gate_rows(request: Publish, now: datetime, using: str) -> None:
    """Make the gate rows a request names, the first time. New limits for an existing key are
    written after commit, in a short transaction of their own: an admission takes the row
    first, and must not wait for the publisher's transaction."""
    from django_bgjobs.delivery.models import DeliveryQueue

    if request.queue:
        # Queues are made by the first message enqueued to them (parallelism 1), as QStash's.
        DeliveryQueue.objects.using(using).get_or_create(
            name=request.queue, defaults={"created_at": now, "updated_at": now}
        )
    flow = request.flow
    if flow is None:
        return
    limits = {"parallelism": flow.parallelism, "rate": flow.rate, "period": flow.period}
    row, made = FlowControl.objects.using(using).get_or_create(
        key=flow.key, defaults={**limits, "updated_at": now}
    )
    if made or (flow.parallelism is None and flow.rate is None):  # a key alone sets nothing
        return
    if any(getattr(row, name) != value for name, value in limits.items()):
        transaction.on_commit(lambda: _set_limits(flow, using), using=using, robust=True)


def _workflow_run(request: Publish, now: datetime, using: str) -> None:
    """The run a workflow step names exists from its first message (the trigger); a run that
    ended takes no more (QStash's 400, on which the app's SDK stops quietly). Its row is
    locked until commit, so that its steps are written in the order they are published."""
    WorkflowRun.objects.using(using).get_or_create(
        id=request.workflow_run_id, defaults={"url": request.destination, "created_at": now}
    )
    run = WorkflowRun.objects.using(using).select_for_update().get(pk=request.workflow_run_id)
    if run.ended_at is not None:
        raise RunEnded(f"workflow run {run.pk} has ended: it takes no more steps")


def _workflow_step(message: Message) -> WorkflowStep:
    return WorkflowStep(
        run_id=message.workflow_run_id,
        message_id=message.pk,
        body=bytes(message.body),
        call_type=call_type(message.headers),
        created_at=message.created_at,
    )


def _set_limits(flow: Flow, using: str) -> None:
    """A publish's limits for its key, but not the parts an operator pinned (the API's ``pin``):
    the condition is in the UPDATE, so a pin that commits first wins."""
    keyed = FlowControl.objects.using(using).filter(key=flow.key)
    now = timezone.now()
    keyed.filter(pinned_parallelism=False).update(parallelism=flow.parallelism, updated_at=now)
    keyed.filter(pinned_rate=False).update(rate=flow.rate, period=flow.period, updated_at=now)


def _build(
    request: Publish,
    url: str,
    topic: str,
    endpoint: str,
    group_headers: dict[str, str],
    now: datetime,
) -> Message:
    due = request.not_before
    if due is None and request.delay:
        due = now + timedelta(seconds=request.delay)
    headers = {**group_headers, **request.headers}
    if topic:
        headers["Upstash-Topic-Name"] = topic
    if request.schedule_id:
        headers["Upstash-Schedule-Id"] = request.schedule_id
    if request.caller_ip:
        headers["Upstash-Caller-Ip"] = request.caller_ip
    return Message(
        id=new_message_id(),
        url=url,
        method=request.method.upper(),
        body=request.body,
        headers=headers,
        retries=request.retries,
        retry_delay=request.retry_delay or "",
        timeout=request.timeout,
        not_before=due,
        signature=request.signature,
        callback=_callback_json(request.callback),
        failure_callback=_callback_json(request.failure_callback),
        topic=topic,
        endpoint_name=endpoint,
        queue=request.queue or "",
        flow_key=request.flow.key if request.flow else "",
        schedule_id=request.schedule_id,
        label=request.label,
        redact=list(request.redact),
        caller_ip=request.caller_ip,
        workflow_run_id=request.workflow_run_id,
        dedup_key=_dedup_key(request, url),
        created_at=now,
    )


def _insert(message: Message, now: datetime, using: str) -> tuple[Message, bool]:
    """Insert the message, or find the one that holds its deduplication key within the window
    (race-free: the unique constraint decides between concurrent publishes). Returns the
    message kept and whether it is a duplicate."""
    if message.dedup_key is None:
        message.save(using=using, force_insert=True)
        return message, False
    window_start = now - bgjobs_settings.DELIVERY_DEDUP_WINDOW
    same_key = Message.objects.using(using).filter(dedup_key=message.dedup_key)
    for _ in range(5):
        Message.objects.using(using).bulk_create([message], ignore_conflicts=True)
        holder = same_key.first()
        if holder is None:  # its transaction rolled back, or it just gave up the key
            continue
        if holder.pk == message.pk:
            return message, False
        if holder.created_at >= window_start:
            return holder, True
        same_key.filter(pk=holder.pk).update(dedup_key=None)  # out of the window
    raise PublishError("the deduplication id keeps changing hands; try again")


def send_many(requests: Sequence[Publish]) -> list[list[Published]]:
    """Publish several requests in one transaction (``/v2/batch``). Each request gives one
    result per message it makes: one for a URL, one per endpoint for a URL group."""
    from django_bgjobs.delivery import admission

    for request in requests:
        check_request(request)
    using = router.db_for_write(Message)
    now = timezone.now()
    with transaction.atomic(using=using):
        built: list[list[Message]] = []
        for request in requests:
            _gate_rows(request, now, using)
            if request.workflow_run_id:
                _workflow_run(request, now, using)
            built.append(
                [
                    _build(request, url, topic, endpoint, group_headers, now)
                    for url, topic, endpoint, group_headers in _targets(request, using)
                ]
            )
        # A microsecond apart, in the order given: a batch keeps its order in a FIFO queue.
        for offset, message in enumerate(m for made in built for m in made):
            message.created_at = now + timedelta(microseconds=offset)
        # The common case, no deduplication and no gate: the jobs first, then the messages
        # already pointing at them, each in one INSERT.
        plain = [
            m for made in built for m in made if m.dedup_key is None and not admission.is_gated(m)
        ]
        admission.start(plain, now, using)
        Message.objects.using(using).bulk_create(plain)
        fresh: list[Message] = []
        results: list[list[Published]] = []
        steps: list[WorkflowStep] = []
        for made in built:
            row = []
            for message in made:
                duplicate = False
                if message.job_id is None:
                    message, duplicate = _insert(message, now, using)
                    if not duplicate:
                        fresh.append(message)
                if message.workflow_run_id and not duplicate:
                    steps.append(_workflow_step(message))
                row.append(Published(message.pk, message.url, duplicate))
            results.append(row)
        WorkflowStep.objects.using(using).bulk_create(steps)
        admission.admit_new(fresh, now, using)
    return results


def send(request: Publish) -> list[Published]:
    """Publish one request: one result for a URL, one per endpoint for a URL group."""
    return send_many([request])[0]


def _joined(fields: str | Sequence[str]) -> str:
    return fields if isinstance(fields, str) else ",".join(fields)


def _seconds(value: timedelta | float | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


class PublishOptions(TypedDict, total=False):
    """``publish()``'s options; see the README's "Delivering to URLs" for each."""

    json: Any
    body: bytes | str | None
    headers: Mapping[str, str] | None
    method: str
    retries: int
    retry_delay: str | None
    delay: timedelta | float | None
    not_before: datetime | None
    timeout: timedelta | float | None
    deduplication_id: str | None
    content_based_deduplication: bool
    callback: str | Callback | None
    failure_callback: str | Callback | None
    queue: str | None
    flow_control: Flow | None
    label: str | Sequence[str]
    redact: str | Sequence[str]
    signature: Literal["qstash", "standard"]


@overload
def publish(url: str, *, topic: None = None, **options: Unpack[PublishOptions]) -> str: ...
@overload
def publish(url: None = None, *, topic: str, **options: Unpack[PublishOptions]) -> list[str]: ...


def publish(
    url: str | None = None, *, topic: str | None = None, **options: Unpack[PublishOptions]
) -> str | list[str]:
    """Deliver an HTTP request to ``url`` (or to every endpoint of the URL group ``topic``),
    signed, retried, in the background. Returns the message id (a list for a group).

    Written in the current transaction: if it rolls back, nothing is sent. ``json=`` encodes
    the body and sets ``Content-Type: application/json``; ``body=`` is sent as it is.
    """
    import json as json_module

    if (url is None) == (topic is None):
        raise PublishError("give url= or topic=, not both")
    unknown = set(options) - set(PublishOptions.__annotations__)
    if unknown:
        raise TypeError(f"publish() got unexpected options {sorted(unknown)}")
    body = options.get("body")
    if "json" in options and body is not None:
        raise PublishError("give json= or body=, not both")
    headers = dict(options.get("headers") or {})
    if "json" in options:
        payload = json_module.dumps(options["json"], separators=(",", ":")).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    else:
        payload = body.encode() if isinstance(body, str) else (body or b"")
    callback, failure = options.get("callback"), options.get("failure_callback")
    request = Publish(
        destination=url or topic or "",
        body=payload,
        headers=headers,
        method=options.get("method", "POST"),
        retries=options.get("retries", 3),
        retry_delay=options.get("retry_delay"),
        delay=_seconds(options.get("delay")),
        not_before=options.get("not_before"),
        timeout=_seconds(options.get("timeout")),
        deduplication_id=options.get("deduplication_id"),
        content_based_deduplication=options.get("content_based_deduplication", False),
        callback=Callback(callback) if isinstance(callback, str) else callback,
        failure_callback=Callback(failure) if isinstance(failure, str) else failure,
        queue=options.get("queue"),
        flow=options.get("flow_control"),
        label=labels.joined(options.get("label", "")),
        redact=tuple(redaction.parse(_joined(options.get("redact", ())))),
        signature=options.get("signature", "qstash"),
    )
    if topic is None and not is_url(request.destination):
        raise PublishError(f"url {url!r} must start with http:// or https://")
    ids = [item.message_id for item in send(request)]
    return ids if topic is not None else ids[0]


def copy_of(message: Message, **overrides: Any) -> Publish:
    """A publish request for the same delivery again (a retry from the dead-letter queue)."""
    callback = Callback(**message.callback) if message.callback else None
    failure = Callback(**message.failure_callback) if message.failure_callback else None
    headers = {
        k: v
        for k, v in message.headers.items()
        if k not in ("Upstash-Topic-Name", "Upstash-Schedule-Id", "Upstash-Caller-Ip")
    }
    flow = None
    if message.flow_key:
        flow = Flow(message.flow_key)
    request = Publish(
        destination=message.url,
        body=bytes(message.body),
        headers=headers,
        method=message.method,
        retries=message.retries,
        retry_delay=message.retry_delay or None,
        timeout=message.timeout,
        callback=callback,
        failure_callback=failure,
        queue=message.queue or None,
        flow=flow,
        label=message.label,
        redact=tuple(message.redact),
        signature=message.signature,  # type: ignore[arg-type]
        schedule_id=message.schedule_id,
        workflow_run_id=message.workflow_run_id,
    )
    return replace(request, **overrides)
