"""Who may call the API: ``Authorization: Bearer <ApiToken>``, and nothing else.

QStash also takes ``?qstash_token=``; here it is refused with 401, whatever the header says:
a token in a URL ends up in access logs, proxies and browser histories (webhook-wire.md,
pitfall 11), and telling the caller beats silently ignoring it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from django_bgjobs.delivery.api import tokens
from django_bgjobs.delivery.models import ApiToken

QUERY_TOKEN = "qstash_token"
INVALID = (
    "invalid token: no active API token has this value (mistyped, deactivated, or "
    "its user is inactive); create one with 'manage.py bgjobs create-token' or in the "
    "admin (API tokens)"
)


class BearerTokenAuthentication(BaseAuthentication):
    """``request.auth`` is the ApiToken; ``request.user`` its user (or anonymous)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        if QUERY_TOKEN in request._request.GET:
            raise exceptions.AuthenticationFailed(
                "tokens in the query string are refused (they end up in logs): "
                "send it as 'Authorization: Bearer <token>'"
            )
        header = get_authorization_header(request).split()
        if not header:
            return None  # NotAuthenticated, from the permission
        if header[0].lower() != b"bearer" or len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "the Authorization header must be 'Bearer <token>'"
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "invalid token: it holds characters that are not ASCII; send the bgq_... "
                "value create-token printed"
            ) from None
        token = tokens.authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed(INVALID)
        return token.user or AnonymousUser(), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="qstash"'


class HasApiToken(BasePermission):
    """A token authenticated the request (a token need not belong to a user)."""

    message = "missing token: send 'Authorization: Bearer <token>'"

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiToken):
            # Raised here rather than returning False so the caller reads this message
            # rather than DRF's generic one (the 401 comes from authenticate_header).
            raise exceptions.NotAuthenticated(self.message)
        return True
