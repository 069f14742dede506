"""Signing, the other side of ``verify``: what a sender puts in the headers. Used for outbound
delivery and by tests; the official receivers (``qstash.Receiver``, ``standardwebhooks``) accept
what these produce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

import jwt

from django_bgjobs.webhooks.verify.qstash import ISSUER, body_hash
from django_bgjobs.webhooks.verify.standard import secret_key

_BASE58 = "".join(c for c in string.ascii_letters + string.digits if c not in "0OIl")
LIFETIME = 300  # seconds, as QStash's own tokens


def qstash_signature(body: bytes, url: str, key: str, now: float) -> str:
    """An ``Upstash-Signature`` JWT, with the claims QStash sends (keys in alphabetical order,
    ``aud`` empty, a string ``jti``). Back-dated a second, as receivers with no leeway (the
    Python SDK's) reject an ``iat`` a moment in their future."""
    issued = int(now) - 1
    claims = {
        "aud": "",
        "body": body_hash(body) + "=",
        "exp": issued + LIFETIME,
        "iat": issued,
        "iss": ISSUER,
        "jti": "jwt_" + "".join(secrets.choice(_BASE58) for _ in range(28)),
        "nbf": issued,
        "sub": url,
    }
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": "JWT"})


def standard_signature(body: bytes, message_id: str, timestamp: int, secret: str | bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) of a Standard Webhooks delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
