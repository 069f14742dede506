"""Standard Webhooks (Svix, and through it Resend and Clerk): ``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` (or the same under ``svix-``). HMAC-SHA256 of
``"{id}.{timestamp}.{body}"``, base64, as ``v1,<sig>``; several space-separated signatures
(rotation); secrets are ``whsec_`` + base64 of the key (decoded, unlike Stripe's). ±5 minutes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from django_bgjobs.webhooks.verify.base import Headers, Verdict, header, same

TOLERANCE = 300


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key of a Standard Webhooks secret: ``whsec_`` + base64, bare base64, or bytes."""
    if isinstance(secret, bytes):
        return secret
    text = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None


def verify_standard(
    body: bytes,
    headers: Headers,
    *,
    secrets: Sequence[str | bytes],
    now: float,
    tolerance: int = TOLERANCE,
) -> Verdict:
    message_id = header(headers, "webhook-id", "svix-id")
    stamp = header(headers, "webhook-timestamp", "svix-timestamp")
    signature = header(headers, "webhook-signature", "svix-signature")
    if message_id is None or stamp is None or signature is None:
        return Verdict.bad_request(
            "missing_header",
            "webhook-id, webhook-timestamp and webhook-signature (or svix-*) are required",
        )
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        return Verdict.bad_request("malformed_header", "webhook-timestamp is not an integer")
    if "." in message_id:
        return Verdict.bad_request("malformed_header", "webhook-id may not contain '.'")
    given = []
    for entry in signature.split():
        version, sep, value = entry.partition(",")
        if not sep:
            return Verdict.bad_request(
                "malformed_header", "webhook-signature entries are 'v1,<base64>'"
            )
        if version == "v1":
            given.append(value)
    if not given:
        return Verdict.reject("signature", "no v1 signature in webhook-signature")
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = [
        base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest())
        for secret in secrets
    ]
    if not any(same(want, have) for want in expected for have in given):
        return Verdict.reject("signature", "no configured secret produces a v1 signature")
    if now - timestamp > tolerance:
        return Verdict.reject("timestamp", f"the timestamp is more than {tolerance}s old")
    if timestamp - now > tolerance:
        return Verdict.reject("timestamp", f"the timestamp is more than {tolerance}s ahead")
    return Verdict.accept(message_id)
