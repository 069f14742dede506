"""Durable functions' tables: the events sent, the steps of each run, and what runs wait for.

A run of a durable function is a ``Job`` (its status, attempts, leases and fences are the
job's); these tables hold what the job row cannot: each step's stored result, and the events
a run waits for or is cancelled by.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_bgjobs._ids import uuid7
from django_bgjobs.models.jobs import Job


class EventRecord(models.Model):
    """An event sent (``SignedUp(user_id=1).send()``), written in the sender's transaction with
    the runs of the functions listening to it. ``delivered_at`` is set once the runs waiting
    for it (``wait_for_event``) and cancelled by it (``cancel_on``) were found: right after the
    sender's commit, or by the dispatcher if that process died first."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=255)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("event")
        ordering = ["-id"]  # newest first (UUIDv7 ids are time-ordered)
        indexes = [
            # wait_for_event's look back, from the run's start.
            models.Index(fields=["name", "created_at"], name="bgjobs_event_name_idx"),
            # The dispatcher's pass over events not delivered yet: only those are in it.
            models.Index(
                fields=["created_at"],
                condition=Q(delivered_at__isnull=True),
                name="bgjobs_event_undelivered_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"


class StepKind(models.TextChoices):
    RUN = "run", _("Run")
    SLEEP = "sleep", _("Sleep")
    WAIT = "wait", _("Wait for event")
    SEND = "send", _("Send event")
    INVOKE = "invoke", _("Invoke")


class StepStatus(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")  # its last attempt failed; tried again when the run resumes
    SLEEPING = "sleeping", _("Sleeping")
    WAITING = "waiting", _("Waiting")


class Step(models.Model):
    """One step of a run, by name. Its result is written once, when it succeeds, and handed back
    from here each time the run resumes: a finished step never runs again. UNIQUE (job, name)
    and the attempt fence on every write keep a step from succeeding twice."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=255)
    position = models.PositiveIntegerField(help_text=_("Its place in the run, from 0."))
    kind = models.CharField(max_length=8, choices=StepKind.choices)
    status = models.CharField(max_length=10, choices=StepStatus.choices)
    attempts = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    wake_at = models.DateTimeField(
        null=True, blank=True, help_text=_("A sleep's end, or a wait's timeout.")
    )
    waits_for = models.CharField(
        max_length=255, blank=True, help_text=_("The event a wait matches, and on what.")
    )
    matched_event = models.ForeignKey(
        EventRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    child = models.ForeignKey(
        Job,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The run an invoke step started."),
    )

    class Meta:
        verbose_name = _("step")
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "name"], name="bgjobs_step_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.status}]"


class EventWait(models.Model):
    """A run waiting for an event whose ``key`` (``field=<JSON value>``) matches: a step's
    ``wait_for_event`` (``step`` is its name), or its function's ``cancel_on`` (``step`` is
    empty). Deleted once matched, and when the run ends."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+", db_index=False)
    event_name = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    step = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("event wait")
        indexes = [
            models.Index(fields=["event_name", "key"], name="bgjobs_eventwait_match_idx"),
            models.Index(fields=["job"], name="bgjobs_eventwait_job_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.key}"
