"""GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``. No timestamp: a
captured delivery verifies forever, so deduplicate on ``X-GitHub-Delivery``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from django_bgjobs.webhooks.verify.base import Headers, Verdict, header, same

PREFIX = "sha256="


def verify_github(body: bytes, headers: Headers, *, secrets: Sequence[str]) -> Verdict:
    signature = header(headers, "X-Hub-Signature-256")
    if signature is None:
        return Verdict.bad_request("missing_header", "X-Hub-Signature-256 is missing")
    signature = signature.strip()
    if not signature.startswith(PREFIX) or len(signature) != len(PREFIX) + 64:
        return Verdict.bad_request(
            "malformed_header", "X-Hub-Signature-256 is not sha256=<64 hex digits>"
        )
    given = signature[len(PREFIX) :]  # exact: GitHub sends lower-case hex
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if same(expected, given):
            return Verdict.accept(header(headers, "X-GitHub-Delivery") or "")
    return Verdict.reject("signature", "no configured secret produces this signature")
