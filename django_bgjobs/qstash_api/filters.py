"""The query-string filters the SDKs send to the list and bulk endpoints (DLQ, events, bulk
cancel), as a condition on ``Message``. A filter given several times (the JS SDK's arrays)
matches any of its values; different filters must all match."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Q
from django.http import QueryDict

from django_bgjobs.qstash_api.errors import InputError

# query parameter -> Message field
FIELDS = {
    "messageId": "id", "messageIds": "id", "url": "url", "topicName": "topic",
    "queueName": "queue", "scheduleId": "schedule_id", "label": "label",
    "flowControlKey": "flow_key", "callerIp": "caller_ip", "callerIP": "caller_ip",
}


class FilterError(InputError):
    pass


def milliseconds(name: str, value: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise FilterError(f"{name}: expected Unix milliseconds, got {value!r}") from None


def count(params: QueryDict, *, default: int, maximum: int) -> int:
    raw = params.get("count")
    if raw in (None, ""):
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise FilterError(f"count: expected a whole number from 1 to {maximum}")
    return min(int(raw), maximum)


def message_filter(params: QueryDict, prefix: str = "") -> Q:
    """The condition; ``prefix`` (``"message__"``) applies it to rows that point at messages."""
    condition = Q()
    for name, field in FIELDS.items():
        values = [v for value in params.getlist(name) for v in value.split(",") if v]
        if values:
            condition &= Q(**{f"{prefix}{field}__in": values})
    for name, lookup in (("fromDate", "gte"), ("toDate", "lte")):
        value = params.get(name)
        if isinstance(value, str) and value:
            condition &= Q(**{f"{prefix}created_at__{lookup}": milliseconds(name, value)})
    return condition


def has_message_filter(params: QueryDict) -> bool:
    return any(params.get(name) for name in (*FIELDS, "fromDate", "toDate"))
