"""The verifiers against the official libraries and the providers' published vectors: what the
real senders sign passes ours; what ours accepts the real receivers accept; each bad request
fails the check it should, with the status it should."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import jwt
import pytest
import stripe
from qstash import Receiver
from standardwebhooks import Webhook

from django_bgjobs.webhooks.sign import qstash_signature, standard_signature
from django_bgjobs.webhooks.verify import (
    verify_github,
    verify_qstash,
    verify_standard,
    verify_stripe,
)

CURRENT, NEXT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r", "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
URL = "https://shop.example.com/api/jobs/welcome"
NOW = time.time()


def qstash(body: bytes, token: str, url: str | None = URL, now: float = NOW, **kw):  # type: ignore[no-untyped-def]
    return verify_qstash(
        body,
        {"Upstash-Signature": token, "Upstash-Message-Id": "msg_1"},
        keys=[CURRENT, NEXT],
        url=url,
        now=now,
        **kw,
    )


# --- QStash ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"user_id": 42}', b"", bytes(range(256))])
def test_our_qstash_tokens_pass_the_official_receiver_and_ours(body):
    token = qstash_signature(body, URL, CURRENT, time.time())
    verdict = qstash(body, token, now=time.time())
    assert verdict.ok and verdict.message_id == "msg_1"
    if body == bytes(range(256)):
        return  # the official receiver takes the body as str: binary bodies cannot be passed
    Receiver(CURRENT, NEXT).verify(signature=token, body=body.decode(), url=URL)


def test_a_token_signed_like_qstash_by_hand_verifies():
    """The documented claims, made with PyJWT directly (the real token shape: padded body
    hash, aud "", Go's zero nbf as seen in a 2026 token)."""
    import base64
    import hashlib

    body = b"Hello World"
    claims = {
        "aud": "",
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(),
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "iss": "Upstash",
        "jti": "jwt_x",
        "nbf": -62135596800,
        "sub": URL,
    }
    assert claims["body"] == "pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4="
    assert qstash(body, jwt.encode(claims, NEXT, algorithm="HS256")).ok  # the next key


@pytest.mark.parametrize(
    ("change", "check", "status"),
    [
        ({"key": "sig_wrongwrongwrongwrongwrongwrong"}, "signature", 401),
        ({"url": "http://internal-host/api/jobs/welcome"}, "subject", 401),
        ({"body": b'{"user_id": 43}'}, "body_hash", 401),
        ({"now": NOW + 400}, "expired", 401),
        ({"now": NOW - 100}, "not_yet_valid", 401),
    ],
)
def test_each_qstash_check_is_named(change, check, status):
    body = b'{"user_id": 42}'
    token = qstash_signature(body, change.get("url", URL), change.get("key", CURRENT), NOW)
    verdict = qstash(change.get("body", body), token, url=URL, now=change.get("now", NOW))
    assert (verdict.ok, verdict.check, verdict.status) == (False, check, status)
    assert CURRENT not in verdict.detail and URL not in verdict.detail


def test_qstash_leeway_is_honoured_and_alg_pinned():
    body = b"x"
    token = qstash_signature(body, URL, CURRENT, NOW)
    assert qstash(body, token, now=NOW + 320, leeway=30).ok  # expired 20 s ago, leeway 30
    assert not qstash(body, token, now=NOW + 320, leeway=0).ok
    hs384 = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}), CURRENT, algorithm="HS384"
    )
    assert qstash(body, hs384).check == "algorithm"
    assert qstash(body, "not-a-jwt").status == 400
    assert verify_qstash(body, {}, keys=[CURRENT], url=URL, now=NOW).check == "missing_header"
    no_body = jwt.encode(
        {"iss": "Upstash", "sub": URL, "exp": NOW + 60, "nbf": NOW}, CURRENT, algorithm="HS256"
    )
    assert qstash(body, no_body).check == "claims"


# --- Standard Webhooks ------------------------------------------------------------------------


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_published_standard_webhooks_vector():
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert standard_signature(body, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, SECRET) == expected
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": expected,
    }
    assert verify_standard(body, headers, secrets=[SECRET], now=1614265330).ok


