"""Code-declared schedules -> django-celery-beat rows, reconciled idempotently.

Runs after ``migrate`` (post_migrate) and with ``manage.py bgjobs sync-schedules``. Each schedule
has a stable name, ``bgjobs:<key>``, so a restart or a second deploy updates rows instead of
adding them. The code owns the definition (cron, time zone, interval, arguments, queue); the
admin owns ``enabled``, so a schedule paused there stays paused across deploys. A schedule no
longer in code is disabled (and its jobs claimed ahead cancelled), not left firing, and
reported. What differs between the code and the database before a sync is its drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_bgjobs.models import JobSchedule
from django_bgjobs.registry import JobSpec
from django_bgjobs.schedules import Schedule
from django_bgjobs.scheduling.beat import FIRE_TASK, cancel_future_slots, declared

PREFIX = "bgjobs:"


def definition(spec: JobSpec, schedule: Schedule) -> dict[str, Any]:
    """The JobSchedule fields the code decides."""
    return {
        "job_name": spec.name,
        "cron": schedule.cron or "",
        "timezone": (schedule.tz or "UTC") if schedule.cron else "",
        "every_seconds": int(schedule.every.total_seconds()) if schedule.every else None,
        "args": list(schedule.args),
        "kwargs": dict(schedule.kwargs),
        "catch_up": schedule.catch_up,
        "overlap": schedule.overlap,
    }


def beat_schedule(schedule: Schedule) -> dict[str, Any]:
    """The PeriodicTask's crontab or interval for this schedule (rows shared, get_or_create)."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    if schedule.every is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=int(schedule.every.total_seconds()), period=IntervalSchedule.SECONDS
        )
        return {"interval": interval, "crontab": None}
    assert schedule.cron is not None
    minute, hour, day_of_month, month_of_year, day_of_week = schedule.cron.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=schedule.tz or "UTC",
    )
    return {"crontab": crontab, "interval": None}


def _beat_drift(task: Any, schedule: Schedule, spec: JobSpec) -> list[str]:
    """How the PeriodicTask differs from what the code asks (edited in beat's admin?)."""
    wanted = _describe_beat_fields(schedule)
    drift = []
    actual: dict[str, Any]
    if task.crontab is not None:
        c = task.crontab
        actual = {
            "cron": f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}",
            "tz": str(c.timezone),
            "every": None,
        }
    elif task.interval is not None:
        seconds = int(timedelta(**{task.interval.period: task.interval.every}).total_seconds())
        actual = {"cron": None, "tz": None, "every": seconds}
    else:
        actual = {"cron": None, "tz": None, "every": None}
    for name, value in wanted.items():
        if actual[name] != value:
            drift.append(f"beat's {name} is {actual[name]!r}, code says {value!r}")
    if task.queue != spec.queue:
        drift.append(f"beat's queue is {task.queue!r}, code says {spec.queue!r}")
    return drift


def _describe_beat_fields(schedule: Schedule) -> dict[str, Any]:
    if schedule.every is not None:
        return {"cron": None, "tz": None, "every": int(schedule.every.total_seconds())}
    return {"cron": schedule.cron, "tz": schedule.tz or "UTC", "every": None}


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # no longer in code: disabled
    drift: dict[str, list[str]] = field(default_factory=dict)  # before this sync

    def lines(self) -> list[str]:
        out = [
            f"{what} {len(keys)}: {', '.join(keys)}"
            for what, keys in (
                ("created", self.created),
                ("updated", self.updated),
                ("removed from code, disabled", self.removed),
            )
            if keys
        ]
        out.append(f"unchanged {len(self.unchanged)}")
        for key, differences in self.drift.items():
            out.extend(f"drift {key}: {difference}" for difference in differences)
        return out


def drift_of(row: JobSchedule, found: tuple[JobSpec, Schedule] | None) -> list[str]:
    """What the database says differently from the code for this schedule."""
    if found is None:
        return ["no longer declared in code"] if row.in_code else []
    spec, schedule = found
    differences = [
        f"{name} is {getattr(row, name)!r} in the database, {value!r} in code"
        for name, value in definition(spec, schedule).items()
        if getattr(row, name) != value
    ]
    if not row.in_code:
        differences.append("declared in code again")
    if row.periodic_task is None:
        differences.append("its beat task is missing")
    else:
        differences.extend(_beat_drift(row.periodic_task, schedule, spec))
    return differences


def sync(apply: bool = True) -> SyncReport:
    """Reconcile the database with the code (``apply=False``: only report the drift)."""
    from django_celery_beat.models import PeriodicTask

    report = SyncReport()
    code = declared()
    now = timezone.now()
    rows = {
        row.key: row
        for row in JobSchedule.objects.select_related(
            "periodic_task__crontab", "periodic_task__interval"
        )
    }
    for key, existing in rows.items():
        if differences := drift_of(existing, code.get(key)):
            report.drift[key] = differences
    if not apply:
        return report
    with transaction.atomic():
        for key, (spec, schedule) in code.items():
            row = rows.get(key)
            fields = {
                "name": f"{PREFIX}{key}",
                "task": FIRE_TASK,
                "kwargs": json.dumps({"key": key}),
                "queue": spec.queue,
                "description": f"django-bgjobs: {spec.name}, {schedule.describe()}. "
                "Defined in code; pause it here, change it in code.",
                **beat_schedule(schedule),
            }
            task = PeriodicTask.objects.filter(name=fields["name"]).first()
            if task is None:
                task = PeriodicTask.objects.create(**fields, enabled=True)
            else:
                came_back = row is not None and not row.in_code
                changed = [name for name, value in fields.items() if getattr(task, name) != value]
                if changed or came_back:
                    for name in changed:
                        setattr(task, name, fields[name])
                    if came_back:
                        task.enabled = True  # disabled by its removal, not by a person
                    task.save()
            values = {**definition(spec, schedule), "periodic_task": task, "in_code": True}
            if row is None:
                JobSchedule.objects.create(key=key, synced_at=now, **values)
                report.created.append(key)
            elif key in report.drift:
                JobSchedule.objects.filter(pk=row.pk).update(synced_at=now, **values)
                report.updated.append(key)
            else:
                report.unchanged.append(key)
        for key, gone in rows.items():
            if key in code or not gone.in_code:
                continue
            JobSchedule.objects.filter(pk=gone.pk).update(in_code=False, synced_at=now)
            if gone.periodic_task is not None:
                PeriodicTask.objects.filter(pk=gone.periodic_task.pk).update(enabled=False)
                _beat_changed()
            cancel_future_slots(gone)
            report.removed.append(key)
    return report


def _beat_changed() -> None:
    """A queryset update() skips django-celery-beat's save signals: tell beat to reload."""
    from django_celery_beat.models import PeriodicTasks

    PeriodicTasks.update_changed()
