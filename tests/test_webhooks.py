"""Webhooks in, through the real views: the generic receiver stores each verified delivery and
enqueues its handler in one transaction; redeliveries are acknowledged once; every bad request
gets its status and a short JSON error; the decorator, the mixin and the DRF class guard views
of one's own. The fuzz test sends 10,000 corrupted requests: none is accepted."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import stripe
from django.test import Client, override_settings
from standardwebhooks import Webhook

from django_bgjobs.models import InboundWebhook, Job
from django_bgjobs.testing import capture_jobs
from django_bgjobs.webhooks.sign import qstash_signature, standard_signature

CURRENT, NEXT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r", "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
CLERK = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STRIPE = "whsec_test_secret_for_stripe_webhooks"
GITHUB = "It's a Secret to Everybody"
GENERIC_URL = "https://shop.example.com/webhooks/qstash-generic/"

# Real commits: a view's transaction commits and publishes its job, as in production.
# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]


@pytest.fixture
def captured():  # type: ignore[no-untyped-def]
    """Jobs the views enqueue, published (to this list) when their transaction commits."""
    with capture_jobs() as jobs:
        yield jobs


def post(path: str, body: bytes, headers: dict[str, str], client: Client | None = None):  # type: ignore[no-untyped-def]
    return (client or Client()).post(path, body, content_type="application/json", headers=headers)


def clerk_headers(
    body: bytes, message_id: str = "msg_1", at: float | None = None, secret: str = CLERK
) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {
        "svix-id": message_id,
        "svix-timestamp": str(stamp),
        "svix-signature": standard_signature(body, message_id, stamp, secret),
    }


def test_a_verified_delivery_is_stored_and_its_handler_enqueued_once(captured):
    body = json.dumps({"type": "user.created", "data": {"id": "user_1"}}).encode()
    first = post("/webhooks/clerk/", body, clerk_headers(body))
    again = post("/webhooks/clerk/", body, clerk_headers(body))  # Svix retries
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["receipt"] == first.json()["receipt"]
    receipt = InboundWebhook.objects.get()
    assert bytes(receipt.body) == body and receipt.message_id == "msg_1"
    assert receipt.headers["svix-id"] == "msg_1" and "svix-signature" not in receipt.headers
    assert [job.name for job in captured.jobs] == ["tests.jobs.handle_webhook"]
    assert captured.run_all()[0].result == {"endpoint": "clerk", "bytes": len(body)}


def test_each_provider_through_the_generic_receiver(captured):
    stripe_body = json.dumps({"id": "evt_9", "type": "invoice.paid"}).encode()
    stripe_header = stripe.WebhookSignature.generate_signature_header(stripe_body.decode(), STRIPE)
    github_body = b"Hello, World!"
    qstash_body = bytes(range(256))  # binary: the official Python receiver cannot take it
    stamp = int(time.time())
    svix = Webhook(CLERK).sign("msg_lib", datetime.fromtimestamp(stamp, tz=UTC), "{}")
    cases = [
        ("stripe", stripe_body, {"Stripe-Signature": stripe_header}, "evt_9"),
        (
            "github",
            github_body,
            {
                "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a"
                "37570b6d7586c22c46f4379c8b043e17",
                "X-GitHub-Delivery": "d-1",
            },
            "d-1",
        ),
        (
            "qstash-generic",
            qstash_body,
            {
                "Upstash-Signature": qstash_signature(
                    qstash_body, GENERIC_URL, CURRENT, time.time()
                ),
                "Upstash-Message-Id": "msg_q",
            },
            "msg_q",
        ),
        (
            "clerk",
            b"{}",
            {"webhook-id": "msg_lib", "webhook-timestamp": str(stamp), "webhook-signature": svix},
            "msg_lib",
        ),
    ]
    for name, body, headers, message_id in cases:
        response = post(f"/webhooks/{name}/", body, headers)
        assert response.status_code == 202, (name, response.json())
        receipt = InboundWebhook.objects.get(pk=response.json()["receipt"])
        assert (receipt.message_id, bytes(receipt.body)) == (message_id, body)
        assert Job.objects.filter(pk=receipt.job_id).exists()
    assert len(captured.jobs) == len(cases)


@pytest.mark.parametrize(
    ("path", "method", "body", "headers", "status", "check"),
    [
        ("/webhooks/nobody/", "post", b"{}", {}, 404, "endpoint"),
        ("/webhooks/clerk/", "get", b"", {}, 405, "method"),
        ("/webhooks/clerk/", "post", b"{}", {}, 400, "missing_header"),
        (
            "/webhooks/clerk/",
            "post",
            b"{}",
            {"svix-id": "m", "svix-timestamp": "soon", "svix-signature": "v1,AAAA"},
            400,
            "malformed_header",
        ),
        ("/webhooks/stripe/", "post", b"{}", {"Stripe-Signature": "t=1,v1=00"}, 401, "signature"),
        ("/webhooks/clerk/", "post", b"x" * (256 * 1024 + 1), {}, 413, "too_large"),
    ],
)
def test_bad_requests_get_their_status_and_a_short_json_error(
    path, method, body, headers, status, check
):
    client = Client()
    if method == "get":
        response = client.get(path)
    else:
        response = post(path, body, headers, client)
    assert response.status_code == status
    assert response.json()["check"] == check and response.json()["error"]
    assert not InboundWebhook.objects.exists() and not Job.objects.exists()


def test_too_large_is_refused_before_any_hashing(monkeypatch):
    from django_bgjobs.webhooks.endpoints import Endpoint

    def no_hashing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("verified a body that was too large")

    monkeypatch.setattr(Endpoint, "verify", no_hashing)
    body = b"x" * (256 * 1024 + 1)
    assert post("/webhooks/clerk/", body, clerk_headers(body)).status_code == 413


def test_rejected_deliveries_are_recorded_without_body_when_asked():
    from django.conf import settings

    body = b'{"a": 1}'
    with override_settings(BGJOBS={**settings.BGJOBS, "WEBHOOK_STORE_REJECTED": True}):
        headers = clerk_headers(body, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
        assert post("/webhooks/clerk/", body, headers).status_code == 401
    receipt = InboundWebhook.objects.get()
    assert (receipt.verified, receipt.failed_check, bytes(receipt.body), receipt.job) == (
        False,
        "signature",
        b"",
        None,
    )


def test_csrf_is_exempt_on_webhook_views_only(captured):
    client = Client(enforce_csrf_checks=True)
    body = b"{}"
    assert post("/webhooks/clerk/", body, clerk_headers(body), client).status_code == 202
    assert client.post("/admin/login/", {"username": "x"}).status_code == 403


def test_the_decorator_the_mixin_and_the_drf_class_guard_your_own_views():
    body = b'{"user_id": 42}'
    url = "https://shop.example.com/own/qstash"
    token = qstash_signature(body, url, NEXT, time.time())  # after a key rotation
    ok = post("/own/qstash", body, {"Upstash-Signature": token, "Upstash-Message-Id": "m1"})
    assert ok.status_code == 200 and ok.json() == {"message_id": "m1", "bytes": len(body)}
    # Signed for another endpoint of the same QStash account: the subject check refuses it.
    elsewhere = qstash_signature(body, "https://shop.example.com/other", CURRENT, time.time())
    refused = post("/own/qstash", body, {"Upstash-Signature": elsewhere})
    assert (refused.status_code, refused.json()["check"]) == (401, "subject")
    drf_ok = post("/own/drf", body, {"Upstash-Signature": token, "Upstash-Message-Id": "m2"})
    assert drf_ok.status_code == 200 and drf_ok.json() == {"message_id": "m2"}
    drf_bad = post("/own/drf", body + b" ", {"Upstash-Signature": token})
    assert drf_bad.status_code == 401 and drf_bad.json()["detail"]
    stripe_body = b'{"id": "evt_7"}'
    header = stripe.WebhookSignature.generate_signature_header(stripe_body.decode(), STRIPE)
    assert post("/own/stripe", stripe_body, {"Stripe-Signature": header}).json() == {
        "message_id": "evt_7"
    }
    assert post("/own/stripe", stripe_body, {}).status_code == 400


# --- fuzz --------------------------------------------------------------------------------------


def _valid_requests(rng: random.Random) -> list[tuple[str, bytes, dict[str, str]]]:
    body = json.dumps({"n": rng.randrange(10**9), "pad": "x" * rng.randrange(200)}).encode()
    now = time.time()
    stamp = int(now)
    stripe_header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE)
    import hashlib
    import hmac

    github = "sha256=" + hmac.new(GITHUB.encode(), body, hashlib.sha256).hexdigest()
    message = f"msg_{rng.randrange(10**12)}"
    return [
        ("clerk", body, clerk_headers(body, message, stamp)),
        ("stripe", body, {"Stripe-Signature": stripe_header}),
        ("github", body, {"X-Hub-Signature-256": github, "X-GitHub-Delivery": message}),
        (
            "qstash-generic",
            body,
            {
                "Upstash-Signature": qstash_signature(body, GENERIC_URL, CURRENT, now),
                "Upstash-Message-Id": message,
            },
        ),
    ]


def _flip_body(rng, body, headers):  # type: ignore[no-untyped-def]
    data = bytearray(body)
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data), headers


def _tamper_header(rng, body, headers):  # type: ignore[no-untyped-def]
    name = rng.choice([k for k in headers if "id" not in k.lower() and "delivery" not in k.lower()])
    value = list(headers[name])
    i = rng.randrange(len(value))
    value[i] = rng.choice([c for c in "0123456789abcdefABCDEF+/=,._-" if c != value[i]])
    return body, {**headers, name: "".join(value)}


def _shift_time(rng, body, headers):  # type: ignore[no-untyped-def]
    if "svix-timestamp" in headers:  # re-signed with the wrong time: only the window fails
        at = time.time() + rng.choice([-1, 1]) * rng.randrange(302, 10**6)
        return body, clerk_headers(body, headers["svix-id"], at)
    if "Stripe-Signature" in headers:
        at = int(time.time()) + rng.choice([-1, 1]) * rng.randrange(302, 10**6)
        return body, {
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                body.decode(), STRIPE, timestamp=at
            )
        }
    if "Upstash-Signature" in headers:
        at = time.time() + rng.choice([-1, 1]) * rng.randrange(400, 10**6)
        return body, {
            **headers,
            "Upstash-Signature": qstash_signature(body, GENERIC_URL, CURRENT, at),
        }
    return _flip_body(rng, body, headers)  # GitHub has no timestamp


def _drop_header(rng, body, headers):  # type: ignore[no-untyped-def]
    signature = [k for k in headers if "sig" in k.lower()]
    return body, {k: v for k, v in headers.items() if k not in signature}


def _old_key(rng, body, headers):  # type: ignore[no-untyped-def]
    """A secret retired in a rotation: signed correctly, with a key no longer configured."""
    if "svix-id" in headers:
        return body, clerk_headers(
            body, headers["svix-id"], secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
        )
    if "Stripe-Signature" in headers:
        return body, {
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                body.decode(), "whsec_retired"
            )
        }
    if "Upstash-Signature" in headers:  # NEXT is not configured on the generic endpoint
        return body, {
            **headers,
            "Upstash-Signature": qstash_signature(body, GENERIC_URL, NEXT, time.time()),
        }
    import hashlib
    import hmac

    return body, {
        **headers,
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"retired", body, hashlib.sha256).hexdigest(),
    }


def _oversize(rng, body, headers):  # type: ignore[no-untyped-def]
    return body + b" " * (1024 * 1024), headers


MUTATIONS: list[Callable[..., tuple[bytes, dict[str, str]]]] = [
    _flip_body,
    _tamper_header,
    _shift_time,
    _drop_header,
    _old_key,
    _oversize,
]


def test_fuzz_ten_thousand_corrupted_requests_none_accepted(captured):
    rng = random.Random(20261129)
    client = Client()
    outcomes: dict[int, int] = {}
    sent = 0
    # A valid delivery first, then replays of it: acknowledged, never processed again.
    name, body, headers = _valid_requests(rng)[0]
    assert post(f"/webhooks/{name}/", body, headers, client).status_code == 202
    for _ in range(50):
        assert post(f"/webhooks/{name}/", body, headers, client).json()["status"] == "duplicate"
    while sent < 10_000:
        for name, body, headers in _valid_requests(rng):
            mutate = MUTATIONS[sent % len(MUTATIONS)]
            bad_body, bad_headers = mutate(rng, body, headers)
            response = post(f"/webhooks/{name}/", bad_body, bad_headers, client)
            outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
            sent += 1
    assert sent >= 10_000
    assert not {s for s in outcomes if s < 300}, outcomes  # 0 accepted
    assert set(outcomes) <= {400, 401, 413}
    assert InboundWebhook.objects.count() == 1 and len(captured.jobs) == 1
