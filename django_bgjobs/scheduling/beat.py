"""What beat fires: ``django_bgjobs.fire_schedule(key)``, which turns the schedule's current
slot into a job, exactly once; and ``declared()``, the schedules the code declares, by key
(read here to fire them, and by sync.py to write beat's rows).

Beat only fires. The task works out the slot from the clock (``Schedule.latest_slot``) and
claims it with an INSERT into ``ScheduleSlot`` (UNIQUE (schedule, slot_at)) in the same
transaction as the job's INSERT: two beats, a beat restarted mid-slot, a message delivered twice
all land on the same row, and only the first enqueues. Missed slots (beat or workers were down)
follow the schedule's ``catch_up``; ``overlap="skip"`` skips a slot while the previous slot's
job is unfinished. An ``every`` schedule also claims its next slot, due at its exact time (the
dispatcher publishes it then), so it runs on time whatever the phase of beat's interval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from celery import shared_task
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.decorators import JobFunction
from django_bgjobs.models import FINISHED, Job, JobSchedule, JobStatus, ScheduleSlot
from django_bgjobs.registry import JobSpec, registry
from django_bgjobs.schedules import MAX_CATCH_UP, Schedule, schedule_key

logger = logging.getLogger("django_bgjobs.schedules")

FIRE_TASK = "django_bgjobs.fire_schedule"


@dataclass
class Fired:
    """What one fire did (for logs, the admin and tests)."""

    enqueued: list[datetime] = field(default_factory=list)
    skipped: list[tuple[datetime, str]] = field(default_factory=list)
    already: bool = False


@shared_task(name=FIRE_TASK, acks_late=True, ignore_result=True, serializer="json")
def fire_schedule(key: str) -> str:
    """Beat's task for the code-declared schedule ``key``."""
    fired = fire(key, timezone.now())
    if fired is None:
        return "unknown schedule"
    return f"enqueued {len(fired.enqueued)}, skipped {len(fired.skipped)}" + (
        ", slot already handled" if fired.already else ""
    )


PRUNE_JOB = "django_bgjobs.prune"


def declared() -> dict[str, tuple[JobSpec, Schedule]]:
    """Every schedule the code declares, by key (the built-in prune schedule included)."""
    found: dict[str, tuple[JobSpec, Schedule]] = {}
    for name in registry.names():
        spec = registry.get(name)
        assert spec is not None
        for index, schedule in enumerate(spec.schedules):
            found[schedule_key(name, schedule, index, len(spec.schedules))] = (spec, schedule)
    prune = registry.get(PRUNE_JOB)
    if prune is not None and bgjobs_settings.PRUNE_SCHEDULE:
        found[PRUNE_JOB] = (prune, Schedule(cron=bgjobs_settings.PRUNE_SCHEDULE))
    return found


def declared_schedule(row: JobSchedule) -> tuple[JobSpec, Schedule] | None:
    """The code's version of a schedule row (the code wins over a row not yet synced)."""
    return declared().get(row.key)


def fire(key: str, now: datetime) -> Fired | None:
    row = JobSchedule.objects.filter(key=key, in_code=True).first()
    found = declared_schedule(row) if row is not None else None
    if row is None or found is None:
        logger.warning(
            "beat fired schedule %r, which no code declares (removed? run "
            "`manage.py bgjobs sync-schedules`); nothing enqueued",
            key,
        )
        return None
    spec, schedule = found
    fired = Fired()
    latest = schedule.latest_slot(now)
    last = ScheduleSlot.objects.filter(schedule=row).aggregate(last=Max("slot_at"))["last"]
    if last is not None and last >= latest:
        fired.already = True
    else:
        for slot, reason in _plan(schedule, last, latest, now):
            if reason:
                _record_skip(row, slot, reason, now, fired)
            else:
                _claim(row, spec, schedule, slot, now, fired)
    if schedule.every is not None and schedule.overlap == "allow":
        # Claimed ahead, due at its exact time: punctual whatever beat's phase.
        _claim(row, spec, schedule, schedule.next_slot(now), now, fired)
    for slot in fired.enqueued:
        logger.info(
            "schedule %s: enqueued the job for %s",
            key,
            slot.isoformat(),
            extra={"schedule": key, "slot": slot.isoformat()},
        )
    for slot, reason in fired.skipped:
        logger.info(
            "schedule %s: skipped %s (%s)",
            key,
            slot.isoformat(),
            reason,
            extra={"schedule": key, "slot": slot.isoformat(), "reason": reason},
        )
    return fired


def _plan(
    schedule: Schedule, last: datetime | None, latest: datetime, now: datetime
) -> list[tuple[datetime, str]]:
    """The slots to handle now, each with "" (enqueue) or why it is skipped."""
    if schedule.catch_up == "all" and last is not None:
        return [(slot, "") for slot in schedule.slots_between(last, latest, MAX_CATCH_UP)]
    if schedule.catch_up == "none" and not schedule.due_on_time(latest, now):
        late = int((now - latest).total_seconds())
        return [(latest, f"missed: fired {late}s after its time and catch_up='none'")]
    return [(latest, "")]


def _previous_unfinished(row: JobSchedule, before: datetime) -> Job | None:
    previous = (
        ScheduleSlot.objects.filter(schedule=row, slot_at__lt=before, job__isnull=False)
        .select_related("job")
        .order_by("-slot_at")
        .first()
    )
    if previous is None or previous.job is None or previous.job.status in FINISHED:
        return None
    return previous.job


def _claim(
    row: JobSchedule, spec: JobSpec, schedule: Schedule, slot: datetime, now: datetime, fired: Fired
) -> None:
    """Enqueue the job of ``slot`` unless the slot was claimed already."""
    if schedule.overlap == "skip" and (busy := _previous_unfinished(row, slot)):
        _record_skip(
            row, slot, f"overlap='skip': the previous run ({busy.pk}) is {busy.status}", now, fired
        )
        return
    job_function: JobFunction[..., object] = JobFunction(spec)
    if slot > now:
        job_function = job_function.using(run_after=slot)
    try:
        with transaction.atomic():
            claimed = ScheduleSlot.objects.create(schedule=row, slot_at=slot, created_at=now)
            job = job_function.enqueue(*schedule.args, **schedule.kwargs)
            claimed.job = job
            claimed.save(update_fields=["job"])
    except IntegrityError:
        return  # claimed by another fire: the other beat, or this message delivered twice
    fired.enqueued.append(slot)


def _record_skip(
    row: JobSchedule, slot: datetime, reason: str, now: datetime, fired: Fired
) -> None:
    try:
        with transaction.atomic():
            ScheduleSlot.objects.create(
                schedule=row, slot_at=slot, skipped=reason[:255], created_at=now
            )
    except IntegrityError:
        return
    fired.skipped.append((slot, reason))


def cancel_future_slots(row: JobSchedule) -> int:
    """Cancel the jobs claimed ahead for slots still to come (a paused or removed schedule),
    and give their slots back: resumed before that time, the schedule claims them again."""
    from django_bgjobs import states

    cancelled = 0
    with transaction.atomic():
        for slot in ScheduleSlot.objects.filter(
            schedule=row, job__status=JobStatus.SCHEDULED
        ).select_related("job"):
            if slot.job is not None and states.cancel(slot.job):
                slot.delete()
                cancelled += 1
    return cancelled
