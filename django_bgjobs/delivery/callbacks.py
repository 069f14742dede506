"""Callbacks: after each attempt (``callback``) and once when a message is dead-lettered
(``failure_callback``), a signed delivery of QStash's callback body (webhook-wire.md 2.4) to
the URL given at publish. A callback is a message of its own (retried, dead-lettered), never
the source of another callback."""

from __future__ import annotations

import base64
import json
from typing import Any

from django_bgjobs.delivery import redaction
from django_bgjobs.delivery.models import DeliveryAttempt, Message


def _ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def _as_lists(headers: dict[str, Any]) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in headers.items()}


def body(
    message: Message, attempt: DeliveryAttempt | None, dlq_id: str | None = None
) -> dict[str, Any]:
    """QStash's callback body for ``attempt`` of ``message`` (the last attempt, if any, for a
    failure callback). ``status`` is 0 when no response came; ``error`` then says why."""
    data: dict[str, Any] = {
        "status": (attempt.status or 0) if attempt else 0,
        "header": _as_lists(attempt.response_headers) if attempt else {},
        "body": base64.b64encode(bytes(attempt.response_body)).decode() if attempt else "",
        "retried": attempt.retried if attempt else 0,
        "maxRetries": message.retries,
        "sourceMessageId": message.pk,
        "url": message.url,
        "method": message.method,
        # The source message as it may be shown (Upstash-Redact-Fields): a callback is a
        # report about it, not its delivery.
        "sourceHeader": _as_lists(redaction.shown_headers(message.redact, message.headers)),
        "sourceBody": base64.b64encode(
            redaction.shown_body(message.redact, bytes(message.body))
        ).decode(),
        "createdAt": _ms(message.created_at),
    }
    optional = {
        "topicName": message.topic,
        "endpointName": message.endpoint_name,
        "scheduleId": message.schedule_id,
        "callerIP": message.caller_ip,
        "notBefore": _ms(message.not_before),
        "dlqId": dlq_id,
        "error": attempt.error if attempt else None,
    }
    data.update({k: v for k, v in optional.items() if v})
    return data


def send(
    message: Message, kind: str, attempt: DeliveryAttempt | None, dlq_id: str | None = None
) -> str | None:
    """Publish the ``kind`` ("callback" or "failure_callback") of ``message``, if it has one
    (in the current transaction). Returns the callback message's id."""
    from django_bgjobs.delivery.publish import Publish
    from django_bgjobs.delivery.publish import send as publish

    config = getattr(message, kind)
    if not config or message.kind != "message":
        return None
    payload = json.dumps(body(message, attempt, dlq_id), separators=(",", ":")).encode()
    [published] = publish(
        Publish(
            destination=config["url"],
            body=payload,
            headers={"Content-Type": "application/json", **(config.get("headers") or {})},
            method=config.get("method") or "POST",
            retries=config.get("retries", 3),
            retry_delay=config.get("retry_delay"),
            delay=config.get("delay"),
            timeout=config.get("timeout"),
            signature=message.signature,  # type: ignore[arg-type]
        )
    )
    Message.objects.filter(pk=published.message_id).update(kind=kind, source=message)
    return published.message_id
