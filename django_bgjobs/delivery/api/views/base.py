"""What every view of the API shares: bearer-token authentication, JSON in and out, QStash's
``{"error": ...}`` bodies. Set on the views rather than read from the project's
REST_FRAMEWORK settings: a project's session authentication, browsable API, versioning or
pagination would change the wire format the SDKs parse."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_bgjobs.delivery.api.auth import BearerTokenAuthentication, HasApiToken
from django_bgjobs.delivery.api.errors import BadRequest, NotFound, exception_handler

MAX_IDS = 1000  # ids in one bulk request


class AlwaysJSON(BaseContentNegotiation):
    """JSON whatever ``Accept`` says: the SDKs send ``*/*`` or nothing, and an error must not
    become a 406."""

    def select_parser(self, request: Request, parsers: Sequence[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: Sequence[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class QStashView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasApiToken]
    renderer_classes = [JSONRenderer]
    parser_classes: list[Any] = []  # bodies are read raw: publish bodies are the message
    content_negotiation_class = AlwaysJSON
    versioning_class = None
    pagination_class = None

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        return exception_handler

    def caller_ip(self, request: Request) -> str:
        # REMOTE_ADDR only: X-Forwarded-For is whatever the caller wrote unless a trusted
        # proxy set it, and which proxies are trusted is the project's middleware's business.
        return str(request.META.get("REMOTE_ADDR") or "")


def done(found: bool, what: str) -> Response:
    """What an action on one object (delete, pause, resume...) answers: an empty 200 when it
    found the object, else QStash's 404 ``{"error": "<what> not found"}``."""
    if not found:
        raise NotFound(f"{what} not found")
    return Response(status=status.HTTP_200_OK)


def json_body(request: Request, *, required: bool = True) -> Any:
    """The body as JSON (whatever Content-Type says: the SDKs do not all set it)."""
    raw = request.body
    if not raw.strip():
        if required:
            raise BadRequest("the request body must be JSON")
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


def ids_from(request: Request, key: str) -> list[str] | None:
    """Ids for a bulk action: the Python SDK sends ``{"<key>": [...]}``, the JS SDK
    ``?<key>=a&<key>=b`` (a hand-written ``?<key>=a,b`` works too). None when the request
    does not name ``key`` at all; an empty list when it names no ids (which acts on none)."""
    named = key in request.query_params
    ids: list[str] = list(request.query_params.getlist(key))
    # Only a JSON body is read: a bodiless POST from some clients still carries a form
    # Content-Type, and the JS SDK puts everything in the query string.
    looks_json = request.body.lstrip()[:1] in (b"{", b"[") or "json" in (request.content_type or "")
    data = json_body(request, required=False) if looks_json else None
    if data is not None:
        if not isinstance(data, dict):
            raise BadRequest(f"the request body must be a JSON object with {key!r}")
        if key in data:
            named = True
            listed = data[key]
            if not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
                raise BadRequest(f"{key!r} must be a list of strings")
            ids.extend(listed)
    ids = [part for value in ids for part in value.split(",") if part]
    if len(ids) > MAX_IDS:
        raise BadRequest(
            f"{key!r}: {len(ids)} ids, at most {MAX_IDS} at a time: send them in several requests"
        )
    return list(dict.fromkeys(ids)) if named else None
