"""Flow control at enqueue, in the caller's transaction: each job gets its key, and, when its
options decide against the key's state (throttle, rate limit, debounce, singleton), the key's
row is locked first, so that two enqueues of one key decide one after the other, on every
worker and web process alike.

- throttle: the job is given the next start its key allows (``scheduled`` until then);
- rate limit: over it, the job is stored ``cancelled`` with the reason, and never runs;
- debounce: a job of the key still waiting takes the new arguments and starts later instead;
- singleton ``skip``: an unfinished job of the key is returned instead of a new one;
  ``cancel_running``: the unfinished ones are cancelled (a running one asked to stop);
- batch: the call's items join the key's open batch (a job not started yet);
- concurrency (and singleton): a job that may start now is ``blocked`` until admitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from django_bgjobs import states
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.exceptions import PayloadError
from django_bgjobs.flow import gcra
from django_bgjobs.flow.options import Debounce
from django_bgjobs.flow.spec import FlowSpec
from django_bgjobs.models import FlowKey, Job, JobStatus

if TYPE_CHECKING:
    from django_bgjobs.registry import JobCall


def lock_key(key: str, gate: str, now: datetime, using: str) -> FlowKey:
    """The key's row, created if new, locked until the transaction ends."""
    rows = FlowKey.objects.using(using)
    rows.bulk_create([FlowKey(key=key, gate=gate, updated_at=now)], ignore_conflicts=True)
    return rows.select_for_update().get(key=key)


def prepare(job: Job, call: JobCall, flow: FlowSpec) -> None:
    """Before any lock or write (a bad call raises here, outside the caller's transaction's
    way): the job's key, whether it is gated, and a batch's arguments by name, its items
    checked."""
    job.flow_key = flow.flow_key(call.args, call.kwargs)
    job.gated = flow.gated
    if flow.batch is not None:  # by name: the list is found and extended in kwargs
        batch = flow.batch
        job.args, job.kwargs = (
            [],
            dict(call.spec.signature.bind(*call.args, **call.kwargs).arguments),
        )
        items = job.kwargs.get(batch.into)
        if not isinstance(items, list) or not 0 < len(items) <= batch.max_size:
            raise PayloadError(
                f"{job.name}: {batch.into} takes a list of 1 to {batch.max_size} items to "
                f"batch, not {items!r}"
            )


def lock_keys(keys: set[str], gate_of: dict[str, str], now: datetime, using: str) -> None:
    """Lock these keys' rows up front, in one order (two batches of the same keys in
    opposite orders would otherwise deadlock)."""
    for key in sorted(keys):
        lock_key(key, gate_of[key], now, using)


def apply(job: Job, flow: FlowSpec, now: datetime, using: str, batch: dict[str, Job]) -> Job:
    """Decide the prepared, unsaved ``job``'s status under ``flow``, its key's row locked
    (``lock_keys``). Returns the job to insert, or an existing job that takes this call
    instead (not to be inserted). ``batch``: the jobs of one ``enqueue_many`` not inserted yet,
    by key, as singleton, debounce and batch see them (filled here)."""
    assert job.flow_key is not None
    if flow.locks_at_enqueue:
        holder = _idempotency_holder(job, now, using)
        if holder is not None:  # a repeated call: its key's state is not spent again
            return holder
        row = FlowKey.objects.using(using).get(key=job.flow_key)
        earlier = batch.get(job.flow_key)
        kept = _in_batch(job, flow, earlier, now) or _decide(job, flow, row, now, using, earlier)
        FlowKey.objects.using(using).filter(key=row.key).update(
            reserved_tat=row.reserved_tat, rate_tat=row.rate_tat, updated_at=now
        )
        if flow.singleton is not None or flow.debounce is not None or flow.batch is not None:
            batch[job.flow_key] = kept
        if kept is not job:
            return kept
    if job.gated and job.status == JobStatus.QUEUED:
        job.status, job.published_at = JobStatus.BLOCKED, None
    return job


def _idempotency_holder(job: Job, now: datetime, using: str) -> Job | None:
    if job.idempotency_key is None:
        return None
    return (
        Job.objects.using(using)
        .filter(
            name=job.name,
            idempotency_key=job.idempotency_key,
            created_at__gte=now - bgjobs_settings.IDEMPOTENCY_WINDOW,
        )
        .first()
    )


