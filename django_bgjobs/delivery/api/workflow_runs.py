"""Upstash Workflow runs: an unchanged ``@upstash/workflow`` app (``serve``, ``trigger``,
``context.run``, ``context.sleep``, ``context.waitForEvent`` with ``notify``, ``cancel``) runs
against this server.

The app's SDK does the work: its endpoint runs one step and publishes the next message to
itself, with ``Upstash-Workflow-*`` headers (delivered with the message, as QStash does). The
server keeps what QStash keeps for it:

* **A run's steps** are the messages that name it (``Upstash-Workflow-RunId``, the column
  ``Message.workflow_run_id``), in the order they were published; the first is the trigger's.
  They are delivered with an empty body, and the SDK reads the steps from
  ``GET /v2/workflows/runs/{id}`` up to the message it got (its ``LazyFetch``).
* **Waits**: ``POST /v2/wait/{eventId}`` keeps the step to send back; ``POST /v2/notify/
  {eventId}`` publishes it to each waiting run with the event's data; past its deadline the
  dispatcher's sweep publishes it to the timeout URL with ``waitTimeout``.
* **The end**: the SDK's ``DELETE /v2/workflows/runs/{id}``; with ``cancel=true`` the run's
  pending steps and waits are cancelled too. A step published to an ended run is refused.

Durable functions (``@function``) are this project's own engine for the same ideas, but here
the steps' code runs in the app's endpoint, not in a worker: the server only carries them.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import APIException

from django_bgjobs.delivery import lifecycle
from django_bgjobs.delivery.api import headers as header_parser
from django_bgjobs.delivery.api.durations import parse_duration
from django_bgjobs.delivery.api.errors import InputError
from django_bgjobs.delivery.models import Message, WorkflowRun, WorkflowWaiter
from django_bgjobs.delivery.publish import Publish, PublishError, check_destination_url, send

logger = logging.getLogger("django_bgjobs.delivery")

# The headers of a wait request that become the notified step's message (the others are the
# wait request's own: its content type, the SDK's telemetry).
_KEPT = (
    "upstash-workflow-",
    "upstash-forward-",
    "upstash-retries",
    "upstash-retry-delay",
    "upstash-failure-callback",
    "upstash-flow-control-",
)


def raw_steps(run_id: str) -> list[dict[str, Any]] | None:
    """The steps as the SDK parses them (``processRawSteps``); None when the run is unknown or
    ended (the SDK then knows it is over). Their bodies as published: the SDK runs on them."""
    run = WorkflowRun.objects.filter(pk=run_id, ended_at__isnull=True).first()
    if run is None:
        return None
    return [
        {
            "messageId": step.message_id,
            "body": base64.b64encode(bytes(step.body)).decode(),
            "callType": step.call_type,
        }
        for step in run.steps.order_by("id")
    ]


def end(run_id: str, *, cancel: bool, result: str) -> bool:
    """The run is over (its SDK says so when its last step returns); ``cancel`` also cancels
    its pending steps and waits. False when there is no such run."""
    now = timezone.now()
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return False
        if run.ended_at is None:
            run.ended_at, run.cancelled, run.result = now, cancel, result
            run.save(update_fields=["ended_at", "cancelled", "result"])
        run.waiters.filter(ended_at__isnull=True).update(ended_at=now)  # nothing to resume
    if cancel:
        pending = Message.objects.filter(workflow_run_id=run_id, cancelled_at__isnull=True)
        lifecycle.cancel_many(list(pending.values_list("pk", flat=True)))
    return True


def wait(
    run_id: str, event_id: str, request: Mapping[str, Any], headers: Mapping[str, str]
) -> WorkflowWaiter:
    """Keep a run's ``waitForEvent`` (the SDK's ``WaitRequest``) until it is notified or its
    timeout passes."""
    run = WorkflowRun.objects.filter(pk=run_id).first()
    if run is None or run.ended_at is not None:
        raise PublishError(f"workflow run {run_id} is not running")
    if not isinstance(request.get("url"), str) or not isinstance(request.get("step"), dict):
        raise PublishError("a wait needs 'url' and 'step'")
    timeout_headers = request.get("timeoutHeaders") or {}
    if not isinstance(timeout_headers, dict):
        raise PublishError("'timeoutHeaders' must be an object of header lists")
    kept = {k: v for k, v in headers.items() if k.lower().startswith(_KEPT)}
    url, timeout_url = request["url"], str(request.get("timeoutUrl") or request["url"])
    # Checked now, as a publish is: a wait that could not be sent back is refused here, not
    # found out when its event comes or its deadline passes.
    for destination in (url, timeout_url):
        check_destination_url(destination)
    header_parser.parse(kept)
    header_parser.parse(_first_values(timeout_headers))
    now = timezone.now()
    timeout = parse_duration(str(request.get("timeout") or "7d"))
    return WorkflowWaiter.objects.create(
        run=run,
        event_id=event_id,
        url=url,
        headers=kept,
        step=request["step"],
        timeout_url=timeout_url,
        timeout_headers=timeout_headers,
        deadline=now + timedelta(seconds=timeout),
        created_at=now,
    )


def _first_values(headers: Mapping[str, Any]) -> dict[str, str]:
    """``{name: [value]}`` (the SDK's timeoutHeaders) as ``{name: value}``."""
    return {
        name: str(values[0] if isinstance(values, list) and values else values)
        for name, values in headers.items()
    }


def notify(event_id: str, data: bytes, run_id: str | None = None) -> list[dict[str, Any]]:
    """Send the event to every run waiting for it (of ``run_id`` only, when given): each gets
    its wait step back with the data. QStash's answer: one entry per waiter."""
    answered = []
    waiters = WorkflowWaiter.objects.filter(event_id=event_id, ended_at__isnull=True)
    if run_id is not None:
        waiters = waiters.filter(run_id=run_id)
    for waiter in waiters.order_by("created_at"):
        step = {**waiter.step, "out": base64.b64encode(data).decode(), "waitTimeout": False}
        message_id = _resume(waiter, waiter.url, waiter.headers, step)
        if message_id is not None:
            answered.append({"waiter": _waiter_json(waiter), "messageId": message_id, "error": ""})
    return answered


def time_out_waits(now: datetime | None = None, limit: int = 100) -> int:
    """The dispatcher's sweep: each wait past its deadline gets its step back, at its timeout
    URL, with ``waitTimeout``."""
    now = now or timezone.now()
    due = WorkflowWaiter.objects.filter(ended_at__isnull=True, deadline__lte=now)
    resumed = 0
    for waiter in due.order_by("deadline")[:limit]:
        step = {**waiter.step, "waitTimeout": True}
        headers = _first_values(waiter.timeout_headers)
        resumed += _resume(waiter, waiter.timeout_url, headers, step) is not None
    return resumed


def next_deadline() -> datetime | None:
    """When the next wait times out (the dispatcher wakes then: extensions.register_next_due)."""
    return (
        WorkflowWaiter.objects.filter(ended_at__isnull=True)
        .order_by("deadline")
        .values_list("deadline", flat=True)
        .first()
    )


def waiters(event_id: str) -> list[dict[str, Any]]:
    """``GET /v2/waiters/{eventId}``: the runs waiting for it."""
    found = WorkflowWaiter.objects.filter(event_id=event_id, ended_at__isnull=True)
    return [_waiter_json(waiter) for waiter in found.order_by("created_at")]


def _resume(
    waiter: WorkflowWaiter, url: str, headers: Mapping[str, str], step: Mapping[str, Any]
) -> str | None:
    """Publish the waiter's step, once: the waiter is ended in the same transaction (another
    notify, or the sweep, that got there first wins). The message id, or None."""
    ended = WorkflowWaiter.objects.filter(pk=waiter.pk, ended_at__isnull=True)
    try:
        with transaction.atomic():
            if not ended.update(ended_at=timezone.now()):
                return None
            fields = header_parser.parse(headers)
            fields.setdefault("workflow_run_id", waiter.run_id)
            body = json.dumps(step, separators=(",", ":")).encode()
            [published] = send(Publish(destination=url, body=body, **fields))
            WorkflowWaiter.objects.filter(pk=waiter.pk).update(message_id=published.message_id)
    except (PublishError, InputError, APIException) as exc:
        # The run ended, or what the wait asked for cannot be sent any more: the wait ends
        # (a notify or the sweep would otherwise try it again and again), said in the log.
        ended.update(ended_at=timezone.now())
        logger.warning("workflow run %s: wait %s not resumed: %s", waiter.run_id, waiter.pk, exc)
        return None
    return published.message_id


def _waiter_json(waiter: WorkflowWaiter) -> dict[str, Any]:
    return {
        "url": waiter.url,
        "deadline": int(waiter.deadline.timestamp()),
        "headers": {name: [value] for name, value in waiter.headers.items()},
        "timeoutUrl": waiter.timeout_url,
        "timeoutHeaders": waiter.timeout_headers,
    }
