"""What a delivery job's end means for its message: a dead job dead-letters it (and sends the
failure callback); any end frees its place in its queue or flow-control key, so the next
waiting message is admitted at once rather than at the next dispatcher pass."""

from __future__ import annotations

from typing import Any

from django_bgjobs import signals
from django_bgjobs.delivery import admission, lifecycle
from django_bgjobs.delivery.models import DELIVER_JOB, Message
from django_bgjobs.models import Job


def _finished(sender: Any, job: Job, signal: Any, **kwargs: Any) -> None:
    if job.name != DELIVER_JOB:
        return
    dead = signal is signals.job_dead
    if not dead and not job.kwargs.get("gated"):
        return  # nothing holds a place, nothing to dead-letter: no query
    message = Message.objects.filter(job_id=job.pk).first()
    if message is None:
        return
    lifecycle.settle(message, dead=dead)
    if admission.is_gated(message):
        admission.admit_gates([(message.queue, message.flow_key)])


def connect() -> None:
    for signal in (signals.job_succeeded, signals.job_dead, signals.job_cancelled):
        signal.connect(_finished, dispatch_uid=f"django_bgjobs.delivery.{id(signal)}")
