"""The query-string filters the SDKs send to the list and bulk endpoints (DLQ, events, bulk
cancel), as a condition on ``Message``. A filter given several times (the JS SDK's arrays)
matches any of its values; different filters must all match."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db.models import Q
from django.http import QueryDict

from django_bgjobs.delivery import labels
from django_bgjobs.delivery.api.errors import InputError

# query parameter -> Message field
FIELDS = {
    "messageId": "id",
    "messageIds": "id",
    "url": "url",
    "topicName": "topic",
    "queueName": "queue",
    "scheduleId": "schedule_id",
    "flowControlKey": "flow_key",
    "callerIp": "caller_ip",
    "callerIP": "caller_ip",
}
# The destination's host or path (the JS SDK's message-cancel and logs filters), matched
# within Message.url: http(s)://[userinfo@]host[:port]/path[?query][#fragment].
URL_PARTS = ("host", "path")
DATES = ("fromDate", "toDate")
NAMES = frozenset((*FIELDS, "label", *URL_PARTS, *DATES))
_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]*://"


class FilterError(InputError):
    pass


def milliseconds(name: str, value: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise FilterError(f"{name}: expected Unix milliseconds, got {value!r}") from None


def count(params: QueryDict, *, default: int, maximum: int) -> int:
    """``count``, at most ``maximum`` (a larger one is lowered to it)."""
    raw = params.get("count")
    if raw in (None, ""):
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise FilterError(f"count: expected a whole number from 1 to {maximum}, got {raw!r}")
    return min(int(raw), maximum)


def refuse_unknown(params: QueryDict, *, also: Iterable[str] = ()) -> None:
    """For requests that act on whatever matches: a filter this API does not know would
    otherwise be ignored, and the action would reach every message instead of a few."""
    allowed = NAMES | set(also)
    unknown = sorted(name for name in params if name not in allowed)
    if unknown:
        raise FilterError(
            f"unknown filter {', '.join(map(repr, unknown))}: the filters are "
            f"{', '.join(sorted(allowed))}"
        )


def _url_part(name: str, value: str, prefix: str) -> Q:
    if name == "host":
        # Case-insensitive, as host names are; any port unless the value names one.
        pattern = rf"{_SCHEME}([^/?#@]*@)?{re.escape(value)}(:[0-9]+)?([/?#]|$)"
        return Q(**{f"{prefix}url__iregex": pattern})
    path = value if value.startswith("/") else "/" + value  # the whole path, exactly
    return Q(**{f"{prefix}url__regex": rf"{_SCHEME}[^/?#]*{re.escape(path)}([?#]|$)"})


def message_filter(params: QueryDict, prefix: str = "") -> Q:
    """The condition; ``prefix`` (``"message__"``) applies it to rows that point at messages."""
    condition = Q()
    for name, field in FIELDS.items():
        values = [v for value in params.getlist(name) for v in value.split(",") if v]
        if values:
            condition &= Q(**{f"{prefix}{field}__in": values})
    labels_asked = [v for value in params.getlist("label") for v in value.split(",") if v]
    if labels_asked:
        condition &= labels.having_any(labels_asked, f"{prefix}label")
    for name in URL_PARTS:
        any_of = Q()
        for value in params.getlist(name):
            for part in value.split(","):
                if part:
                    any_of |= _url_part(name, part, prefix)
        if any_of:
            condition &= any_of
    for name, lookup in (("fromDate", "gte"), ("toDate", "lte")):
        date = params.get(name)
        if isinstance(date, str) and date:
            condition &= Q(**{f"{prefix}created_at__{lookup}": milliseconds(name, date)})
    return condition
