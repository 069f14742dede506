"""The delivery job: one job attempt is one signed HTTP attempt at a message.

The job's attempt budget is the message's (``retries + 1``, set at admission); the delay
before the next attempt is QStash's (``retry_delay.classify``: a ``Retry-After``-style header,
the message's ``retry_delay`` expression, or the default backoff), handed to the core as
``RetryAfter``. A 489 with ``Upstash-NonRetryable-Error: true`` or a refused URL ends it at
once (``NonRetriable``). Each attempt is recorded (``DeliveryAttempt``), with its callback, in
one transaction; the job's own outcome is recorded by the core after that.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.context import JobContext
from django_bgjobs.decorators import bgjob
from django_bgjobs.delivery import callbacks, http, lifecycle, workflow_steps
from django_bgjobs.delivery.keys import signing_keys
from django_bgjobs.delivery.models import DELIVER_JOB, DeliveryAttempt, Message
from django_bgjobs.delivery.retry_delay import Decision, classify
from django_bgjobs.delivery.ssrf import Refused
from django_bgjobs.exceptions import NonRetriable, RetryAfter
from django_bgjobs.models import JobRun, RunStatus

logger = logging.getLogger("django_bgjobs.delivery")


def _attempt(message: Message, retried: int) -> tuple[http.Response | None, Decision, str]:
    keys = signing_keys()
    attempt = http.Attempt(
        url=message.url,
        body=workflow_steps.body_sent(message),
        message_id=message.pk,
        retried=retried,
        method=message.method,
        headers=message.headers,
    )
    retry = message.retry_delay or None
    try:
        response = http.deliver(
            attempt,
            signing_key=keys.current,
            standard_secret=keys.standard_secret if message.signature == "standard" else None,
            timeout=message.timeout or bgjobs_settings.DELIVERY_TIMEOUT,
            max_body=bgjobs_settings.DELIVERY_MAX_RESPONSE_BODY,
        )
    except Refused as exc:
        return None, Decision("dead", None, f"refused: {exc.reason}"), exc.reason
    except http.DeliveryFailed as exc:
        return None, classify(None, retried=retried, retry_delay=retry), str(exc)
    decision = classify(
        response.status, response.first_headers(), retried=retried, retry_delay=retry
    )
    return response, decision, ""


def _callback(message: Message, record: DeliveryAttempt) -> None:
    """Publish the attempt's callback; a callback that cannot be published is logged, never
    a reason to lose the attempt's record (and deliver again)."""
    try:
        with transaction.atomic():
            callbacks.send(message, "callback", record)
    except Exception:
        logger.exception("message %s: its callback could not be published", message.pk)


@bgjob(name=DELIVER_JOB, takes_context=True, max_attempts=4)
def deliver_message(ctx: JobContext, message_id: str, gated: bool = False) -> dict[str, Any]:
    """Deliver message ``message_id`` once; raise to have the core retry or dead-letter it.
    ``gated``: the message holds a place in a queue or flow-control key (receivers.py frees
    it when the job ends)."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        raise NonRetriable(f"message {message_id} no longer exists")
    # Attempt numbers only grow: before the second there can be no attempt on record.
    last = (
        None
        if ctx.attempt == 1
        else DeliveryAttempt.objects.filter(message=message).order_by("-id").first()
    )
    if last is not None and last.outcome == "delivered":
        # Recorded, then the worker died before the job was: do not deliver it twice.
        return {"status": last.status}
    if last is not None and last.outcome in ("failed", "refused"):
        if not JobRun.objects.filter(
            job_id=ctx.job_id, attempt=last.job_attempt, status=RunStatus.FAILED
        ).exists():
            # Recorded, then the worker died before the job was: finish dying.
            raise NonRetriable(f"already failed for good: {last.error}")
        # The job recorded its death, so someone retried it (admin, `bgjobs retry`).
    if message.dlq_id or message.cancelled_at or message.settled_at:
        lifecycle.reopen(message)  # a dead or cancelled delivery job retried: deliver again
    # Upstash-Retried counts the attempts made, so an attempt lost with its worker (no
    # response, nothing recorded) does not show the receiver a gap.
    retried = last.retried + 1 if last is not None else 0
    started = timezone.now()
    clock = time.monotonic()
    response, decision, error = _attempt(message, retried)
    final = decision.outcome == "dead" or (decision.outcome == "retry" and ctx.is_last_attempt)
    if decision.outcome == "success":
        outcome = "delivered"
    elif error and response is None and decision.outcome == "dead":
        outcome = "refused"
    else:
        outcome = "failed" if final else "retry"
    with transaction.atomic():
        record = DeliveryAttempt.objects.create(
            message=message,
            retried=retried,
            job_attempt=ctx.attempt,
            started_at=started,
            duration_ms=int((time.monotonic() - clock) * 1000),
            outcome=outcome,
            status=response.status if response else None,
            response_headers=response.first_headers() if response else {},
            response_body=response.body if response else b"",
            body_truncated=response.truncated if response else False,
            address=response.address if response else "",
            error=error or decision.reason,
            next_attempt_at=(
                started + timedelta(seconds=decision.delay)
                if outcome == "retry" and decision.delay is not None
                else None
            ),
        )
        _callback(message, record)
        if final:  # with the attempt, not after: the receiver of job_dead finds it done
            lifecycle.dead_letter(message)
    if decision.outcome == "success":
        return {"status": record.status}
    if final:
        # A refusal's reason is the decision's already; a failure's error adds to it.
        raise NonRetriable(
            decision.reason if error in decision.reason else f"{decision.reason}: {error}"
        )
    # Each delivery attempt counts against the message's retries.
    raise RetryAfter(decision.delay or 0.0, decision.reason, spend_attempt=True)
