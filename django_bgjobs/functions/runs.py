"""Starting runs: one job per (function, starting event), its arguments carrying the event, and
the waits of the function's ``cancel_on``, keyed on the starting event's fields. Events sent
(``events.send_events``), ``enqueue()`` and invoke steps start runs here; cron fires the job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from django_bgjobs.enqueue import insert_calls
from django_bgjobs.functions import specs
from django_bgjobs.functions.keys import wait_key
from django_bgjobs.models import EventWait, Job, Step, StepKind, StepStatus
from django_bgjobs.registry import EnqueueOptions, JobCall


def start_runs(
    starts: Sequence[tuple[specs.FunctionSpec, dict[str, Any] | None]],
    options: EnqueueOptions | None = None,
    along: Sequence[Model] = (),
) -> list[Job]:
    """One run per (function, starting event): a job whose argument is the event (as
    ``event_argument`` gives it), and the waits of the function's ``cancel_on``. ``along``: rows
    inserted with the runs (the events that start them), in one statement where it can be."""
    calls = [
        JobCall(
            spec.job, options or EnqueueOptions(), (), {} if given is None else {"event": given}
        )
        for spec, given in starts
    ]
    jobs, created = insert_calls(calls, along)
    now = timezone.now()
    new = {job.pk for job in created}  # a run kept by its idempotency key has its waits
    waits = [
        EventWait(
            job=job,
            event_name=cancel_class.event_name,
            key=wait_key(field, given["data"][field]),
            created_at=now,
        )
        for (spec, given), job in zip(starts, jobs, strict=True)
        if given is not None and job.pk in new
        for cancel_class, field in spec.cancel_on
        if field in given["data"]
    ]
    if waits:
        EventWait.objects.bulk_create(waits)
    return jobs


def replay_from(run: Job, position: int) -> Job:
    """A new run of ``run``'s function with the same event, whose steps before ``position``
    are copied (their results handed back, not run again): it starts running at that step.
    ``run`` itself is left as it is, its history with it."""
    spec = specs.get(run.name)
    if spec is None:
        raise LookupError(f"no @function is named {run.name!r} in this process")
    kept = list(Step.objects.filter(job=run, position__lt=position).order_by("position"))
    if any(step.status != StepStatus.SUCCEEDED for step in kept):
        raise ValueError("a run can be replayed from a step whose earlier steps all succeeded")
    with transaction.atomic():
        [copy] = start_runs([(spec, run.kwargs.get("event"))])
        for step in kept:  # the same rows, for the new run
            step.pk, step.job = None, copy
        Step.objects.bulk_create(kept)
    return copy


def retried(sender: object, job: Job, **kwargs: object) -> None:
    """A run queued again after it died or was cancelled (``retry()``): its failed step gets a
    fresh budget of attempts; the steps that succeeded are still handed back."""
    if job.attempts and specs.is_function(job.name):
        # An invoke that failed (its run died, or it timed out) invokes a new run.
        Step.objects.filter(job=job, status=StepStatus.FAILED, kind=StepKind.INVOKE).delete()
        Step.objects.filter(job=job, status=StepStatus.FAILED).update(attempts=0)
