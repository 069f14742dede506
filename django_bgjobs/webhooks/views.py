"""Webhook views: the generic receiver (``include("django_bgjobs.webhooks.urls")``), and
``@verify_webhook`` / ``WebhookVerifiedMixin`` to protect views of your own. CSRF is exempt on
these views only: a webhook is authenticated by its signature, not a cookie."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from django_bgjobs.webhooks.endpoints import Endpoint, endpoint
from django_bgjobs.webhooks.gate import admit, error
from django_bgjobs.webhooks.receipts import store

View = Callable[..., HttpResponse]


@csrf_exempt
def receive(request: HttpRequest, name: str) -> HttpResponse:
    """POST <prefix>/<name>/: verify, store the delivery, enqueue its handler, answer 202."""
    found = endpoint(name)
    if found is None:
        return error(404, "endpoint", "no webhook endpoint has this name")
    admitted = admit(request, found)
    if isinstance(admitted, HttpResponse):
        return admitted
    body, verdict = admitted
    stored = store(found, body, request.headers, verdict)
    receipt = stored.receipt
    return JsonResponse(
        {
            "status": "duplicate" if stored.duplicate else "accepted",
            "receipt": receipt.pk,
            "job": str(receipt.job_id) if receipt.job_id else None,
        },
        status=200 if stored.duplicate else 202,
    )


def _configured(name: str) -> Endpoint:
    found = endpoint(name)
    if found is None:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"no BGJOBS['WEBHOOKS'] entry is named {name!r}")
    return found


def verify_webhook(name: str) -> Callable[[View], View]:
    """Protect a function view: only POSTs whose signature verifies against
    ``BGJOBS["WEBHOOKS"][name]`` reach it, with ``request.webhook`` (the Verdict: its
    ``message_id``) and the raw ``request.body``."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def verified(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            admitted = admit(request, _configured(name))
            if isinstance(admitted, HttpResponse):
                return admitted
            request.webhook = admitted[1]  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        return verified

    return decorate


class WebhookVerifiedMixin:
    """For class-based views: set ``webhook_endpoint`` to a BGJOBS["WEBHOOKS"] name."""

    webhook_endpoint: str = ""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> View:
        return csrf_exempt(super().as_view(**initkwargs))  # type: ignore[misc, no-any-return]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        admitted = admit(request, _configured(self.webhook_endpoint))
        if isinstance(admitted, HttpResponse):
            return admitted
        request.webhook = admitted[1]  # type: ignore[attr-defined]
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc, no-any-return]
