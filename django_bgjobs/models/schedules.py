"""Schedules declared in code as the database knows them, and the slots they fired."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_bgjobs.models.jobs import Job


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
