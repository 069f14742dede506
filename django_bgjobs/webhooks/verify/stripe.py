"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``, HMAC-SHA256 of
``"{t}.{body}"`` keyed with the whole ``whsec_...`` string (not base64-decoded). Several ``v1``
during a secret roll; ``v0`` is ignored. The timestamp is checked both ways (Stripe's own
library only rejects old ones)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from django_bgjobs.webhooks.verify.base import Headers, Verdict, header, same


def verify_stripe(
    body: bytes, headers: Headers, *, secrets: Sequence[str], now: float, tolerance: int = 300
) -> Verdict:
    value = header(headers, "Stripe-Signature")
    if value is None:
        return Verdict.bad_request("missing_header", "Stripe-Signature is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, part = item.strip().partition("=")
        if not sep:
            return Verdict.bad_request(
                "malformed_header", "Stripe-Signature has an item without '='"
            )
        if key == "t":
            try:
                timestamp = int(part.strip())
            except ValueError:
                return Verdict.bad_request(
                    "malformed_header", "Stripe-Signature t= is not an integer"
                )
        elif key == "v1":
            signatures.append(part.strip())  # exact: Stripe sends lower-case hex
    if timestamp is None or not signatures:
        return Verdict.bad_request("malformed_header", "Stripe-Signature needs t= and a v1=")
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets]
    if not any(same(want, given) for want in expected for given in signatures):
        return Verdict.reject("signature", "no configured secret produces a v1 signature")
    if abs(now - timestamp) > tolerance:
        return Verdict.reject("timestamp", f"the timestamp is more than {tolerance}s from now")
    return Verdict.accept(_event_id(body))


def _event_id(body: bytes) -> str:
    """Stripe's event id (``evt_...``), the same on every retry of the delivery."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    return str(event.get("id") or "") if isinstance(event, dict) else ""
