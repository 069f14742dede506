"""A verified delivery becomes a receipt row and its handler job, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone

from django_bgjobs.decorators import JobFunction
from django_bgjobs.models import InboundWebhook, Job
from django_bgjobs.registry import registry
from django_bgjobs.webhooks.endpoints import Endpoint, kept_headers
from django_bgjobs.webhooks.verify import Headers, Verdict


@dataclass(frozen=True, slots=True)
class Stored:
    receipt: InboundWebhook
    duplicate: bool  # the provider sent this message before: nothing new was done


def handler(endpoint: Endpoint) -> JobFunction[..., object] | None:
    if endpoint.job is None:
        return None
    spec = registry.get(endpoint.job)
    if spec is None:
        raise ImproperlyConfigured(
            f"BGJOBS['WEBHOOKS'][{endpoint.name!r}]['job'] is {endpoint.job!r}, which no @bgjob "
            "is named (the dotted path of the function, or its @bgjob(name=...))"
        )
    return JobFunction(spec)


def store(endpoint: Endpoint, body: bytes, headers: Headers, verdict: Verdict) -> Stored:
    """Keep the verified delivery and enqueue its handler (receipt id as the argument); a
    redelivery (same provider message id) returns the first receipt and enqueues nothing."""
    job_function = handler(endpoint)
    with transaction.atomic():
        if verdict.message_id and (first := _first(endpoint, verdict.message_id)):
            return Stored(first, duplicate=True)
        try:
            with transaction.atomic():
                receipt = InboundWebhook.objects.create(
                    endpoint=endpoint.name,
                    scheme=endpoint.scheme,
                    message_id=verdict.message_id,
                    received_at=timezone.now(),
                    body=body,
                    headers=kept_headers(headers),
                    verified=True,
                )
        except IntegrityError:  # the same message, arriving twice at once
            first = _first(endpoint, verdict.message_id)
            assert first is not None
            return Stored(first, duplicate=True)
        if job_function is not None:
            receipt.job = job_function.enqueue(receipt.pk)
            receipt.save(update_fields=["job"])
    return Stored(receipt, duplicate=False)


def _first(endpoint: Endpoint, message_id: str) -> InboundWebhook | None:
    return InboundWebhook.objects.filter(
        endpoint=endpoint.name, message_id=message_id, verified=True
    ).first()


def store_rejected(endpoint: Endpoint, headers: Headers, check: str) -> None:
    """A record of a delivery that failed (WEBHOOK_STORE_REJECTED): no body, never a job."""
    InboundWebhook.objects.create(
        endpoint=endpoint.name,
        scheme=endpoint.scheme,
        received_at=timezone.now(),
        headers=kept_headers(headers),
        verified=False,
        failed_check=check,
    )


def replay(receipt: InboundWebhook) -> Job:
    """Run the endpoint's handler again on a stored delivery (a new job, same receipt)."""
    from django_bgjobs.webhooks.endpoints import endpoint as find

    if not receipt.verified:
        raise ValueError("only verified deliveries can be replayed")
    found = find(receipt.endpoint)
    job_function = handler(found) if found is not None else None
    if job_function is None:
        raise ValueError(f"endpoint {receipt.endpoint!r} has no handler job configured")
    with transaction.atomic():
        job = job_function.enqueue(receipt.pk)
        InboundWebhook.objects.filter(pk=receipt.pk).update(job=job)
    receipt.job = job
    return job
