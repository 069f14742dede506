"""The dead-letter queue: ``/v2/dlq`` (list, bulk delete), ``/v2/dlq/{dlqId}`` (get, delete),
``POST /v2/dlq/retry[/{dlqId}]``.

Entries are listed newest first by DLQ id (``<ms>-<n>``: the time the message died); the
cursor is the last id returned, and no cursor means the end."""

from __future__ import annotations

from typing import Any

from django.db.models import Max, OuterRef, QuerySet, Subquery
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import lifecycle
from django_bgjobs.delivery.api import filters, serializers
from django_bgjobs.delivery.api import headers as header_parser
from django_bgjobs.delivery.api.errors import BadRequest, NotFound
from django_bgjobs.delivery.api.views.base import QStashView, ids_from
from django_bgjobs.delivery.models import DeliveryAttempt, Message

LIST_MAX = 100  # the SDKs' documented maximum page
BULK_DEFAULT = 100  # the JS SDK's DEFAULT_BULK_COUNT
BULK_MAX = 1000


def _selection(request: Request) -> QuerySet[Message]:
    """The entries a list or bulk request names: by id, or by filters (all when none)."""
    params = request.query_params
    entries = lifecycle.dead_letters()
    ids = ids_from(request, "dlqIds")
    if ids is not None:
        return entries.filter(dlq_id__in=ids)
    entries = entries.filter(filters.message_filter(params))
    status = params.get("responseStatus")
    if status:
        if not status.isdigit():
            raise BadRequest(
                f"responseStatus: expected an HTTP status code such as 500, got {status!r}"
            )
        last_status = (
            DeliveryAttempt.objects.filter(message=OuterRef("pk"))
            .order_by("-id")
            .values("status")[:1]
        )
        entries = entries.annotate(last_status=Subquery(last_status)).filter(
            last_status=int(status)
        )
    return entries


def _page(
    entries: QuerySet[Message], request: Request, *, default: int, maximum: int
) -> tuple[list[Message], str | None]:
    count = filters.count(request.query_params, default=default, maximum=maximum)
    cursor = request.query_params.get("cursor")
    if cursor:
        entries = entries.filter(dlq_id__lt=cursor)
    found = list(entries.order_by("-dlq_id")[: count + 1])
    more = len(found) > count
    found = found[:count]
    return found, (found[-1].dlq_id if more and found else None)


def _last_attempts(messages: list[Message]) -> dict[str, DeliveryAttempt]:
    """Each message's last attempt, in two queries."""
    last_ids = (
        DeliveryAttempt.objects.filter(message_id__in=[m.pk for m in messages])
        .values("message_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    attempts = DeliveryAttempt.objects.filter(pk__in=list(last_ids))
    return {a.message_id: a for a in attempts}


def entries_json(messages: list[Message]) -> list[dict[str, Any]]:
    last = _last_attempts(messages)
    flows = serializers.flows_for(messages)
    return [serializers.dead_letter(m, last.get(m.pk), flows=flows) for m in messages]


class DlqListView(QStashView):
    def get(self, request: Request) -> Response:
        found, cursor = _page(_selection(request), request, default=LIST_MAX, maximum=LIST_MAX)
        data: dict[str, Any] = {"messages": entries_json(found)}
        if cursor:
            data["cursor"] = cursor
        return Response(data)

    def delete(self, request: Request) -> Response:
        """By id (``{"dlqIds": [...]}``, ``?dlqIds=``) or by filters, ``count`` at a time
        (the JS SDK loops on the cursor)."""
        found, cursor = _page(_selection(request), request, default=BULK_DEFAULT, maximum=BULK_MAX)
        data: dict[str, Any] = {
            "deleted": lifecycle.delete_dead([m.dlq_id for m in found if m.dlq_id])
        }
        if cursor:
            data["cursor"] = cursor
        return Response(data)


class DlqEntryView(QStashView):
    def get(self, request: Request, dlq_id: str) -> Response:
        message = lifecycle.dead_letters().filter(dlq_id=dlq_id).first()
        if message is None:
            raise NotFound(f"DLQ entry {dlq_id} not found")
        return Response(entries_json([message])[0])

    def delete(self, request: Request, dlq_id: str) -> Response:
        if not lifecycle.delete_dead([dlq_id]):
            raise NotFound(f"DLQ entry {dlq_id} not found")
        return Response({"deleted": 1})


def _overrides(request: Request) -> dict[str, Any]:
    """``Upstash-*`` headers sent with a retry change those settings of the new message
    (``Upstash-Retries: 5``...). Only Upstash-* headers count: the retry request's own
    Content-Type or User-Agent say nothing about the message, and the message keeps the
    headers it had (forwarded-header overrides are not supported)."""
    fields: dict[str, Any] = dict(
        header_parser.parse(
            (name, value)
            for name, value in request.headers.items()
            if name.lower().startswith("upstash-")
        )
    )
    fields.pop("headers", None)
    return fields


class DlqRetryView(QStashView):
    def post(self, request: Request, dlq_id: str | None = None) -> Response:
        overrides = _overrides(request)
        if dlq_id is not None:
            published = lifecycle.retry_dead(dlq_id, overrides)
            if published is None:
                raise NotFound(f"DLQ entry {dlq_id} not found")
            item = {"messageId": published.message_id}
            # Both shapes: the bulk one ({"responses": [...]}) and a single object.
            return Response({**item, "responses": [item]}, status=201)
        found, cursor = _page(_selection(request), request, default=BULK_DEFAULT, maximum=BULK_MAX)
        responses = []
        for message in found:
            if message.dlq_id and (published := lifecycle.retry_dead(message.dlq_id, overrides)):
                responses.append({"messageId": published.message_id})
        data: dict[str, Any] = {"responses": responses}
        if cursor:
            data["cursor"] = cursor
        return Response(data, status=201)
