"""Bearer tokens for the QStash-compatible API: made once, stored as their SHA-256 only."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from django_bgjobs.delivery.models import ApiToken

TOKEN_PREFIX = "bgq_"
# Characters of the token kept in clear (ApiToken.prefix) so a person can tell tokens apart.
SHOWN_CHARACTERS = 12
# last_used_at is written at most this often: a busy client must not cost a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(name: str, user: Any = None) -> tuple[ApiToken, str]:
    """A new active token named ``name`` (owned by ``user``, if given). Returns the row and
    the token itself, which is not stored anywhere: show it once."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:SHOWN_CHARACTERS],
        user=user,
        is_active=True,
        created_at=timezone.now(),
    )
    return token, raw


def authenticate(raw: str) -> ApiToken | None:
    """The active token ``raw`` is, or None.

    Looked up by its hash: the database compares hashes, never the token, so the time the
    lookup takes tells nothing about a secret (finding a token with a given hash prefix is
    a preimage search)."""
    if not raw or len(raw) > 512:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=hash_token(raw), is_active=True)
        .first()
    )
    if token is None:
        return None
    if token.user is not None and not token.user.is_active:
        return None
    now = timezone.now()
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at < stale:
        # Conditional, so concurrent requests write it once.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