def _in_batch(job: Job, flow: FlowSpec, earlier: Job | None, now: datetime) -> Job | None:
    """Singleton, debounce and batch against a job of the same key earlier in the same
    ``enqueue_many`` (not inserted yet)."""
    if earlier is None or flow.batch is not None:
        return None  # a batch looks at the earlier job itself (_gather)
    if flow.debounce is not None:
        return _debounce_into(earlier, job, flow.debounce, now)
    assert flow.singleton is not None
    if flow.singleton.mode == "skip":
        return earlier
    earlier.status, earlier.finished_at = JobStatus.CANCELLED, now
    earlier.run_after = earlier.published_at = None
    earlier.error = "cancelled: a newer call of its key replaced it (Singleton cancel_running)"
    return None


def _decide(
    job: Job,
    flow: FlowSpec,
    row: FlowKey,
    now: datetime,
    using: str,
    earlier: Job | None = None,
) -> Job:
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
    if flow.batch is not None:
        return _gather(job, flow, unfinished, now, earlier)
    if flow.throttle is not None and (job.run_after is None or job.run_after <= now):
        # A job wanted later reserves nothing now (it would push every job of its key back
        # behind it): its start is checked by the worker that picks it up (at_start.py).
        throttle = flow.throttle
        start, row.reserved_tat = gcra.next_start(
            row.reserved_tat, now, throttle.period / throttle.limit, throttle.burst
        )
        if start > now:
            job.status, job.run_after, job.published_at = JobStatus.SCHEDULED, start, None
    return job


def _debounce(job: Job, flow: FlowSpec, unfinished: QuerySet[Job], now: datetime) -> Job:
    """The key's job that has not started yet takes this call's arguments and waits ``period``
    more (never past ``max_wait`` after it was first enqueued); else this job waits."""
    assert flow.debounce is not None
    pending = unfinished.filter(status=JobStatus.SCHEDULED, attempts=0).select_for_update().first()
    if pending is None:
        job.status, job.published_at = JobStatus.SCHEDULED, None
        job.run_after = now + flow.debounce.period
        return job
    return _debounce_into(pending, job, flow.debounce, now)


def _debounce_into(pending: Job, job: Job, debounce: Debounce, now: datetime) -> Job:
    latest = pending.created_at + debounce.max_wait if debounce.max_wait else None
    start = min(now + debounce.period, latest) if latest else now + debounce.period
    pending.args, pending.kwargs, pending.run_after = job.args, job.kwargs, start
    if not pending._state.adding:
        Job.objects.filter(pk=pending.pk, status=JobStatus.SCHEDULED, attempts=0).update(
            args=job.args, kwargs=job.kwargs, run_after=start
        )
    return pending


def _gather(
    job: Job, flow: FlowSpec, unfinished: QuerySet[Job], now: datetime, earlier: Job | None
) -> Job:
    """Add the call's items to its key's open batch (a job not started yet, at most
    ``max_size`` items); a full batch is ready at once. Without room, the open batch is
    closed (ready now) and this job opens the next one, ready after ``timeout``."""
    assert flow.batch is not None
    batch = flow.batch
    items = job.kwargs[batch.into]
    open_batch = earlier or (
        unfinished.filter(status=JobStatus.SCHEDULED, attempts=0)
        .order_by("id")
        .select_for_update()
        .first()
    )
    if open_batch is not None:
        gathered = [*open_batch.kwargs[batch.into], *items]
        if len(gathered) <= batch.max_size:
            open_batch.kwargs = {**open_batch.kwargs, batch.into: gathered}
            if not open_batch._state.adding:
                Job.objects.filter(pk=open_batch.pk).update(kwargs=open_batch.kwargs)
            if len(gathered) == batch.max_size:
                _ready_now(open_batch, now)
            return open_batch
        _ready_now(open_batch, now)
    if len(items) < batch.max_size:
        job.status, job.run_after, job.published_at = (
            JobStatus.SCHEDULED,
            now + batch.timeout,
            None,
        )
    return job


def _ready_now(job: Job, now: datetime) -> None:
    """A batch that may start now: queued (blocked under a concurrency limit)."""
    if not job._state.adding:
        states.wake([job.pk])
        return
    job.run_after = None
    if job.gated:
        job.status, job.published_at = JobStatus.BLOCKED, None
    else:
        job.status, job.published_at = JobStatus.QUEUED, now
