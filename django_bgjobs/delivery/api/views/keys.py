"""``GET /v2/keys`` and ``POST /v2/keys/rotate``: the keys deliveries are signed with, for
receivers (``qstash.Receiver(current, next)``)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import keys
from django_bgjobs.delivery.api.views.base import QStashView


class KeysView(QStashView):
    def get(self, request: Request) -> Response:
        found = keys.signing_keys()
        return Response({"current": found.current, "next": found.next})


class RotateKeysView(QStashView):
    def post(self, request: Request) -> Response:
        found = keys.rotate()
        return Response({"current": found.current, "next": found.next})
