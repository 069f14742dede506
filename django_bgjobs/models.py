"""Job and JobRun: every job is a row before anything reaches a broker; every attempt is a row.

``status`` is written only by the conditional UPDATEs in ``states.py``.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_bgjobs._ids import uuid7
from django_bgjobs.conf import django_setting


class JobStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")  # waits for run_after
    QUEUED = "queued", _("Queued")  # ready; published (or about to be) to the broker
    RUNNING = "running", _("Running")  # claimed by a worker, holds a lease
    RETRYING = "retrying", _("Retrying")  # an attempt failed; waits for run_after
    SUCCEEDED = "succeeded", _("Succeeded")
    DEAD = "dead", _("Dead")  # out of attempts or failed for good: the dead-letter queue
    CANCELLED = "cancelled", _("Cancelled")


WAITING = (JobStatus.SCHEDULED, JobStatus.RETRYING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED)
UNFINISHED = (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING)


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    LOST = "lost", _("Lost")  # the worker vanished; its lease expired
    SUPERSEDED = "superseded", _("Superseded")  # finished after another attempt took over
    CANCELLED = "cancelled", _("Cancelled")
    # Its worker was told to stop and the attempt outlived SHUTDOWN_GRACE: the worker gave the
    # job back to the queue. A deploy, not the job's fault: it does not spend an attempt.
    RELEASED = "released", _("Released")


class JobQuerySet(models.QuerySet["Job"]):
    """Jobs by where they are in their life: each condition on ``status`` (and the fence of an
    attempt) is written here once, and matches the partial indexes of ``Job.Meta``."""

    def waiting(self) -> JobQuerySet:
        """Scheduled or retrying: ``run_after`` says when they are due."""
        return self.filter(status__in=WAITING)

    def due(self, by: datetime) -> JobQuerySet:
        """Waiting jobs due by ``by`` (the dispatcher's ``bgjobs_job_due_idx``)."""
        return self.waiting().filter(run_after__lte=by)

    def queued(self) -> JobQuerySet:
        return self.filter(status=JobStatus.QUEUED)

    def published_before(self, moment: datetime) -> JobQuerySet:
        """Queued jobs never published, or last published before ``moment``."""
        return self.queued().filter(Q(published_at__isnull=True) | Q(published_at__lt=moment))

    def running(self) -> JobQuerySet:
        return self.filter(status=JobStatus.RUNNING)

    def attempt_running(self, job_id: UUID | str, attempt: int) -> JobQuerySet:
        """The fence: job ``job_id`` while attempt ``attempt`` runs. A write through it changes
        nothing once that attempt has ended or another has taken over."""
        return self.running().filter(pk=job_id, attempts=attempt)

    def lease_expired(self, now: datetime) -> JobQuerySet:
        """Running jobs whose worker stopped extending the lease (``bgjobs_job_lease_idx``)."""
        return self.running().filter(lease_expires_at__lt=now)

    def cancellable(self) -> JobQuerySet:
        """Not started yet: cancelled at once (a running job is asked to stop instead)."""
        return self.filter(status__in=(*WAITING, JobStatus.QUEUED))

    def retriable(self) -> JobQuerySet:
        """Dead or cancelled: what ``retry()`` queues again."""
        return self.filter(status__in=(JobStatus.DEAD, JobStatus.CANCELLED))

    def dead(self) -> JobQuerySet:
        return self.filter(status=JobStatus.DEAD)

    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=UNFINISHED)


