"""Messages go with the jobs ``prune`` deletes: a delivered or dead-lettered message with its
delivery job; a message cancelled before it started (it has no job) once it is older than the
cancelled jobs' retention; an Upstash Workflow run (with its steps and waits) once it ended
longer ago than succeeded jobs are kept, or idled as long as dead jobs are. A run's steps are
kept with the run, so pruning its messages leaves a running one whole. Registered by
DeliveryConfig.ready() as a prune hook."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import router, transaction
from django.db.models import QuerySet

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.delivery.models import (
    DeliveryAttempt,
    Message,
    MessageSchedule,
    WorkflowRun,
    WorkflowWaiter,
)
from django_bgjobs.maintenance import retention
from django_bgjobs.models import JobStatus


def _delete_messages(messages: QuerySet[Message], using: str) -> int:
    ids = list(messages.values_list("pk", flat=True))
    if ids:
        Message.objects.filter(source_id__in=ids).update(source=None)
        MessageSchedule.objects.filter(last_message_id__in=ids).update(last_message=None)
        WorkflowWaiter.objects.filter(message_id__in=ids).update(message=None)
        DeliveryAttempt.objects.filter(message_id__in=ids)._raw_delete(using)
        Message.objects.filter(pk__in=ids)._raw_delete(using)
    return len(ids)


class MessagePruning:
    def on_jobs(self, ids: list[Any], using: str) -> None:
        _delete_messages(Message.objects.filter(job_id__in=ids), using)

    def after(self, now: datetime) -> None:
        # Upstash Workflow runs that ended as long ago as a succeeded job is kept, with their
        # waits (their steps are messages, pruned with their jobs).
        keep_runs = retention(JobStatus.SUCCEEDED)
        if keep_runs is not None:
            WorkflowRun.objects.filter(ended_at__lt=now - keep_runs).delete()
        # A run that never ended (a step dead-lettered, an app gone): once nothing was
        # published to it for as long as dead jobs are kept, and it waits for nothing.
        keep_idle = retention(JobStatus.DEAD)
        if keep_idle is not None:
            idle = now - keep_idle
            WorkflowRun.objects.filter(ended_at__isnull=True, created_at__lt=idle).exclude(
                steps__created_at__gte=idle
            ).exclude(waiters__ended_at__isnull=True).delete()
        keep = retention(JobStatus.CANCELLED)
        if keep is None:
            return
        using = router.db_for_write(Message)
        batch = int(bgjobs_settings.PRUNE_BATCH)
        old = Message.objects.filter(job__isnull=True, cancelled_at__lt=now - keep)
        while True:
            with transaction.atomic(using=using):
                if not _delete_messages(old[:batch], using):
                    return
