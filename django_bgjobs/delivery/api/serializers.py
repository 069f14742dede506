"""Rows -> the JSON objects the official SDKs parse (``qstash`` 3.4 ``message.py``, ``dlq.py``,
``schedule.py``, ``url_group.py``, ``queue.py``; ``@upstash/qstash`` 2.12): camelCase keys,
times in Unix milliseconds, headers as ``{name: [values]}``, a body as ``body`` when it is
UTF-8 and ``bodyBase64`` otherwise. Keys whose value is unknown are left out rather than
sent as null, as QStash does (the SDKs read them with ``.get``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django_bgjobs.delivery import labels, redaction
from django_bgjobs.delivery.models import (
    DeliveryAttempt,
    DeliveryQueue,
    FlowControl,
    Message,
    MessageSchedule,
    Topic,
)

JSON = dict[str, Any]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def multi_header(headers: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """``{name: value}`` (or already ``{name: [values]}``) as QStash's ``{name: [values]}``."""
    found: dict[str, list[str]] = {}
    for name, value in (headers or {}).items():
        found[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return found


def body_fields(body: bytes, *, text_key: str = "body", base64_key: str = "bodyBase64") -> JSON:
    try:
        return {text_key: body.decode("utf-8")}
    except UnicodeDecodeError:
        return {base64_key: base64.b64encode(body).decode("ascii")}


def _set(data: JSON, key: str, value: Any) -> None:
    if value not in (None, "", {}):
        data[key] = value


def flow_fields(key: str, flows: Mapping[str, FlowControl] | None = None) -> JSON:
    """``flowControlKey`` and the key's current limits (``period`` in whole seconds)."""
    if not key:
        return {}
    flow = (flows or {}).get(key) or FlowControl.objects.filter(key=key).first()
    data: JSON = {"flowControlKey": key}
    if flow is not None:
        _set(data, "parallelism", flow.parallelism)
        _set(data, "rate", flow.rate)
        data["period"] = max(1, round(flow.period))
    return data


def flows_for(messages: Iterable[Message]) -> dict[str, FlowControl]:
    """The flow-control rows of these messages in one query."""
    keys = {m.flow_key for m in messages if m.flow_key}
    return {f.key: f for f in FlowControl.objects.filter(key__in=keys)} if keys else {}


def _callback_fields(data: JSON, callback: Mapping[str, Any] | None, prefix: str) -> None:
    if callback:
        data[prefix] = callback["url"]
        _set(data, prefix + "Header", multi_header(callback.get("headers")))


def message(m: Message, *, flows: Mapping[str, FlowControl] | None = None) -> JSON:
    """``GET /v2/messages/{id}`` (``qstash.message.parse_message_response``)."""
    data: JSON = {"messageId": m.id, "url": m.url}
    _set(data, "topicName", m.topic)
    _set(data, "endpointName", m.endpoint_name)
    _set(data, "queueName", m.queue)
    data.update(body_fields(redaction.shown_body(m.redact, bytes(m.body))))
    data["method"] = m.method
    data["header"] = multi_header(redaction.shown_headers(m.redact, m.headers))
    _callback_fields(data, m.callback, "callback")
    _callback_fields(data, m.failure_callback, "failureCallback")
    data["maxRetries"] = m.retries
    _set(data, "retryDelayExpression", m.retry_delay)
    data["notBefore"] = ms(m.not_before or m.created_at)
    data["createdAt"] = ms(m.created_at)
    _set(data, "scheduleId", m.schedule_id)
    _set(data, "callerIP", m.caller_ip)
    label_fields(data, m.label)
    data.update(flow_fields(m.flow_key, flows))
    return data


def label_fields(data: JSON, stored: str) -> None:
    """``labels``, and ``label`` (the first: the SDKs' older field) when there are any."""
    if found := labels.split(stored):
        data["label"], data["labels"] = found[0], found


def dead_letter(
    m: Message, last: DeliveryAttempt | None, *, flows: Mapping[str, FlowControl] | None = None
) -> JSON:
    """A DLQ entry (``qstash.dlq.parse_dlq_message_response``): the message and the last
    attempt's response (status 0 when no response came: refused, timed out, unreachable)."""
    data = message(m, flows=flows)
    data["dlqId"] = m.dlq_id
    data["responseStatus"] = (last.status or 0) if last is not None else 0
    if last is not None:
        _set(data, "responseHeader", multi_header(last.response_headers))
        if last.response_body:
            data.update(
                body_fields(
                    bytes(last.response_body),
                    text_key="responseBody",
                    base64_key="responseBodyBase64",
                )
            )
        _set(data, "error", last.error)
    return data


def topic(t: Topic) -> JSON:
    """``qstash.url_group.parse_url_group_response`` (endpoints prefetched)."""
    endpoints = []
    for endpoint in t.endpoints.all():
        item: JSON = {"url": endpoint.url}
        _set(item, "name", endpoint.name)
        endpoints.append(item)
    return {
        "name": t.name,
        "createdAt": ms(t.created_at),
        "updatedAt": ms(t.updated_at),
        "endpoints": endpoints,
    }


def queue(q: DeliveryQueue, lag: int) -> JSON:
    """``qstash.queue.parse_queue_response``."""
    return {
        "name": q.name,
        "parallelism": q.parallelism,
        "createdAt": ms(q.created_at),
        "updatedAt": ms(q.updated_at),
        "lag": lag,
        "paused": q.paused,
    }


# A schedule's last run, from its message's QStash state (schedule.py ScheduleState).
_RUN_STATES = {"DELIVERED": "SUCCESS", "FAILED": "FAIL", "CANCELLED": "FAIL", "CANCELED": "FAIL"}


def schedule(s: MessageSchedule, *, next_run: datetime | None, last_state: str | None) -> JSON:
    """``qstash.schedule.parse_schedule_response``; the message fields from its template."""
    from django_bgjobs.delivery.publish import Publish

    template = Publish.from_json(s.template)
    data: JSON = {
        "scheduleId": s.id,
        "cron": s.cron,
        "destination": s.destination,
        "createdAt": ms(s.created_at),
    }
    data.update(body_fields(redaction.shown_body(template.redact, template.body)))
    data["method"] = template.method
    data["header"] = multi_header(redaction.shown_headers(template.redact, template.headers))
    for prefix, callback in (
        ("callback", template.callback),
        ("failureCallback", template.failure_callback),
    ):
        if callback is not None:
            data[prefix] = callback.url
            _set(data, prefix + "Header", multi_header(callback.headers))
    data["retries"] = template.retries
    _set(data, "retryDelayExpression", template.retry_delay)
    _set(data, "queueName", s.queue or template.queue)
    if template.delay is not None:
        data["delay"] = round(template.delay)
    if template.timeout is not None:
        data["timeout"] = round(template.timeout)
    _set(data, "callerIP", template.caller_ip)
    data["isPaused"] = s.paused
    if template.flow is not None:
        flow = template.flow
        data["flowControlKey"] = flow.key
        _set(data, "parallelism", flow.parallelism)
        _set(data, "rate", flow.rate)
        data["period"] = max(1, round(flow.period))
    if s.last_fired_at is not None:
        data["lastScheduleTime"] = ms(s.last_fired_at)
    if next_run is not None:
        data["nextScheduleTime"] = ms(next_run)
    if s.last_message_id and last_state is not None:
        data["lastScheduleStates"] = {s.last_message_id: _RUN_STATES.get(last_state, "IN_PROGRESS")}
    label_fields(data, template.label)
    return data