JobManager = models.Manager.from_queryset(JobQuerySet)


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # Every index is paid for on each insert and status change: there are only those the hot
    # paths (enqueue, claim, dispatch) need.
    name = models.CharField(max_length=255)
    queue = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=JobStatus.choices)
    attempts = models.PositiveIntegerField(default=0, help_text=_("Attempts started so far."))
    max_attempts = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # Not indexed: ids are UUIDv7, so the primary key already orders jobs by creation time.
    created_at = models.DateTimeField()
    run_after = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(
        max_length=255,
        blank=True,
        help_text=_("The worker process of the current or last attempt."),
    )
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    progress_done = models.BigIntegerField(null=True, blank=True)
    progress_total = models.BigIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=255, blank=True)
    # Who may read the job through the status API (``.using(owner=request.user)``); None for
    # jobs no user started. The API reads a job by its primary key; the partial index below is
    # for deleting a user (SET_NULL), which would otherwise scan the whole table.
    owner = models.ForeignKey(
        django_setting("AUTH_USER_MODEL", "auth.User"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    objects = JobManager()

    class Meta:
        ordering = ["-id"]  # newest first (UUIDv7 ids are time-ordered)
        constraints = [
            # Race-free idempotency: concurrent enqueues with one key insert one row. Partial,
            # so that jobs without a key (most of them) cost no entry in it.
            models.UniqueConstraint(
                fields=["name", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="bgjobs_job_unique_idempotency_key",
            ),
        ]
        indexes = [
            # The dispatcher's three sweeps, each over a small partial index.
            models.Index(
                fields=["run_after"],
                condition=Q(status__in=["scheduled", "retrying"]),
                name="bgjobs_job_due_idx",
            ),
            models.Index(
                fields=["published_at"], condition=Q(status="queued"), name="bgjobs_job_queued_idx"
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="running"),
                name="bgjobs_job_lease_idx",
            ),
            # Only jobs that have an owner are in it: the others cost nothing.
            models.Index(
                fields=["owner"], condition=Q(owner__isnull=False), name="bgjobs_job_owner_idx"
            ),
            # The dead-letter queue, for the admin (its count by name on the dashboard, the
            # bulk "retry the dead jobs of a name since"). Only dead jobs are in it: a job
            # pays for it when it dies, not when it is enqueued, claimed or succeeds.
            models.Index(
                fields=["name", "finished_at"],
                condition=Q(status="dead"),
                name="bgjobs_job_dead_idx",
            ),
        ]
        permissions = [
            ("retry_job", "Can retry jobs"),
            ("cancel_job", "Can cancel jobs"),
            ("replay_job", "Can replay jobs (enqueue a copy with the same arguments)"),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.status}] {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def cancel(self) -> bool:
        """Cancel this job. A waiting job is cancelled at once; a running one is asked to stop.

        Returns False when the job had already finished.
        """
        from django_bgjobs import states

        return states.cancel(self)

    def retry(self) -> bool:
        """Give a dead (or cancelled) job a fresh budget of attempts and queue it now."""
        from django_bgjobs import states

        return states.retry(self)

    def wait_until_finished(self, timeout: float = 30.0, poll: float = 0.05) -> Job:
        """Poll the database until this job finishes (for scripts and tests)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.refresh_from_db()
            if self.is_finished:
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} still {self.status} after {timeout}s")
            time.sleep(poll)


class JobRun(models.Model):
    """One finished attempt at a job, written when it ends (a running attempt is on its Job:
    status, attempts, worker, started_at), or by the dispatcher when its worker vanished."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the (job, attempt) constraint's index starts with job.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs", db_index=False)
    attempt = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices)
    worker = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        verbose_name = _("attempt")
        ordering = ["job", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt"], name="bgjobs_jobrun_unique_attempt"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt}"


class JobDashboard(Job):
    """No table and no permissions of its own: the admin's dashboard (admin/jobs.py), listed under
    "Background jobs" on the admin index through this proxy (an index entry needs a model).
    Who may view jobs may open it."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")


class JobSchedule(models.Model):
    """A schedule declared in code (``@bgjob(cron=...)``), as last synced into the database.

    Beat fires its django-celery-beat ``PeriodicTask``; pausing that task in the admin pauses
    the schedule, and a deploy leaves it paused. A schedule removed from code keeps its row
    (``in_code`` False) and its PeriodicTask is disabled.
    """

    key = models.CharField(
        max_length=255,
        unique=True,
        help_text=_("The job's name, with the schedule's name when a job has several."),
    )
    job_name = models.CharField(max_length=255)
    cron = models.CharField(max_length=255, blank=True)
    timezone = models.CharField(max_length=64, blank=True)
    every_seconds = models.PositiveIntegerField(null=True, blank=True)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    catch_up = models.CharField(max_length=8, default="latest")
    overlap = models.CharField(max_length=8, default="allow")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bgjobs_schedule",
    )
    in_code = models.BooleanField(
        default=True,
        help_text=_("False once the schedule is no longer declared in code (it no longer fires)."),
    )
    synced_at = models.DateTimeField()

    class Meta:
        verbose_name = _("schedule")
        ordering = ["key"]
        permissions = [("run_schedule", "Can run schedules now, pause and resume them")]

    def __str__(self) -> str:
        return self.key

    @property
    def enabled(self) -> bool:
        return bool(self.in_code and self.periodic_task and self.periodic_task.enabled)


class ScheduleSlot(models.Model):
    """One slot of a schedule that was handled: its job, or why it was skipped. UNIQUE
    (schedule, slot_at) is what makes a second beat, or the same slot fired twice, harmless."""

    id = models.BigAutoField(primary_key=True)
    schedule = models.ForeignKey(
        JobSchedule, on_delete=models.CASCADE, related_name="slots", db_index=False
    )
    slot_at = models.DateTimeField()
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule_slot"
    )
    skipped = models.CharField(
        max_length=255,
        blank=True,
        help_text=_(
            "Why no job was enqueued for this slot (overlap, a missed slot under catch_up)."
        ),
    )
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("schedule slot")
        ordering = ["schedule", "-slot_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "slot_at"], name="bgjobs_scheduleslot_unique_slot"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.slot_at.isoformat()}"


class InboundWebhook(models.Model):
    """A webhook delivery received on a BGJOBS["WEBHOOKS"] endpoint: its raw body and the
    headers that matter, kept so the handler job (and a replay) reads exactly what arrived.

    One verified receipt per (endpoint, provider message id): a redelivery of the same message
    is acknowledged and not processed again. Rejected deliveries are kept only when
    ``WEBHOOK_STORE_REJECTED`` is on, without their body.
    """

    id = models.BigAutoField(primary_key=True)
    endpoint = models.CharField(max_length=100, help_text=_("The BGJOBS['WEBHOOKS'] entry."))
    scheme = models.CharField(max_length=20)
    message_id = models.CharField(
        max_length=255,
        blank=True,
        help_text=_(
            "The provider's id of the delivery (Upstash-Message-Id, webhook-id, the Stripe event "
            "id, X-GitHub-Delivery): the same on every retry."
        ),
    )
    received_at = models.DateTimeField()
    body = models.BinaryField(blank=True)
    headers = models.JSONField(default=dict)
    verified = models.BooleanField()
    failed_check = models.CharField(max_length=40, blank=True)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_receipts"
    )

    class Meta:
        verbose_name = _("webhook receipt")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "message_id"],
                condition=Q(verified=True) & ~Q(message_id=""),
                name="bgjobs_inboundwebhook_unique_message",
            ),
        ]
        permissions = [("replay_inboundwebhook", "Can replay webhook receipts")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.message_id or self.pk}"

    def text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")

    def json(self) -> object:
        """The body parsed as JSON (``ValueError`` if it is not JSON)."""
        import json

        return json.loads(bytes(self.body))


__all__ = [
    "InboundWebhook",
    "Job",
    "JobDashboard",
    "JobRun",
    "JobSchedule",
    "ScheduleSlot",
]
