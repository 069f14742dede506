"""A throttled job's start, checked by the worker that claimed it: the throttle's bound holds
for the times jobs really start, not only for the times reserved for them at enqueue (a job
picked up late, then one on time, would start closer together than the limit allows)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import router, transaction
from django.utils import timezone

from django_bgjobs.exceptions import Suspend
from django_bgjobs.flow import gcra
from django_bgjobs.flow.at_enqueue import lock_key
from django_bgjobs.flow.spec import FlowSpec
from django_bgjobs.models import FlowKey, Job

# A start due this soon is waited for in the worker (it is a pick-up's jitter, at most one
# interval); a later one sends the job back to wait in the database.
MAX_WAIT_IN_WORKER = timedelta(seconds=1)


def wait_for_start(job: Job, flow: FlowSpec) -> None:
    """Return once the job may start (its start counted for its key), after waiting for it
    here if that is soon; raise ``Suspend`` (back to wait in the database) if it is later."""
    throttle = flow.throttle
    if throttle is None or not job.flow_key:
        return
    interval = throttle.period / throttle.limit
    using = router.db_for_write(FlowKey)
    with transaction.atomic(using=using):
        row = lock_key(job.flow_key, flow.gate, timezone.now(), using)
        now = timezone.now()  # after the lock: a wait for it must not count as time passed
        start, tat = gcra.next_start(row.started_tat, now, interval, throttle.burst)
        if start - now > min(interval, MAX_WAIT_IN_WORKER):
            raise Suspend(start)
        FlowKey.objects.using(using).filter(key=row.key).update(started_tat=tat, updated_at=now)
    time.sleep(max((start - timezone.now()).total_seconds(), 0.0))