@pytest.mark.parametrize("prefix", ["webhook", "svix"])
def test_headers_signed_by_the_official_library_pass(prefix):
    body = b'{"type": "user.created", "data": {"id": "user_1"}}'
    stamp = int(time.time())
    signature = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(stamp, tz=UTC), body.decode())
    headers = {
        f"{prefix}-id": "msg_1",
        f"{prefix}-timestamp": str(stamp),
        f"{prefix}-signature": signature,
    }
    verdict = verify_standard(body, headers, secrets=[SECRET], now=time.time())
    assert verdict.ok and verdict.message_id == "msg_1"
    # And ours is what the library verifies.
    ours = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard_signature(body, "msg_2", stamp, SECRET),
    }
    Webhook(SECRET).verify(body.decode(), ours)


def test_standard_rotation_several_signatures_and_the_tolerance():
    old, new = SECRET, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    body, stamp = b"{}", int(NOW)
    both = " ".join(standard_signature(body, "m", stamp, key) for key in (new, old))
    headers = {"webhook-id": "m", "webhook-timestamp": str(stamp), "webhook-signature": both}
    assert verify_standard(body, headers, secrets=[old], now=NOW).ok
    assert verify_standard(body, headers, secrets=[new], now=NOW).ok
    only_new = {**headers, "webhook-signature": standard_signature(body, "m", stamp, new)}
    assert verify_standard(body, only_new, secrets=[old], now=NOW).check == "signature"
    assert verify_standard(body, headers, secrets=[old], now=NOW + 301).check == "timestamp"
    assert verify_standard(body, headers, secrets=[old], now=NOW - 301).check == "timestamp"
    bad = {**headers, "webhook-signature": "garbage " + both}
    assert verify_standard(body, bad, secrets=[old], now=NOW).status == 400


# --- Stripe ------------------------------------------------------------------------------------


STRIPE_SECRET = "whsec_test_secret_for_stripe_webhooks"


def test_headers_made_by_stripes_library_pass():
    body = json.dumps({"id": "evt_1", "type": "customer.created"}).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)
    verdict = verify_stripe(
        body, {"Stripe-Signature": header}, secrets=[STRIPE_SECRET], now=time.time()
    )
    assert verdict.ok and verdict.message_id == "evt_1"


def test_stripe_several_v1_and_both_directions_of_the_tolerance():
    body = b'{"id": "evt_2"}'
    stamp = int(NOW)
    good = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRET, timestamp=stamp
    )
    other = stripe.WebhookSignature.generate_signature_header(
        body.decode(), "whsec_other", timestamp=stamp
    )
    rolled = f"{other},{good.split(',', 1)[1]},v0=deadbeef"
    assert verify_stripe(body, {"Stripe-Signature": rolled}, secrets=[STRIPE_SECRET], now=NOW).ok
    future = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRET, timestamp=stamp + 3600
    )
    # Stripe's own library accepts a timestamp an hour ahead; ours does not.
    stripe.WebhookSignature.verify_header(body.decode(), future, STRIPE_SECRET, tolerance=300)
    assert (
        verify_stripe(body, {"Stripe-Signature": future}, secrets=[STRIPE_SECRET], now=NOW).check
        == "timestamp"
    )
    assert (
        verify_stripe(body, {"Stripe-Signature": "t=1"}, secrets=[STRIPE_SECRET], now=NOW).status
        == 400
    )


# --- GitHub ------------------------------------------------------------------------------------


def test_the_published_github_vector():
    headers = {
        "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c"
        "46f4379c8b043e17",
        "X-GitHub-Delivery": "guid-1",
    }
    verdict = verify_github(b"Hello, World!", headers, secrets=["It's a Secret to Everybody"])
    assert verdict.ok and verdict.message_id == "guid-1"
    assert (
        verify_github(b"Hello, World?", headers, secrets=["It's a Secret to Everybody"]).check
        == "signature"
    )
    assert verify_github(b"x", {"X-Hub-Signature-256": "sha1=00"}, secrets=["s"]).status == 400


def test_only_constant_time_comparisons_in_the_verifiers():
    """A static check: no == / != on secret-derived values in the verifier modules."""
    import pathlib
    import re

    import django_bgjobs.webhooks.verify as package

    for path in pathlib.Path(package.__file__).parent.glob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            if re.search(r"(signature|expected|digest|given|want)\w*\s*[!=]=", line):
                pytest.fail(f"{path.name}: {line.strip()}")
