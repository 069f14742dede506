"""Job and JobRun: every job is a row before anything reaches a broker; every attempt is a row.

``status`` is written only by the conditional UPDATEs in ``states/``.
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
    # Waits for a free place under its flow-control limit (Concurrency, Singleton).
    BLOCKED = "blocked", _("Blocked")
    QUEUED = "queued", _("Queued")  # ready; published (or about to be) to the broker
    RUNNING = "running", _("Running")  # claimed by a worker, holds a lease
    RETRYING = "retrying", _("Retrying")  # an attempt failed; waits for run_after
    SUCCEEDED = "succeeded", _("Succeeded")
    DEAD = "dead", _("Dead")  # out of attempts or failed for good: the dead-letter queue
    CANCELLED = "cancelled", _("Cancelled")


WAITING = (JobStatus.SCHEDULED, JobStatus.RETRYING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED)
UNFINISHED = (
    JobStatus.SCHEDULED,
    JobStatus.BLOCKED,
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.RETRYING,
)
# What holds one of its key's places under a concurrency limit.
HOLDING = (JobStatus.QUEUED, JobStatus.RUNNING)


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
    # A durable function's run slept or began to wait for an event: the attempt ended the run
    # for now, without spending one of its attempts (the run resumes as a new one).
    PARKED = "parked", _("Parked")


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

    def blocked(self, flow_key: str | None = None) -> JobQuerySet:
        """Waiting for a place under a limit, or under ``flow_key`` (``bgjobs_job_blocked_idx``)."""
        blocked = self.filter(status=JobStatus.BLOCKED)
        return blocked if flow_key is None else blocked.filter(flow_key=flow_key)

    def holding(self, flow_key: str) -> JobQuerySet:
        """Queued or running under ``flow_key``: each holds one of its places (unless an
        operator released it: ``gated`` off)."""
        return self.filter(status__in=HOLDING, flow_key=flow_key, gated=True)

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
        return self.filter(status__in=(*WAITING, JobStatus.BLOCKED, JobStatus.QUEUED))

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
    # Flow control (flow/): the gate and key its limits count it under, and whether it waits
    # for a place (``blocked``) before each start.
    flow_key = models.CharField(max_length=255, null=True, blank=True)
    gated = models.BooleanField(default=False)
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
            # Flow control: the jobs waiting for a place under a key, in the order they get
            # one, and those holding a place. Jobs without a key are in neither.
            models.Index(
                fields=["flow_key", "-priority", "id"],
                condition=Q(status="blocked"),
                name="bgjobs_job_blocked_idx",
            ),
            models.Index(
                fields=["flow_key"],
                condition=Q(status__in=["queued", "running"], flow_key__isnull=False),
                name="bgjobs_job_holding_idx",
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
