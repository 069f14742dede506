"""Errors the way QStash answers them: ``{"error": "..."}`` with the status, nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from django_bgjobs.conf import django_setting


class InputError(ValueError):
    """Something the caller sent cannot be used (a header, the destination, a JSON field);
    the message says what. Answered 400."""


class BadRequest(exceptions.APIException):
    """A header, the destination or the body is wrong; the message says which."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "bad request"


class NotFound(exceptions.APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "not found"


class NotOffered(exceptions.APIException):
    """A QStash capability this server deliberately does not have; the message names it and
    says why (the README lists them)."""

    status_code = status.HTTP_501_NOT_IMPLEMENTED
    default_detail = "not offered by this server"


# The capabilities not offered, as the 501 names them (the README lists them).
LLM = (
    "the LLM API (client.chat, api.llm) is not offered by this server: it delivers messages to "
    "your endpoints, not to model providers; publish to the provider's URL instead"
)
WORKFLOW = (
    "this part of Upstash Workflow (run logs, its DLQ, webhooks, events) is not offered by this "
    "server: runs, steps, sleeps, waits, notify and cancel are; see "
    "docs/howto/qstash-api.md, 'Upstash Workflow apps'"
)


WORKFLOW_STEP = (
    "Upstash Workflow's context.call and context.invoke are not offered by this server: "
    "call the URL inside context.run, or start the other workflow with client.trigger"
)


def too_large(meta: Mapping[str, Any]) -> str:
    """What a 413 says: the body's size when the request gave it, the limit and its setting
    (Django refuses the body before any view reads it)."""
    limit = django_setting("DATA_UPLOAD_MAX_MEMORY_SIZE")
    length = str(meta.get("CONTENT_LENGTH") or "")
    size = f"is {length} bytes" if length.isdigit() else "is too large"
    return (
        f"the request body {size}; the limit is {limit} bytes (Django's "
        "DATA_UPLOAD_MAX_MEMORY_SIZE setting on this server): send a smaller body, or "
        "raise that setting"
    )


def error_response(message: str, status_code: int) -> Response:
    return Response({"error": message}, status=status_code)


def _message(detail: Any) -> str:
    # DRF details can be lists or dicts (validation errors); QStash has one string.
    if isinstance(detail, list):
        return "; ".join(_message(item) for item in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_message(value)}" for key, value in detail.items())
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler for these views only (the project's stays as it is)."""
    from django_bgjobs.delivery.publish import PublishError, UnknownTopic

    if isinstance(exc, UnknownTopic):
        return error_response(str(exc), status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PublishError | InputError):
        return error_response(str(exc), status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        request = context.get("request")
        meta = getattr(request, "META", {}) if request is not None else {}
        return error_response(too_large(meta), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        return error_response(str(exc) or "not found", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        return error_response(str(exc) or "forbidden", status.HTTP_403_FORBIDDEN)
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's 500, logged as usual
    response = error_response(_message(exc.detail), exc.status_code)
    # Set by APIView.handle_exception from the authentication class (what makes it a 401).
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        response["WWW-Authenticate"] = auth_header
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(int(exc.wait))
    return response
