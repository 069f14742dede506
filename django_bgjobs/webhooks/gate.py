"""The checks every webhook view makes before its code runs: the method, the size (before any
hashing), then the signature. Shared by the generic receiver, the decorator, the mixin and the
DRF authentication class."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.webhooks.endpoints import Endpoint
from django_bgjobs.webhooks.verify import Verdict

logger = logging.getLogger("django_bgjobs.webhooks")


def error(status: int, check: str, message: str) -> JsonResponse:
    """A short JSON error naming the failed check (never a secret or an expected value)."""
    return JsonResponse({"error": message, "check": check}, status=status)


def admit(request: HttpRequest, endpoint: Endpoint) -> tuple[bytes, Verdict] | JsonResponse:
    """The raw body and a passing verdict, or the error response to send."""
    if request.method != "POST":
        response = error(405, "method", "webhooks are delivered with POST")
        response["Allow"] = "POST"
        return response
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return error(400, "content_length", "Content-Length is not a number")
    if length > endpoint.max_body:
        return _too_large(request, endpoint, f"{endpoint.max_body} bytes")
    try:
        body = request.body  # the raw bytes, before anything parses them
    except RequestDataTooBig:
        return _too_large(request, endpoint, "DATA_UPLOAD_MAX_MEMORY_SIZE")
    if len(body) > endpoint.max_body:
        return _too_large(request, endpoint, f"{endpoint.max_body} bytes")
    verdict = endpoint.verify(body, request.headers)
    if not verdict.ok:
        return _refuse(request, endpoint, verdict.status, verdict.check, verdict.detail)
    return body, verdict


def _too_large(request: HttpRequest, endpoint: Endpoint, limit: str) -> JsonResponse:
    return _refuse(request, endpoint, 413, "too_large", f"the body is larger than {limit}")


def _refuse(
    request: HttpRequest, endpoint: Endpoint, status: int, check: str, message: str
) -> JsonResponse:
    logger.warning(
        "webhook %s refused (%s): %s",
        endpoint.name,
        check,
        message,
        extra={"endpoint": endpoint.name, "check": check, "status": status},
    )
    if bgjobs_settings.WEBHOOK_STORE_REJECTED:
        from django_bgjobs.webhooks.receipts import store_rejected

        store_rejected(endpoint, request.headers, check)
    return error(status, check, message)
