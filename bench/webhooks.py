#!/usr/bin/env python
"""Webhooks in, per request, on PostgreSQL + Redis: ``python bench/webhooks.py [--requests N]``.

For each scheme, N signed deliveries go through the generic receiver view (built with Django's
RequestFactory, so no HTTP server is timed): verify the signature, INSERT the receipt and the
handler job in one transaction, commit, publish the job to Redis. Printed: p50/p99 per request,
next to two baselines measured in the same run: the verification alone, and bare Celery's
``.delay()`` of a no-op task (what a view that trusts its caller and queues the payload costs).
Target (issue 5): p50 <= 5 ms for verify + store + enqueue.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

STRIPE = "whsec_bench_secret_for_stripe"
CLERK = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GITHUB = "bench secret"
QSTASH = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
QSTASH_URL = "https://bench.example.com/webhooks/qstash/"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


def signed(scheme: str, body: bytes, n: int) -> dict[str, str]:
    from django_bgjobs.webhooks.sign import qstash_signature, standard_signature

    now = time.time()
    if scheme == "stripe":
        stamp = int(now)
        mac = hmac.new(STRIPE.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        return {"HTTP_STRIPE_SIGNATURE": f"t={stamp},v1={mac}"}
    if scheme == "standard":
        stamp = int(now)
        return {
            "HTTP_WEBHOOK_ID": f"msg_{n}",
            "HTTP_WEBHOOK_TIMESTAMP": str(stamp),
            "HTTP_WEBHOOK_SIGNATURE": standard_signature(body, f"msg_{n}", stamp, CLERK),
        }
    if scheme == "github":
        mac = hmac.new(GITHUB.encode(), body, hashlib.sha256).hexdigest()
        return {"HTTP_X_HUB_SIGNATURE_256": f"sha256={mac}", "HTTP_X_GITHUB_DELIVERY": f"d-{n}"}
    return {
        "HTTP_UPSTASH_SIGNATURE": qstash_signature(body, QSTASH_URL, QSTASH, now),
        "HTTP_UPSTASH_MESSAGE_ID": f"msg_{n}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    import django
    from django.conf import settings

    from bench.run import ensure_database

    ensure_database()  # before Django connects: bgjobs_bench may not exist yet

    settings.BGJOBS["WEBHOOKS"] = {
        "stripe": {"scheme": "stripe", "secrets": [STRIPE], "job": "bench.jobs.handle_webhook"},
        "standard": {"scheme": "standard", "secrets": [CLERK], "job": "bench.jobs.handle_webhook"},
        "github": {"scheme": "github", "secrets": [GITHUB], "job": "bench.jobs.handle_webhook"},
        "qstash": {
            "scheme": "qstash",
            "secrets": [QSTASH],
            "url": QSTASH_URL,
            "job": "bench.jobs.handle_webhook",
        },
    }
    django.setup()
    import redis
    from django.core.management import call_command
    from django.test import RequestFactory

    from bench.tasks import noop
    from django_bgjobs.models import InboundWebhook, Job
    from django_bgjobs.webhooks.endpoints import endpoint
    from django_bgjobs.webhooks.views import receive

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    factory = RequestFactory()
    body = b'{"type": "invoice.paid", "data": {"object": {"id": "in_1", "amount_paid": 4200}}}'
    database = settings.DATABASES["default"]["NAME"]
    print(
        f"# {args.requests} deliveries per scheme, {len(body)}-byte JSON body, {database} on "
        f"PostgreSQL, broker {settings.CELERY_BROKER_URL}"
    )
    for _ in range(200):
        noop.delay()
    bare = []
    for _ in range(args.requests):
        started = time.perf_counter()
        noop.delay()
        bare.append((time.perf_counter() - started) * 1000)
    print(f"{'what':<34} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'bare Celery .delay()':<34} {pct(bare, 0.5):>8.3f} {pct(bare, 0.99):>8.3f}")
    n = 0
    for scheme in ("qstash", "standard", "stripe", "github"):
        found = endpoint(scheme)
        assert found is not None
        verify, full = [], []
        for _ in range(args.requests):
            n += 1
            headers = signed(scheme, body, n)
            plain = {k[5:].replace("_", "-"): v for k, v in headers.items()}
            started = time.perf_counter()
            assert found.verify(body, plain).ok
            verify.append((time.perf_counter() - started) * 1000)
            request = factory.post(
                f"/webhooks/{scheme}/", body, content_type="application/json", **headers
            )
            started = time.perf_counter()
            response = receive(request, scheme)
            full.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.content
        print(f"{scheme + ': verify only':<34} {pct(verify, 0.5):>8.3f} {pct(verify, 0.99):>8.3f}")
        print(
            f"{scheme + ': verify + store + enqueue':<34} {pct(full, 0.5):>8.3f} "
            f"{pct(full, 0.99):>8.3f}   (target p50 <= 5 ms: "
            f"{'met' if pct(full, 0.5) <= 5 else 'MISSED'})"
        )
    print(
        f"# {InboundWebhook.objects.count()} receipts, "
        f"{Job.objects.filter(name='bench.jobs.handle_webhook').count()} handler jobs"
    )
    InboundWebhook.objects.all().delete()
    Job.objects.filter(name="bench.jobs.handle_webhook").delete()


if __name__ == "__main__":
    main()
