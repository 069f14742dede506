"""Built-in maintenance: pruning finished jobs, like BullMQ's removeOnComplete/removeOnFail.

``django_bgjobs.prune`` runs on ``BGJOBS["PRUNE_SCHEDULE"]`` (synced like any schedule) and by
``manage.py bgjobs prune``. It deletes in batches of PRUNE_BATCH, each batch its own short
transaction, so a large backlog never holds a long lock on the job table. Rows of other apps
that point at jobs go with them through their prune hooks (extensions.register_prune_hook).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import router, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from django_bgjobs import extensions
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.decorators import bgjob
from django_bgjobs.models import (
    EventRecord,
    EventWait,
    InboundWebhook,
    Job,
    JobRun,
    JobStatus,
    ScheduleSlot,
    Step,
)


def prune(now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Delete jobs finished longer ago than their status' retention. Returns counts by status."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for status in bgjobs_settings.PRUNE:
        if status not in (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED):
            raise ValueError(f"BGJOBS['PRUNE'] has {status!r}: only finished statuses are pruned")
        keep = retention(status)
        if keep is None:
            continue
        old = Job.objects.filter(status=status, finished_at__lt=now - keep)
        counts[status] = old.count() if dry_run else _delete_in_batches(old)
    if not dry_run:
        _prune_slots(now)
        _prune_events(now)
        for hook in extensions.prune_hooks():
            hook.after(now)
    return counts


def retention(status: str) -> timedelta | None:
    """How long jobs of ``status`` are kept once finished (BGJOBS["PRUNE"]), None: forever."""
    keep = bgjobs_settings.PRUNE.get(status)
    if keep is None:
        return None
    return keep if isinstance(keep, timedelta) else timedelta(seconds=keep)


def _prune_slots(now: datetime) -> None:
    """Schedule slots older than the longest retention, except each schedule's newest (its
    catch-up starts from there): they only said "this slot was handled"."""
    keeps = [keep for status in bgjobs_settings.PRUNE if (keep := retention(status)) is not None]
    if not keeps:
        return
    newest = ScheduleSlot.objects.filter(schedule=OuterRef("schedule")).order_by("-slot_at")
    ScheduleSlot.objects.filter(slot_at__lt=now - max(keeps)).exclude(
        pk=Subquery(newest.values("pk")[:1])
    ).delete()


def _prune_events(now: datetime) -> None:
    """Delivered events sent longer ago than the longest retention: the runs they started are
    jobs (pruned by their own status); a step that matched one keeps its copy of the event."""
    keeps = [keep for status in bgjobs_settings.PRUNE if (keep := retention(status))]
    if not keeps:
        return
    batch = int(bgjobs_settings.PRUNE_BATCH)
    old = EventRecord.objects.filter(created_at__lt=now - max(keeps), delivered_at__isnull=False)
    while ids := list(old.values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            Step.objects.filter(matched_event_id__in=ids).update(matched_event=None)
            EventRecord.objects.filter(pk__in=ids)._raw_delete(router.db_for_write(EventRecord))


def _delete_in_batches(old: QuerySet[Job]) -> int:
    using = router.db_for_write(Job)
    batch = int(bgjobs_settings.PRUNE_BATCH)
    deleted = 0
    while True:
        with transaction.atomic(using=using):
            ids = list(old.values_list("pk", flat=True)[:batch])
            if not ids:
                return deleted
            # Without the ORM's cascade collector (it loads every row): the dependent rows go
            # first, then the jobs, three statements a batch.
            ScheduleSlot.objects.filter(job_id__in=ids).update(job=None)
            InboundWebhook.objects.filter(job_id__in=ids).update(job=None)
            # A durable function's run: its steps and waits go with it; a step that invoked
            # it keeps its result and forgets the run.
            Step.objects.filter(child_id__in=ids).update(child=None)
            Step.objects.filter(job_id__in=ids)._raw_delete(using)
            EventWait.objects.filter(job_id__in=ids)._raw_delete(using)
            for hook in extensions.prune_hooks():
                hook.on_jobs(ids, using)
            JobRun.objects.filter(job_id__in=ids)._raw_delete(using)
            Job.objects.filter(pk__in=ids)._raw_delete(using)
            deleted += len(ids)


@bgjob(name="django_bgjobs.prune", max_attempts=2)
def prune_job() -> dict[str, int]:
    """The scheduled prune: returns how many jobs of each status it deleted."""
    return prune()
