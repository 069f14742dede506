"""Flow control at enqueue, in the caller's transaction: each job gets its key, and, when its
options decide against the key's state (throttle, rate limit, debounce, singleton), the key's
row is locked first, so that two enqueues of one key decide one after the other, on every
worker and web process alike.

- throttle: the job is given the next start its key allows (``scheduled`` until then);
- rate limit: over it, the job is stored ``cancelled`` with the reason, and never runs;
- debounce: a job of the key still waiting takes the new arguments and starts later instead;
- singleton ``skip``: an unfinished job of the key is returned instead of a new one;
  ``cancel_running``: the unfinished ones are cancelled (a running one asked to stop);
- concurrency (and singleton): a job that may start now is ``blocked`` until admitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from django_bgjobs import states
from django_bgjobs.flow import gcra
from django_bgjobs.flow.spec import FlowSpec
from django_bgjobs.models import FlowKey, Job, JobStatus

if TYPE_CHECKING:
    from django_bgjobs.registry import JobCall


def lock_key(key: str, gate: str, now: datetime, using: str) -> FlowKey:
    """The key's row, created if new, locked until the transaction ends."""
    rows = FlowKey.objects.using(using)
    rows.bulk_create([FlowKey(key=key, gate=gate, updated_at=now)], ignore_conflicts=True)
    return rows.select_for_update().get(key=key)


def apply(job: Job, call: JobCall, flow: FlowSpec, now: datetime, using: str) -> Job:
    """Give the built, unsaved ``job`` its key and its status under ``flow``. Returns the job to
    insert, or an existing job that takes this call instead (not to be inserted)."""
    job.flow_key = flow.flow_key(call.args, call.kwargs)
    job.gated = flow.gated
    if flow.locks_at_enqueue:
        row = lock_key(job.flow_key, flow.gate, now, using)
        kept = _decide(job, flow, row, now, using)
        FlowKey.objects.using(using).filter(key=row.key).update(
            reserved_tat=row.reserved_tat, rate_tat=row.rate_tat, updated_at=now
        )
        if kept is not job:
            return kept
    if job.gated and job.status == JobStatus.QUEUED:
        job.status, job.published_at = JobStatus.BLOCKED, None
    return job


def _decide(job: Job, flow: FlowSpec, row: FlowKey, now: datetime, using: str) -> Job:
    if flow.rate_limit is not None:
        limit = flow.rate_limit
        kept, row.rate_tat = gcra.conforms(
            row.rate_tat, now, limit.period / limit.limit, limit.limit
        )
        if not kept:
            job.status, job.finished_at = JobStatus.CANCELLED, now
            job.run_after = job.published_at = None
            job.error = (
                f"dropped: over the rate limit of {limit.limit} per {limit.period} "
                f"for {job.flow_key}"
            )
            return job
    unfinished = Job.objects.using(using).unfinished().filter(flow_key=job.flow_key)
    if flow.singleton is not None:
        if flow.singleton.mode == "skip":
            holder = unfinished.order_by("id").first()
            if holder is not None:
                return holder
        else:
            for other in unfinished.select_for_update():
                states.cancel(other)
    if flow.debounce is not None:
        return _debounce(job, flow, unfinished, now)
    if flow.throttle is not None:
        throttle = flow.throttle
        wanted = job.run_after or now
        start, row.reserved_tat = gcra.next_start(
            row.reserved_tat, wanted, throttle.period / throttle.limit, throttle.burst
        )
        if start > now:
            job.status, job.run_after, job.published_at = JobStatus.SCHEDULED, start, None
    return job


def _debounce(job: Job, flow: FlowSpec, unfinished: QuerySet[Job], now: datetime) -> Job:
    """The key's job that has not started yet takes this call's arguments and waits ``period``
    more (never past ``max_wait`` after it was first enqueued); else this job waits."""
    assert flow.debounce is not None
    debounce = flow.debounce
    pending = unfinished.filter(status=JobStatus.SCHEDULED, attempts=0).select_for_update().first()
    if pending is None:
        job.status, job.run_after, job.published_at = (
            JobStatus.SCHEDULED,
            now + debounce.period,
            None,
        )
        return job
    latest = pending.created_at + debounce.max_wait if debounce.max_wait else None
    start = min(now + debounce.period, latest) if latest else now + debounce.period
    Job.objects.filter(pk=pending.pk, status=JobStatus.SCHEDULED, attempts=0).update(
        args=job.args, kwargs=job.kwargs, run_after=start
    )
    pending.args, pending.kwargs, pending.run_after = job.args, job.kwargs, start
    return pending
