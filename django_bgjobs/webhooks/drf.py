"""DRF: ``authentication_classes = [QStashAuthentication]`` (or a subclass of
``WebhookAuthentication`` naming another endpoint) on an APIView or @api_view."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from django_bgjobs.webhooks.gate import admit
from django_bgjobs.webhooks.views import _configured


class WebhookSigned(exceptions.APIException):
    """A webhook refused with its own status (400, 401, 405, 413) and check name."""

    def __init__(self, response: HttpResponse) -> None:
        import json

        payload = json.loads(response.content)
        super().__init__(detail=payload["error"], code=payload["check"])
        self.status_code = response.status_code


class WebhookAuthentication(BaseAuthentication):
    """Authenticates a request by its webhook signature; ``request.auth`` is the Verdict.
    Subclass and set ``endpoint`` (a BGJOBS["WEBHOOKS"] name). DRF views are CSRF-exempt
    unless SessionAuthentication is among their classes."""

    endpoint = ""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        from django.contrib.auth.models import AnonymousUser

        admitted = admit(request._request, _configured(self.endpoint))
        if isinstance(admitted, HttpResponse):
            raise WebhookSigned(admitted)
        return AnonymousUser(), admitted[1]

    def authenticate_header(self, request: Request) -> str:
        return f'Webhook-Signature endpoint="{self.endpoint}"'


class QStashAuthentication(WebhookAuthentication):
    endpoint = "qstash"
