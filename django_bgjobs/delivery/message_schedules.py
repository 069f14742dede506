"""QStash schedules (``POST /v2/schedules/{destination}`` with ``Upstash-Cron``): a message
template published once per cron slot.

Stored like the code's own schedules: a django-celery-beat ``PeriodicTask``
(``bgjobs-message:<id>``, a crontab in the schedule's time zone) fires
``django_bgjobs.fire_message_schedule``, and the task works out the slot from the clock
(``Schedule.latest_slot``, cronsim's rules) and publishes the template with the deduplication id
``<id>:<slot>``. Two beats, a restarted beat or a duplicated task message publish once: the
schedule's ``last_fired_at`` (the slot last published) stops a fire for a slot already done,
and the deduplication id covers concurrent fires within DELIVERY_DEDUP_WINDOW. Like QStash,
missed slots are not caught up: a fire publishes the newest slot only.

Pausing is the PeriodicTask's ``enabled`` (beat stops firing it), as in the schedules admin.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import shared_task
from cronsim import CronSim, CronSimError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from django_bgjobs.delivery.admission import job_queue
from django_bgjobs.delivery.models import MessageSchedule
from django_bgjobs.delivery.publish import (
    Publish,
    Published,
    PublishError,
    check_destination_url,
    is_url,
)
from django_bgjobs.schedules import Schedule, beat_cannot_run

logger = logging.getLogger("django_bgjobs.schedules")

FIRE_TASK = "django_bgjobs.fire_message_schedule"
PREFIX = "bgjobs-message:"
CRON_TZ = "CRON_TZ="
MAX_ID = 64  # MessageSchedule.id
_BASE58 = "".join(c for c in string.ascii_letters + string.digits if c not in "0OIl")


def new_schedule_id() -> str:
    return "scd_" + "".join(secrets.choice(_BASE58) for _ in range(28))


def parse_cron(cron: str) -> Schedule:
    """``Upstash-Cron`` as a Schedule: five fields, optionally after ``CRON_TZ=Area/City``
    (default UTC). Raises ValueError saying what is wrong."""
    if not isinstance(cron, str) or not cron.strip():
        raise ValueError(
            "the cron expression is empty: give five fields, minute hour "
            "day-of-month month day-of-week (e.g. '*/5 * * * *')"
        )
    text, zone = cron.strip(), "UTC"
    if text.startswith(CRON_TZ):
        head, _, text = text.partition(" ")
        zone = head[len(CRON_TZ) :]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"cron {cron!r}: {head} is not a time zone (give an IANA name, "
                "e.g. CRON_TZ=Europe/Paris)"
            ) from None
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {cron!r}: give five fields, minute hour day-of-month month "
            "day-of-week (e.g. '*/5 * * * *'), optionally after CRON_TZ=Area/City"
        )
    try:
        CronSim(" ".join(fields), datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"cron {cron!r} is not valid: {exc}") from None
    if problem := beat_cannot_run(" ".join(fields)):
        raise ValueError(f"cron {cron!r}: {problem}")
    return Schedule(cron=" ".join(fields), tz=zone)


def _check_id(schedule_id: str) -> None:
    if (
        not isinstance(schedule_id, str)
        or not 0 < len(schedule_id) <= MAX_ID
        or any(ord(c) <= 0x20 or ord(c) == 0x7F or c in "/?#" for c in schedule_id)
    ):
        raise ValueError(
            f"schedule id {schedule_id!r}: 1 to {MAX_ID} characters, without "
            "spaces, control characters, '/', '?' or '#'"
        )


def _check_template(destination: str, template: Publish) -> None:
    from django_bgjobs.delivery.publish import check_request

    if not destination:
        raise ValueError("the destination is empty: give a URL or a URL group's name")
    if "://" in destination and not is_url(destination):
        raise ValueError(
            f"destination {destination!r} is not an http(s) URL (nor a URL group's name)"
        )
    try:
        if is_url(destination):
            check_destination_url(destination)
        check_request(replace(template, destination=destination))
    except PublishError as exc:
        raise ValueError(str(exc)) from None
    if template.not_before is not None:
        raise ValueError(
            "a schedule's messages cannot have not_before (Upstash-Not-Before): "
            "each is published at its slot; use delay to postpone them"
        )


def create(
    destination: str, cron: str, template: Publish, *, schedule_id: str | None = None
) -> MessageSchedule:
    """Make the schedule, or replace the one with ``schedule_id`` (QStash's upsert: its
    definition changes, its id, creation time, last fire and pause state stay). Raises
    ValueError for a bad cron, id or template."""
    schedule = parse_cron(cron)
    if schedule_id is not None:
        _check_id(schedule_id)
    _check_template(destination, template)
    sid = schedule_id or new_schedule_id()
    stored = replace(
        template,
        destination=destination,
        schedule_id=sid,
        deduplication_id=None,
        content_based_deduplication=False,
    )
    now = timezone.now()
    with transaction.atomic():
        row, _ = MessageSchedule.objects.update_or_create(
            pk=sid,
            defaults={
                "destination": destination,
                "cron": cron.strip(),
                "template": stored.to_json(),
                "queue": template.queue or "",
            },
            create_defaults={
                "destination": destination,
                "cron": cron.strip(),
                "template": stored.to_json(),
                "queue": template.queue or "",
                "created_at": now,
            },
        )
        _sync_beat(row, schedule, enabled=None)
    return row


def _sync_beat(row: MessageSchedule, schedule: Schedule, enabled: bool | None) -> None:
    """Create or update the row's PeriodicTask (``enabled=None``: left as it is; True when
    made). save(), not update(): django-celery-beat's signal tells beat to reload."""
    from django_celery_beat.models import PeriodicTask

    from django_bgjobs.scheduling.sync import beat_schedule

    fields: dict[str, Any] = {
        "task": FIRE_TASK,
        "kwargs": json.dumps({"schedule_id": row.pk}),
        "queue": job_queue(),
        "description": f"django-bgjobs message schedule: {schedule.describe()} -> "
        f"{row.destination}. Pause it in the message schedules admin.",
        **beat_schedule(schedule),
    }
    task = row.periodic_task or PeriodicTask.objects.filter(name=PREFIX + row.pk).first()
    if task is None:
        task = PeriodicTask(
            name=PREFIX + row.pk, enabled=True if enabled is None else enabled, **fields
        )
        task.save()
    else:
        changed = [name for name, value in fields.items() if getattr(task, name) != value]
        for name in changed:
            setattr(task, name, fields[name])
        if enabled is not None and task.enabled != enabled:
            task.enabled = enabled
            changed.append("enabled")
        if changed:
            task.save()
    if row.periodic_task_id != task.pk:
        row.periodic_task = task
        row.save(update_fields=["periodic_task"])


