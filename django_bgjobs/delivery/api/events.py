"""The event log (``GET /v2/events``, ``/v2/logs``), made from the rows: nothing is written
to keep it.

A message's events: CREATED when it was published, ACTIVE when its queue / flow-control key
let it through, for each HTTP attempt IN_PROGRESS then DELIVERED, or ERROR then RETRY or
FAILED, and CANCELED when it was cancelled (QStash's spelling, the one the SDKs' enums
know). Four sources (messages created, admitted and cancelled; attempts), each read newest
first and merged.

An attempt's events are ordered by when it started (its ERROR, RETRY or DELIVERED carry
the time it ended), so the order is exact per message and close to exact across messages.

Pagination is by a cursor of digits only, ``<microseconds><6-digit skip>``: events older
than that instant, plus those at that very instant after the first ``skip`` of them (a batch
publishes many messages at one instant). Digits, because the JS SDK's documented loop is
``while (cursor > 0)``. Ties are ordered by row id under a byte-wise collation, so the
database and Python agree on that order.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Collate
from django.http import QueryDict

from django_bgjobs.delivery import redaction
from django_bgjobs.delivery.api import serializers
from django_bgjobs.delivery.api.errors import InputError
from django_bgjobs.delivery.api.filters import message_filter
from django_bgjobs.delivery.models import DeliveryAttempt, FlowControl, Message

STATES = (
    "CREATED",
    "ACTIVE",
    "IN_PROGRESS",
    "RETRY",
    "ERROR",
    "DELIVERED",
    "FAILED",
    "CANCEL_REQUESTED",
    "CANCELED",
)
SKIP_DIGITS = 6
JSON = dict[str, Any]


class CursorError(InputError):
    pass


@dataclass(frozen=True)
class Event:
    key: tuple[int, int, Any, int]  # (microseconds, source rank, row id, sub-event)
    data: JSON


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def encode_cursor(us: int, skip: int) -> str:
    return f"{us}{skip:0{SKIP_DIGITS}d}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    if not cursor.isdigit() or len(cursor) <= SKIP_DIGITS:
        raise CursorError(
            f"invalid cursor {cursor!r}: pass the 'cursor' of the previous "
            "page as it was returned, or none for the first page"
        )
    return int(cursor[:-SKIP_DIGITS]), int(cursor[-SKIP_DIGITS:])


def _bytewise(field: str) -> Collate | F:
    """``field`` compared byte by byte, as Python compares strings."""
    if connection.vendor == "postgresql":
        return Collate(F(field), "C")
    return F(field)  # SQLite's default collation (BINARY) already is


def _message_fields(m: Message, flows: dict[str, FlowControl]) -> JSON:
    data: JSON = {"messageId": m.id, "url": m.url}
    for key, value in (
        ("topicName", m.topic),
        ("endpointName", m.endpoint_name),
        ("queueName", m.queue),
        ("scheduleId", m.schedule_id),
        ("retryDelayExpr", m.retry_delay),
    ):
        if value:
            data[key] = value
    serializers.label_fields(data, m.label)
    data["header"] = serializers.multi_header(redaction.shown_headers(m.redact, m.headers))
    data["body"] = base64.b64encode(redaction.shown_body(m.redact, bytes(m.body))).decode()
    data["method"] = m.method
    data["maxRetries"] = m.retries
    if m.timeout is not None:
        data["timeout"] = round(m.timeout)
    for key, callback in (("callback", m.callback), ("failureCallback", m.failure_callback)):
        if callback:
            data[key] = callback["url"]
            if callback.get("headers"):
                data[key + "Headers"] = serializers.multi_header(callback["headers"])
    data.update(serializers.flow_fields(m.flow_key, flows))
    return data


def _event(when: datetime, state: str, base: JSON, **extra: Any) -> JSON:
    return {"time": serializers.ms(when), "state": state, **base, **extra}


def _attempt_events(attempt: DeliveryAttempt, base: JSON) -> list[tuple[int, JSON]]:
    """(sub-event, event) for one HTTP attempt, in the order they happened."""
    ended = attempt.started_at + timedelta(milliseconds=attempt.duration_ms or 0)
    found = [(0, _event(attempt.started_at, "IN_PROGRESS", base))]
    response: JSON = {}
    if attempt.status is not None:
        response["responseStatus"] = attempt.status
        response["responseHeader"] = serializers.multi_header(attempt.response_headers)
        response["responseBody"] = bytes(attempt.response_body).decode("utf-8", "replace")
    if attempt.outcome == "delivered":
        found.append((1, _event(ended, "DELIVERED", base, **response)))
        return found
    error = attempt.error or (f"HTTP {attempt.status}" if attempt.status else "failed")
    found.append((1, _event(ended, "ERROR", base, error=error, **response)))
    if attempt.outcome == "retry":
        extra: JSON = {}
        if attempt.next_attempt_at is not None:
            extra["nextDeliveryTime"] = serializers.ms(attempt.next_attempt_at)
        found.append((2, _event(ended, "RETRY", base, **extra)))
    else:  # failed, refused: no attempt follows
        found.append((2, _event(ended, "FAILED", base, error=error)))
    return found


@dataclass(frozen=True)
class _Source:
    rank: int
    time_field: str  # on the source's model
    states: frozenset[str]  # the states its events can have
    rows: Callable[[Q, str | None], QuerySet[Any]]
    events: Callable[[Any, dict[str, FlowControl], str | None], Iterator[Event]]


def _messages(condition: Q, time_field: str) -> QuerySet[Message]:
    return Message.objects.filter(condition, **{f"{time_field}__isnull": False})


def _single(rank: int, state: str, time_field: str, condition: Q | None = None) -> _Source:
    def events(m: Message, flows: dict[str, FlowControl], _: str | None) -> Iterator[Event]:
        when: datetime = getattr(m, time_field)
        yield Event((_us(when), rank, m.pk, 0), _event(when, state, _message_fields(m, flows)))

    extra = condition or Q()
    return _Source(
        rank,
        time_field,
        frozenset({state}),
        lambda found, _: _messages(found, time_field).filter(extra),
        events,
    )


_OUTCOMES = {
    "DELIVERED": ["delivered"],
    "RETRY": ["retry"],
    "FAILED": ["failed", "refused"],
    "ERROR": ["retry", "failed", "refused"],
}


def _attempt_rows(condition: Q, state: str | None) -> QuerySet[DeliveryAttempt]:
    rows = DeliveryAttempt.objects.select_related("message").filter(condition)
    if state in _OUTCOMES:
        rows = rows.filter(outcome__in=_OUTCOMES[state])
    return rows


def _attempt_source_events(
    attempt: DeliveryAttempt, flows: dict[str, FlowControl], state: str | None
) -> Iterator[Event]:
    base = _message_fields(attempt.message, flows)
    for sub, data in _attempt_events(attempt, base):
        if state is None or data["state"] == state:
            yield Event((_us(attempt.started_at), 2, attempt.pk, sub), data)


SOURCES = (
    _single(0, "CREATED", "created_at"),
    # A delayed message's job is written (admitted) at once but waits for its time: it is
    # not ACTIVE then, and its first IN_PROGRESS says when it was.
    _single(
        1, "ACTIVE", "admitted_at", Q(not_before__isnull=True) | Q(not_before__lte=F("admitted_at"))
    ),
    _Source(
        2,
        "started_at",
        frozenset({"IN_PROGRESS", "DELIVERED", "ERROR", "RETRY", "FAILED"}),
        _attempt_rows,
        _attempt_source_events,
    ),
    _single(3, "CANCELED", "cancelled_at"),
)


def page(
    params: QueryDict, *, state: str | None, cursor: str | None, count: int
) -> tuple[list[JSON], str | None]:
    """The events of the messages ``params`` filter (filters.message_filter), newest first,
    and the cursor of the next page (None: the end)."""
    if state == "CANCELLED":
        state = "CANCELED"
    if state is not None and state not in STATES:
        raise InputError(f"state: {state!r} is not one of {', '.join(STATES)}")
    before_us, skip = decode_cursor(cursor) if cursor else (None, 0)
    found: list[Event] = []
    for source in SOURCES:
        if state is not None and state not in source.states:
            continue
        on_attempt = source.rank == 2
        condition = message_filter(params, "message__" if on_attempt else "")
        rows = source.rows(condition, state)
        if before_us is not None:
            rows = rows.filter(
                **{
                    f"{source.time_field}__lte": datetime.fromtimestamp(
                        before_us / 1_000_000, tz=UTC
                    )
                }
            )
        # Attempt ids are numbers; message ids strings, compared byte by byte.
        tie = F("pk") if on_attempt else _bytewise("id")
        ordered = rows.order_by(F(source.time_field).desc(), tie.desc())
        chosen = list(ordered[: count + skip + 1])
        flows = serializers.flows_for(r.message if on_attempt else r for r in chosen)
        for row in chosen:
            found.extend(source.events(row, flows, state))
    found.sort(key=lambda e: e.key, reverse=True)
    found = list(_after_cursor(found, before_us, skip))
    result, more = found[:count], len(found) > count
    if not more or not result:
        return [e.data for e in result], None
    last_us = result[-1].key[0]
    at_last = sum(1 for e in result if e.key[0] == last_us)
    return [e.data for e in result], encode_cursor(
        last_us, at_last + (skip if last_us == before_us else 0)
    )


def _after_cursor(events: Iterable[Event], before_us: int | None, skip: int) -> Iterator[Event]:
    skipped = 0
    for event in events:
        if before_us is not None and event.key[0] > before_us:
            continue
        if before_us is not None and event.key[0] == before_us and skipped < skip:
            skipped += 1
            continue
        yield event
