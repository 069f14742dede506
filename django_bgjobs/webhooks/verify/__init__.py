"""Signature verifiers: pure functions, raw body bytes and headers in, a ``Verdict`` out.

One per scheme: ``qstash`` (Upstash-Signature JWT), ``standard`` (Standard Webhooks: Svix,
Resend, Clerk), ``stripe`` (Stripe-Signature) and ``github`` (X-Hub-Signature-256). Every
comparison of a secret-derived value is constant-time (``hmac.compare_digest``); a verdict
names the check that failed without echoing a secret or an expected value.
"""

from django_bgjobs.webhooks.verify.base import Headers, Verdict
from django_bgjobs.webhooks.verify.github import verify_github
from django_bgjobs.webhooks.verify.qstash import verify_qstash
from django_bgjobs.webhooks.verify.standard import verify_standard
from django_bgjobs.webhooks.verify.stripe import verify_stripe

__all__ = [
    "Headers",
    "Verdict",
    "verify_github",
    "verify_qstash",
    "verify_standard",
    "verify_stripe",
]