def _set_enabled(schedule_id: str, enabled: bool) -> bool:
    with transaction.atomic():
        row = (
            MessageSchedule.objects.select_for_update(of=("self",))
            .select_related("periodic_task")
            .filter(pk=schedule_id)
            .first()
        )
        if row is None:
            return False
        _sync_beat(row, parse_cron(row.cron), enabled=enabled)
    return True


def pause(schedule_id: str) -> bool:
    """Stop firing (beat skips a disabled task). False: no such schedule."""
    return _set_enabled(schedule_id, False)


def resume(schedule_id: str) -> bool:
    """Fire again from the next slot on (missed slots are not published). False: no such
    schedule."""
    return _set_enabled(schedule_id, True)


def delete(schedule_id: str) -> bool:
    """Remove the schedule and its beat task; messages it already published are left alone.
    False: no such schedule."""
    from django_celery_beat.models import PeriodicTask

    with transaction.atomic():
        row = MessageSchedule.objects.filter(pk=schedule_id).first()
        if row is None:
            return False
        # delete() on the instances, not a queryset: the signal tells beat to reload.
        for task in PeriodicTask.objects.filter(
            Q(name=PREFIX + schedule_id) | Q(pk=row.periodic_task_id or 0)
        ):
            task.delete()
        row.delete()
    return True


def next_run(row: MessageSchedule, now: datetime | None = None) -> datetime | None:
    """When the schedule publishes next; None while it is paused (or its cron is no longer
    valid)."""
    if row.paused:
        return None
    try:
        schedule = parse_cron(row.cron)
    except ValueError:
        return None
    return schedule.next_slot(now or timezone.now())


@dataclass(frozen=True)
class Fired:
    """What one fire did (for logs, the admin and tests)."""

    slot: datetime | None = None
    published: list[Published] = field(default_factory=list)
    skipped: str = ""  # why nothing was published


@shared_task(name=FIRE_TASK, acks_late=True, ignore_result=True, serializer="json")
def fire_message_schedule(schedule_id: str) -> str:
    """Beat's task for the message schedule ``schedule_id``."""
    fired = fire(schedule_id, timezone.now())
    if fired.skipped:
        return fired.skipped
    return f"published {len(fired.published)} message(s) for {fired.slot}"


def fire(schedule_id: str, now: datetime) -> Fired:
    """Publish the schedule's message for its newest slot at ``now``, unless it was already."""
    from django_bgjobs.delivery.publish import send

    row = MessageSchedule.objects.select_related("periodic_task").filter(pk=schedule_id).first()
    if row is None:
        logger.warning(
            "beat fired message schedule %r, which no longer exists; nothing published", schedule_id
        )
        return Fired(skipped="unknown schedule")
    if row.paused:  # a task sent just before the pause
        return Fired(skipped="paused")
    try:
        slot = parse_cron(row.cron).latest_slot(now)
    except ValueError as exc:
        logger.warning("message schedule %s: %s; nothing published", row.pk, exc)
        return Fired(skipped=str(exc))
    if row.last_fired_at is not None and row.last_fired_at >= slot:
        return Fired(slot=slot, skipped="slot already published")
    request = replace(
        Publish.from_json(row.template),
        destination=row.destination,
        schedule_id=row.pk,
        deduplication_id=f"{row.pk}:{slot.isoformat()}",
        content_based_deduplication=False,
        not_before=None,
    )
    try:
        with transaction.atomic():
            published = send(request)
            # Never backwards: a late fire for an older slot leaves the newer one recorded.
            MessageSchedule.objects.filter(
                Q(last_fired_at__isnull=True) | Q(last_fired_at__lt=slot),
                pk=row.pk,
            ).update(last_fired_at=slot, last_message_id=published[0].message_id)
    except PublishError as exc:  # e.g. its URL group was deleted
        logger.warning(
            "message schedule %s: slot %s not published: %s",
            row.pk,
            slot.isoformat(),
            exc,
            extra={"schedule": row.pk, "slot": slot.isoformat()},
        )
        return Fired(slot=slot, skipped=f"not published: {exc}")
    if all(p.deduplicated for p in published):  # a concurrent fire published it
        return Fired(
            slot=slot, published=published, skipped="slot already published (deduplicated)"
        )
    logger.info(
        "message schedule %s: published %s for %s",
        row.pk,
        ", ".join(p.message_id for p in published),
        slot.isoformat(),
        extra={"schedule": row.pk, "slot": slot.isoformat()},
    )
    return Fired(slot=slot, published=published)
