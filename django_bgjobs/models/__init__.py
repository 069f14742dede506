"""The core's tables, one module per concept: jobs and their attempts (``jobs.py``), schedules
(``schedules.py``), webhooks received (``webhooks.py``)."""

from django_bgjobs.models.jobs import (
    FINISHED,
    UNFINISHED,
    WAITING,
    Job,
    JobDashboard,
    JobQuerySet,
    JobRun,
    JobStatus,
    RunStatus,
)
from django_bgjobs.models.schedules import JobSchedule, ScheduleSlot
from django_bgjobs.models.webhooks import InboundWebhook

__all__ = [
    "FINISHED",
    "UNFINISHED",
    "WAITING",
    "InboundWebhook",
    "Job",
    "JobDashboard",
    "JobQuerySet",
    "JobRun",
    "JobSchedule",
    "JobStatus",
    "RunStatus",
    "ScheduleSlot",
]
