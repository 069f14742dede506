"""The schedules declared in code, with their next and last runs, drift, and run now, pause
and resume."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import (
    DeferringChangeList,
    ReadOnlyAdmin,
    apply_each,
    job_badge_link,
    job_link,
    link,
    payload_columns,
    precise_time,
    short_id,
    slot_time,
    status_badge,
    time_ago,
    time_until,
)
from django_bgjobs.decorators import JobFunction
from django_bgjobs.exceptions import JobConfigurationError
from django_bgjobs.models import (
    JobSchedule,
    JobStatus,
    ScheduleSlot,
)
from django_bgjobs.registry import JobSpec
from django_bgjobs.schedules import Schedule

SCHEDULE_STATE_COLOURS: dict[str, str] = {
    "enabled": "#146c43",
    "paused": "#5c636a",
    "removed": "#b02a37",
    "no-beat-task": "#a04a00",
}
SCHEDULE_STATE_LABELS: dict[str, str] = {
    "enabled": "enabled",
    "paused": "paused",
    "removed": "removed from code",
    "no-beat-task": "no beat task (not synced)",
}
RECENT_SLOTS = 20


@dataclass(frozen=True)
class ScheduleOverview:
    """What the schedules admin shows of one row beyond its columns, loaded for a whole page in
    one query (the slots' ids come from subqueries in ``get_queryset``)."""

    now: datetime
    declared: tuple[JobSpec, Schedule] | None  # the code's version; None: not in code
    last: ScheduleSlot | None  # the newest slot at or before now: the last run
    ahead: ScheduleSlot | None  # the first slot after now: claimed ahead (every= schedules)


def load_overviews(rows: Iterable[JobSchedule], now: datetime | None = None) -> None:
    """Attach a ScheduleOverview to each row (annotated by JobScheduleAdmin.get_queryset)."""
    from django_bgjobs.scheduling.beat import declared

    rows = list(rows)
    now = now or timezone.now()
    wanted = {getattr(row, name, None) for row in rows for name in ("last_slot", "ahead_slot")}
    wanted.discard(None)
    slots = ScheduleSlot.objects.select_related("job").in_bulk(wanted) if wanted else {}
    code = declared()
    for row in rows:
        row._bgjobs_overview = ScheduleOverview(  # type: ignore[attr-defined]
            now=now,
            declared=code.get(row.key),
            last=slots.get(getattr(row, "last_slot", None)),
            ahead=slots.get(getattr(row, "ahead_slot", None)),
        )


def describe_row(row: JobSchedule) -> str:
    """The row's own definition in Schedule.describe()'s words (the code's may differ: drift)."""
    try:
        if row.cron:
            return Schedule(cron=row.cron, tz=row.timezone or None).describe()
        if row.every_seconds:
            return Schedule(every=timedelta(seconds=row.every_seconds)).describe()
    except JobConfigurationError:  # a row no code would write; show it as it is
        pass
    return row.cron or "-"


def schedule_state(row: JobSchedule) -> str:
    if not row.in_code:
        return "removed"
    if row.periodic_task is None:
        return "no-beat-task"
    return "enabled" if row.periodic_task.enabled else "paused"


class ScheduleStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("enabled", "enabled"), ("paused", "paused"), ("removed", "removed from code")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "enabled":
                return queryset.filter(in_code=True, periodic_task__enabled=True)
            case "paused":
                return queryset.filter(in_code=True, periodic_task__enabled=False)
            case "removed":
                return queryset.filter(in_code=False)
        return queryset


class ScheduleChangeList(DeferringChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # The page's queryset caches its rows: the template iterates these same objects.
        load_overviews(self.result_list)


@admin.register(JobSchedule)
class JobScheduleAdmin(ReadOnlyAdmin[JobSchedule]):
    # schedules are declared in code
    # a row of a schedule still in code would come back at the next sync
    """The code owns each schedule's definition (read-only here); the admin owns pausing it."""

    list_display = (
        "key",
        "job_name",
        "when_display",
        "state_display",
        "next_run_display",
        "last_run_display",
        "drift_display",
    )
    list_filter = (ScheduleStateFilter,)
    search_fields = ("key", "job_name")
    actions = ("run_now", "pause", "resume")
    changelist_class = ScheduleChangeList
    change_form_template = "django_bgjobs/admin/schedule_change_form.html"
    fieldsets = (
        (None, {"fields": list_display}),  # the list's columns, on the page too
        (
            _("Definition, as last synced from code"),
            {
                "fields": (
                    "arguments",
                    "keyword_arguments",
                    "catch_up",
                    "overlap",
                    "beat_task_display",
                    "synced_at",
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobSchedule]:
        now = timezone.now()
        slots = ScheduleSlot.objects.filter(schedule=OuterRef("pk"))
        # Each subquery is a short walk of the (schedule, slot_at) unique index, however many
        # slots a schedule has accumulated.
        return (
            super()
            .get_queryset(request)
            .select_related(
                "periodic_task__crontab",
                "periodic_task__interval",  # for drift_of
            )
            .annotate(
                last_slot=Subquery(
                    slots.filter(slot_at__lte=now).order_by("-slot_at").values("pk")[:1]
                ),
                ahead_slot=Subquery(
                    slots.filter(slot_at__gt=now).order_by("slot_at").values("pk")[:1]
                ),
            )
        )

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> JobSchedule | None:
        row = super().get_object(request, object_id, from_field)
        if row is not None:
            load_overviews([row])
        return row

    def has_run_schedule_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.run_schedule")

    def page_context(self, request: HttpRequest, obj: JobSchedule) -> dict[str, Any]:
        recent = (
            ScheduleSlot.objects.filter(schedule_id=obj.pk)
            .select_related("job")
            .order_by("-slot_at")[:RECENT_SLOTS]
        )
        return {
            "recent_slots": [
                {
                    "slot": slot_time(s.slot_at),
                    "handled": precise_time(s.created_at),
                    "outcome": self._slot_outcome(s),
                }
                for s in recent
            ]
        }

    # --- columns ---

    @staticmethod
    def _overview(row: JobSchedule) -> ScheduleOverview:
        if not hasattr(row, "_bgjobs_overview"):  # a row that did not come through a page
            load_overviews([row])
        overview: ScheduleOverview = row._bgjobs_overview  # type: ignore[attr-defined]
        return overview

    @staticmethod
    def _slot_outcome(slot: ScheduleSlot) -> str:
        if slot.skipped:
            return format_html("skipped: {}", slot.skipped)
        if slot.job is None:
            return "job pruned"  # maintenance deleted the finished job, the slot stays
        return job_badge_link(slot.job)

    @admin.display(description=_("when"))
    def when_display(self, row: JobSchedule) -> str:
        return describe_row(row)

    @admin.display(description=_("state"))
    def state_display(self, row: JobSchedule) -> str:
        state = schedule_state(row)
        return status_badge(state, SCHEDULE_STATE_LABELS[state], SCHEDULE_STATE_COLOURS)

    @admin.display(description=_("next run"))
    def next_run_display(self, row: JobSchedule) -> str:
        overview = self._overview(row)
        state = schedule_state(row)
        if state != "enabled":
            return "paused" if state == "paused" else "-"
        if overview.declared is None:
            return "-"  # in the database only; the drift column says so
        ahead = overview.ahead
        if ahead is not None:
            # Beat already claimed the next slot (its job due at its exact time): that job is
            # the next run, or, when it was cancelled, the slot is taken and will not run.
            claimed = (
                job_link(ahead.job, "claimed")
                if ahead.job is not None and ahead.job.status == JobStatus.SCHEDULED
                else self._slot_outcome(ahead)
            )
            return format_html(
                "{} ({}) {}",
                slot_time(ahead.slot_at),
                time_until(ahead.slot_at, overview.now),
                claimed,
            )
        upcoming = overview.declared[1].next_slot(overview.now)
        return format_html("{} ({})", slot_time(upcoming), time_until(upcoming, overview.now))

    @admin.display(description=_("last run"))
    def last_run_display(self, row: JobSchedule) -> str:
        overview = self._overview(row)
        slot = overview.last
        if slot is None:
            return "never"
        return format_html(
            "{} ({}) {}",
            slot_time(slot.slot_at),
            time_ago(slot.slot_at, overview.now),
            self._slot_outcome(slot),
        )

    @admin.display(description=_("drift from code"))
    def drift_display(self, row: JobSchedule) -> str:
        from django_bgjobs.scheduling.sync import drift_of

        differences = drift_of(row, self._overview(row).declared)
        if not differences:
            return "none"
        return format_html(
            '<ul class="bgjobs-drift" style="margin:0;padding-left:1em;color:#a04a00">{}</ul>',
            format_html_join("", "<li>{}</li>", ((d,) for d in differences)),
        )

    arguments, keyword_arguments = payload_columns("job_name", json.dumps)

    @admin.display(description=_("beat task"))
    def beat_task_display(self, row: JobSchedule) -> str:
        task = row.periodic_task
        if task is None:
            return "-"
        try:  # django-celery-beat's admin, when the project keeps it
            url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        except NoReverseMatch:
            return str(task.name)
        return link(url, task.name)

    # --- actions ---

    @admin.action(description=_("Run now (not tied to a slot)"), permissions=["run_schedule"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[JobSchedule]) -> None:
        from django_bgjobs.scheduling.beat import declared

        code = declared()

        def run(row: JobSchedule) -> str | None:
            found = code.get(row.key)
            if found is None:
                return None
            spec, schedule = found  # the code's arguments: it owns the definition
            job = JobFunction(spec).enqueue(*schedule.args, **schedule.kwargs)
            self.message_user(
                request,
                format_html(
                    "Run now: {} enqueued for {}.",
                    job_link(job, f"job {short_id(job.pk)}"),
                    row.key,
                ),
                messages.SUCCESS,
            )
            return f"Run now: enqueued job {job.pk}."

        apply_each(
            self,
            request,
            queryset,
            run,
            skipped="{n} schedule(s) skipped: no longer declared in code.",
        )

    @admin.action(description=_("Pause (cancels jobs claimed ahead)"), permissions=["run_schedule"])
    def pause(self, request: HttpRequest, queryset: QuerySet[JobSchedule]) -> None:
        from django_bgjobs.scheduling.beat import cancel_future_slots

        def pause_one(row: JobSchedule) -> str | None:
            task = row.periodic_task
            if task is None or not row.in_code or not task.enabled:
                return None
            with transaction.atomic():
                task.enabled = False
                task.save()  # save(), not update(): django-celery-beat tells beat to reload
                cancelled = cancel_future_slots(row)
            return f"Paused; {cancelled} job(s) claimed ahead cancelled."

        apply_each(
            self,
            request,
            queryset,
            pause_one,
            done="{n} schedule(s) paused; they stay paused across deploys until resumed.",
            skipped="{n} schedule(s) were already paused or removed from code.",
        )

    @admin.action(description=_("Resume"), permissions=["run_schedule"])
    def resume(self, request: HttpRequest, queryset: QuerySet[JobSchedule]) -> None:
        def resume_one(row: JobSchedule) -> str | None:
            task = row.periodic_task
            # A schedule gone from code has nothing to fire: its row stays only as history.
            if task is None or not row.in_code or task.enabled:
                return None
            task.enabled = True
            task.save()
            return "Resumed."

        apply_each(
            self,
            request,
            queryset,
            resume_one,
            done="{n} schedule(s) resumed.",
            skipped="{n} schedule(s) skipped: already enabled, or removed from code (or never "
            "synced: run `manage.py bgjobs sync-schedules`).",
        )
