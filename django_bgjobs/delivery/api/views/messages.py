"""``GET/DELETE /v2/messages/{id}`` and the bulk cancel ``DELETE /v2/messages``."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import lifecycle
from django_bgjobs.delivery.api import filters, serializers
from django_bgjobs.delivery.api.errors import NotFound
from django_bgjobs.delivery.api.views.base import QStashView, ids_from
from django_bgjobs.delivery.models import Message
from django_bgjobs.models import UNFINISHED

# Messages a bulk cancel by filters (or of all) reads and cancels at a time.
CANCEL_MAX = 500
FINISHED_STATES = ("DELIVERED", "FAILED", "CANCELLED")


def cancellable() -> QuerySet[Message]:
    """Messages a cancel can still stop: not cancelled, and either waiting for their gate
    (no job yet) or with an unfinished delivery job."""
    return Message.objects.filter(cancelled_at__isnull=True).filter(
        Q(job__isnull=True, admitted_at__isnull=True) | Q(job__status__in=UNFINISHED)
    )


class MessageView(QStashView):
    def get(self, request: Request, message_id: str) -> Response:
        message = Message.objects.filter(pk=message_id).first()
        if message is None:
            raise NotFound(f"message {message_id} not found")
        if message.cancelled_at is not None:
            # QStash removes a cancelled message: its SDKs' message.get() answers not found.
            # The row stays here, for the logs, the DLQ's history and the admin.
            raise NotFound(f"message {message_id} not found: it was cancelled")
        return Response(serializers.message(message))

    def delete(self, request: Request, message_id: str) -> Response:
        if not Message.objects.filter(pk=message_id).exists():
            raise NotFound(f"message {message_id} not found")
        if not lifecycle.cancel(message_id):
            # Read again after the attempt: the state that made it fail.
            message = Message.objects.filter(pk=message_id).select_related("job").first()
            if message is None:
                raise NotFound(f"message {message_id} not found")
            state = lifecycle.message_state(message)
            if state in FINISHED_STATES:
                raise NotFound(f"message {message_id} is {state}: nothing to cancel")
            raise NotFound(
                f"message {message_id} is {state} and changed while it was being "
                "cancelled: send the cancel again"
            )
        # A JSON body: the JS SDK's messages.cancel(id) parses one.
        return Response({"cancelled": 1})


class MessagesView(QStashView):
    """Cancel many: by id (``{"messageIds": [...]}`` or ``?messageIds=``, up to
    ``MAX_IDS``), or by filters (``?queueName=...&label=...``), or, with neither, every
    pending message (the Python SDK's ``cancel_all()`` sends nothing at all). By filters or
    all, every match is cancelled, ``CANCEL_MAX`` at a time (so memory stays bounded), as both
    SDKs expect from one call; ``count`` is accepted and ignored, as QStash's SDK types say the
    server does."""

    def delete(self, request: Request) -> Response:
        ids = ids_from(request, "messageIds")
        if ids is not None:
            return Response({"cancelled": lifecycle.cancel_many(ids)})
        params = request.query_params
        # An unknown filter ignored would widen the cancel to every message.
        filters.refuse_unknown(params, also=("count", "cursor"))
        filters.count(params, default=CANCEL_MAX, maximum=CANCEL_MAX)  # a bad one is a 400
        oldest = (
            cancellable()
            .filter(filters.message_filter(params))
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)
        )
        cancelled = 0
        while batch := list(oldest[:CANCEL_MAX]):
            done = lifecycle.cancel_many(batch)
            cancelled += done
            if not done:  # each one finished or was cancelled meanwhile: nothing left to do
                break
        return Response({"cancelled": cancelled})
