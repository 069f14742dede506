"""What every verifier returns, and the small helpers they share."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

# Case-insensitive in practice: Django's request.headers, or a dict with lower-case keys.
Headers = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``ok``, or which check failed (``check``, a short stable name) and the HTTP status it
    deserves: 400 for a request that is not a webhook of this kind (missing or malformed
    headers), 401 for one that fails verification. ``message_id`` is the provider's id of the
    delivery (stable across its retries), for deduplication."""

    ok: bool
    check: str = ""
    detail: str = ""
    status: int = 200
    message_id: str = ""

    @classmethod
    def accept(cls, message_id: str = "") -> Verdict:
        return cls(True, message_id=message_id)

    @classmethod
    def bad_request(cls, check: str, detail: str) -> Verdict:
        return cls(False, check, detail, 400)

    @classmethod
    def reject(cls, check: str, detail: str) -> Verdict:
        return cls(False, check, detail, 401)


def header(headers: Headers, *names: str) -> str | None:
    """The first of ``names`` present (any case); None if none is."""
    lowered: dict[str, str] | None = None
    for name in names:
        value = headers.get(name)
        if value is None:
            if lowered is None:
                lowered = {k.lower(): v for k, v in headers.items()}
            value = lowered.get(name.lower())
        if value is not None:
            return value
    return None


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two secret-derived values."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
