"""``GET/DELETE /v2/messages/{id}`` and the bulk cancel ``DELETE /v2/messages``."""


from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import lifecycle
from django_bgjobs.delivery.models import Message
from django_bgjobs.models import FINISHED
from django_bgjobs.qstash_api import filters, serializers
from django_bgjobs.qstash_api.errors import NotFound
from django_bgjobs.qstash_api.views.base import QStashView, ids_from


class MessageView(QStashView):
    def get(self, request: Request, message_id: str) -> Response:
        message = Message.objects.filter(pk=message_id).first()
        if message is None:
            raise NotFound(f"message {message_id} not found")
        return Response(serializers.message(message))

    def delete(self, request: Request, message_id: str) -> Response:
        if not Message.objects.filter(pk=message_id).exists():
            raise NotFound(f"message {message_id} not found")
        if not lifecycle.cancel(message_id):
            # Delivered, failed or cancelled already: QStash has nothing left to cancel.
            raise NotFound(f"message {message_id} is finished; there is nothing to cancel")
        # A JSON body: the JS SDK's messages.cancel(id) parses one.
        return Response({"cancelled": 1})


class MessagesView(QStashView):
    """Cancel many: by id (``{"messageIds": [...]}`` or ``?messageIds=``), by filters
    (``?queueName=...&label=...``), or, with neither, every pending message (the Python
    SDK's ``cancel_all()`` sends nothing at all)."""

    def delete(self, request: Request) -> Response:
        ids = ids_from(request, "messageIds")
        if ids is None:
            pending = (Message.objects.filter(cancelled_at__isnull=True)
                       .exclude(job__status__in=FINISHED)
                       .filter(filters.message_filter(request.query_params)))
            ids = list(pending.values_list("pk", flat=True).iterator())
        return Response({"cancelled": lifecycle.cancel_many(ids)})
