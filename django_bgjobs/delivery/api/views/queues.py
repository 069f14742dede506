"""``/v2/queues``: upsert (``POST /v2/queues``), list, get, delete, pause, resume."""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery.api import queues, serializers
from django_bgjobs.delivery.api.errors import NotFound
from django_bgjobs.delivery.api.views.base import QStashView, done, json_body
from django_bgjobs.delivery.models import DeliveryQueue


class QueueListView(QStashView):
    def get(self, request: Request) -> Response:
        rows = list(DeliveryQueue.objects.all())
        lags = queues.lags(q.name for q in rows)
        return Response([serializers.queue(q, lags.get(q.name, 0)) for q in rows])

    def post(self, request: Request) -> Response:
        queues.upsert(json_body(request))
        return Response(status=status.HTTP_200_OK)


class QueueView(QStashView):
    def get(self, request: Request, name: str) -> Response:
        queue = DeliveryQueue.objects.filter(name=name).first()
        if queue is None:
            raise NotFound(f"queue {name} not found")
        return Response(serializers.queue(queue, queues.lags([name]).get(name, 0)))

    def delete(self, request: Request, name: str) -> Response:
        return done(queues.delete(name), f"queue {name}")


class QueuePauseView(QStashView):
    """POST (both SDKs) or PATCH."""

    paused = True

    def post(self, request: Request, name: str) -> Response:
        return done(queues.set_paused(name, self.paused), f"queue {name}")

    patch = post


class QueueResumeView(QueuePauseView):
    paused = False
