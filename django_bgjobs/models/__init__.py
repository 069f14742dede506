"""The core's tables, one module per concept: jobs and their attempts (``jobs.py``), schedules
(``schedules.py``), webhooks received (``webhooks.py``), durable functions' events, steps and
waits (``functions.py``), flow control's keys and limits (``flow.py``)."""

from django_bgjobs.models.flow import FlowGate, FlowKey
from django_bgjobs.models.functions import EventRecord, EventWait, Step, StepKind, StepStatus
from django_bgjobs.models.jobs import (
    FINISHED,
    HOLDING,
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
    "HOLDING",
    "UNFINISHED",
    "WAITING",
    "EventRecord",
    "EventWait",
    "FlowGate",
    "FlowKey",
    "InboundWebhook",
    "Job",
    "JobDashboard",
    "JobQuerySet",
    "JobRun",
    "JobSchedule",
    "JobStatus",
    "RunStatus",
    "ScheduleSlot",
    "Step",
    "StepKind",
    "StepStatus",
]
