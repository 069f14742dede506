"""``GET /v2/events`` (what both SDKs call) and ``GET /v2/logs`` (the docs' name, key
``logs``)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery.api import events, filters
from django_bgjobs.delivery.api.views.base import QStashView

DEFAULT_COUNT = 100
MAX_COUNT = 1000


class EventsView(QStashView):
    key = "events"

    def get(self, request: Request) -> Response:
        params = request.query_params
        found, cursor = events.page(
            params,
            state=params.get("state") or None,
            cursor=params.get("cursor") or None,
            count=filters.count(params, default=DEFAULT_COUNT, maximum=MAX_COUNT),
        )
        data: dict[str, Any] = {self.key: found}
        if cursor:
            data["cursor"] = cursor
        return Response(data)


class LogsView(EventsView):
    key = "logs"
