"""QStash: ``Upstash-Signature`` is an HS256 JWT keyed with the whole ``sig_...`` string,
issuer ``Upstash``, subject the URL the message was sent to, ``body`` = base64url(sha256(raw
body)). The current key is tried, then the next one (rotation). Unlike the official SDK, the
verdict says which check failed (the SDK reports every failure as a bad signature), the leeway
works, the subject is compared with the endpoint's configured public URL, and bodies are bytes
(binary bodies verify)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

import jwt

from django_bgjobs.webhooks.verify.base import Headers, Verdict, header, same

ISSUER = "Upstash"


def body_hash(body: bytes) -> str:
    """base64url(sha256(body)) without padding (QStash pads; both forms are compared bare)."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")


def verify_qstash(
    body: bytes,
    headers: Headers,
    *,
    keys: Sequence[str],
    url: str | None,
    now: float,
    leeway: int = 30,
) -> Verdict:
    token = header(headers, "Upstash-Signature")
    if token is None:
        return Verdict.bad_request("missing_header", "Upstash-Signature is missing")
    if token.count(".") != 2:
        return Verdict.bad_request("malformed_header", "Upstash-Signature is not a JWT")
    claims: dict[str, Any] | None = None
    for key in keys:
        try:
            claims = _decode(token, key, now, leeway)
        except jwt.InvalidSignatureError:
            continue  # not this key: try the next one
        except jwt.ExpiredSignatureError:
            return Verdict.reject("expired", "the token has expired (exp, with the leeway)")
        except jwt.ImmatureSignatureError:
            return Verdict.reject(
                "not_yet_valid", "the token is not valid yet (nbf/iat in the future)"
            )
        except jwt.InvalidIssuerError:
            return Verdict.reject("issuer", "the token's issuer is not Upstash")
        except jwt.InvalidAlgorithmError:
            return Verdict.reject("algorithm", "only HS256 tokens are accepted")
        except jwt.MissingRequiredClaimError as exc:
            return Verdict.reject("claims", f"the token has no {exc.claim!r} claim")
        except jwt.DecodeError:
            return Verdict.bad_request("malformed_header", "Upstash-Signature is not a JWT")
        except jwt.InvalidTokenError as exc:
            return Verdict.reject(
                "claims", f"the token's claims are invalid ({type(exc).__name__})"
            )
        break
    if claims is None:
        return Verdict.reject(
            "signature", "neither the current nor the next signing key produces this signature"
        )
    if url is not None and not same(str(claims.get("sub", "")), url):
        return Verdict.reject(
            "subject",
            "the token was signed for another URL (sub) than this endpoint's configured public URL",
        )
    if not same(str(claims.get("body", "")).rstrip("="), body_hash(body)):
        return Verdict.reject("body_hash", "the body does not match the token's body hash")
    return Verdict.accept(header(headers, "Upstash-Message-Id") or "")


def _decode(token: str, key: str, now: float, leeway: int) -> dict[str, Any]:
    # PyJWT checks the signature (constant-time), the algorithm, the issuer and the required
    # claims; the times are checked here against ``now``, which the caller passes (fixed clocks
    # in tests), with the leeway. nbf may be anything up to now: real tokens carry Go's zero
    # time (-62135596800).
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["HS256"],
        issuer=ISSUER,
        options={
            "require": ["iss", "sub", "exp", "nbf", "body"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise jwt.InvalidTokenError("exp and nbf must be numbers")
    if exp <= now - leeway:
        raise jwt.ExpiredSignatureError("expired")
    if nbf > now + leeway or (isinstance(iat, int | float) and iat > now + leeway):
        raise jwt.ImmatureSignatureError("not yet valid")
    return claims
