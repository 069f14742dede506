"""``/v2/topics`` (URL groups): list, get, delete, ``POST``/``DELETE .../endpoints``."""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery.api import serializers, topics
from django_bgjobs.delivery.api.errors import BadRequest, NotFound
from django_bgjobs.delivery.api.views.base import QStashView, done, json_body


class TopicListView(QStashView):
    def get(self, request: Request) -> Response:
        return Response([serializers.topic(t) for t in topics.with_endpoints()])


class TopicView(QStashView):
    def get(self, request: Request, name: str) -> Response:
        topic = topics.with_endpoints().filter(name=name).first()
        if topic is None:
            raise NotFound(f"URL group {name} not found")
        return Response(serializers.topic(topic))

    def delete(self, request: Request, name: str) -> Response:
        return done(topics.delete(name), f"URL group {name}")


def _endpoints(request: Request) -> object:
    data = json_body(request)
    if not isinstance(data, dict) or "endpoints" not in data:
        raise BadRequest('the body must be {"endpoints": [{"url": ..., "name": ...}]}')
    return data["endpoints"]


class TopicEndpointsView(QStashView):
    def post(self, request: Request, name: str) -> Response:
        topics.upsert_endpoints(name, _endpoints(request))
        return Response(status=status.HTTP_200_OK)

    def delete(self, request: Request, name: str) -> Response:
        return done(topics.remove_endpoints(name, _endpoints(request)), f"URL group {name}")
