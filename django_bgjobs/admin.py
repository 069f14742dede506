"""The admin: every job and every attempt, read-only, with retry and cancel actions (and, in
admin_views.py, the dashboard, the job page's buttons and timeline, the bulk actions); the
schedules declared in code, with their next and last runs, drift, and run now/pause/resume; the
webhook receipts, read-only, with their verification outcome, body and job, and replay."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import models, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Length
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext_lazy as _

from django_bgjobs import states
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.exceptions import JobConfigurationError
from django_bgjobs.models import (
    InboundWebhook,
    Job,
    JobDashboard,
    JobSchedule,
    JobStatus,
    Message,
    RunStatus,
    ScheduleSlot,
)
from django_bgjobs.redaction import masked_payload
from django_bgjobs.registry import JobFunction, JobSpec, registry
from django_bgjobs.schedules import Schedule
from django_bgjobs.webhooks.endpoints import SCHEMES

if TYPE_CHECKING:  # django-stubs' generics; not subscriptable at run time
    from django.utils.functional import _StrOrPromise as StrOrPromise

    _AdminBase = admin.ModelAdmin[Job]
    _ScheduleAdminBase = admin.ModelAdmin[JobSchedule]
    _ReceiptAdminBase = admin.ModelAdmin[InboundWebhook]
    _DashboardAdminBase = admin.ModelAdmin[JobDashboard]
else:
    _AdminBase = admin.ModelAdmin
    _ScheduleAdminBase = admin.ModelAdmin
    _ReceiptAdminBase = admin.ModelAdmin
    _DashboardAdminBase = admin.ModelAdmin

M = TypeVar("M", bound=models.Model)

# Badge backgrounds, dark enough for white text (contrast >= 4.5:1).
STATUS_COLOURS: dict[str, str] = {
    JobStatus.SCHEDULED: "#5c636a",
    JobStatus.QUEUED: "#0b5ed7",
    JobStatus.RUNNING: "#6f42c1",
    JobStatus.RETRYING: "#a04a00",
    JobStatus.SUCCEEDED: "#146c43",
    JobStatus.DEAD: "#b02a37",
    JobStatus.CANCELLED: "#495057",
}
RUN_STATUS_COLOURS: dict[str, str] = {
    RunStatus.RUNNING: "#6f42c1",
    RunStatus.SUCCEEDED: "#146c43",
    RunStatus.FAILED: "#b02a37",
    RunStatus.LOST: "#a04a00",
    RunStatus.SUPERSEDED: "#5c636a",
    RunStatus.CANCELLED: "#495057",
    RunStatus.RELEASED: "#087990",  # given back to the queue at shutdown: not a failure
}


def status_badge(status: str, label: str, colours: dict[str, str] = STATUS_COLOURS) -> str:
    return format_html(
        '<span class="bgjobs-status bgjobs-status-{}" style="color:#fff;background:{};'
        'padding:1px 6px;border-radius:8px;white-space:nowrap">{}</span>',
        status,
        colours.get(status, "#5c636a"),
        label,
    )


def precise_time(value: datetime | None) -> str:
    """Times to the millisecond: retries and backoff are read in seconds."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def slot_time(value: datetime) -> str:
    """Slots fall on whole seconds; the zone is named, as a cron may run in another one."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def job_link(job: Job, text: str) -> str:
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:django_bgjobs_job_change", args=[job.pk]), text
    )


def job_badge_link(job: Job) -> str:
    return job_link(job, status_badge(job.status, job.get_status_display()))


def apply_each(
    model_admin: admin.ModelAdmin[M],
    request: HttpRequest,
    objects: Iterable[M],
    change: Callable[[M], str | None],
) -> tuple[int, int]:
    """Run an action on each selected object; ``change`` returns what to write in the admin's
    history (LogEntry), or None when it left the object alone. Returns (done, skipped)."""
    done = skipped = 0
    for obj in objects:
        logged = change(obj)
        if logged is None:
            skipped += 1
        else:
            done += 1
            model_admin.log_change(request, obj, logged)
    return done, skipped


def _time_column(attr: str, label: StrOrPromise) -> Callable[[Any, Any], str]:
    @admin.display(description=label, ordering=attr)
    def column(admin_: Any, obj: Any) -> str:
        return precise_time(getattr(obj, attr))

    return column


class QueueFilter(admin.SimpleListFilter):
    """The queues of BGJOBS["QUEUES"], not a SELECT DISTINCT over every job."""

    title = _("queue")
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        queues = list(bgjobs_settings.QUEUES)
        if self.value() and self.value() not in queues:  # a queue since removed, from a link
            queues.append(str(self.value()))
        return [(queue, queue) for queue in queues]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class JobNameFilter(admin.SimpleListFilter):
    """The job names the code defines (the registry), not a SELECT DISTINCT over every job.
    A name no code defines any more can still be filtered on from a link (the dashboard's)."""

    title = _("name")
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = registry.names()
        if self.value() and self.value() not in names:
            names.append(str(self.value()))
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(name=self.value()) if self.value() else queryset


COUNT_CAP = 10_000


class CappedPaginator(Paginator):  # type: ignore[type-arg]
    """Counts the matching jobs up to COUNT_CAP + 1 only: an exact COUNT(*) of a filter that
    matches most of a million rows reads them all, on every page load. Beyond the cap the list
    says "more than 10,000" and pages up to there (filters narrow it down)."""

    @cached_property
    def count(self) -> int:
        rows: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        return rows.order_by().values("pk")[: COUNT_CAP + 1].count()


class JobChangeList(ChangeList):
    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Any]:
        # The list shows neither the payload nor the result: not read (they can be large).
        return super().get_queryset(request, exclude_parameters).defer("args", "kwargs", "result")

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if self.result_count == 0:  # a filter nothing matches: do not search the table twice
            self.result_list = self.queryset.none()
        self.count_capped = self.result_count > COUNT_CAP  # read by job/pagination.html
        self.count_cap = f"{COUNT_CAP:,}"


@admin.register(Job)
class JobAdmin(_AdminBase):
    list_display = (
        "short_id",
        "name",
        "status_display",
        "queue",
        "attempts_display",
        "error_excerpt",
        "created_at",
        "when_display",
        "schedule_display",
    )
    list_filter = ("status", QueueFilter, JobNameFilter, "created_at")
    search_fields = ("=id", "name", "=idempotency_key")
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over millions of rows on every page load
    paginator = CappedPaginator
    # "Show counts" would count every job for each filter (a scan of the table each): the
    # dashboard has the counts that matter, from partial indexes.
    show_facets = admin.ShowFacets.NEVER
    actions = ("retry_jobs", "cancel_jobs")
    change_list_template = "django_bgjobs/admin/job_change_list.html"
    # The attempts are drawn as a timeline by the template (admin_views.timeline).
    change_form_template = "django_bgjobs/admin/job_change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "name",
                    "status_display",
                    "queue",
                    "priority",
                    "idempotency_key",
                    "schedule_display",
                    "webhook_display",
                    "message_display",
                )
            },
        ),
        (
            _("Payload and result"),
            {"fields": ("arguments", "keyword_arguments", "result_display", "error")},
        ),
        (
            _("Attempts"),
            {
                "fields": (
                    "attempts",
                    "max_attempts",
                    "worker",
                    "progress_display",
                    "cancel_requested",
                )
            },
        ),
        (
            _("Timing"),
            {
                "fields": (
                    "created",
                    "next_run",
                    "published",
                    "started",
                    "finished",
                    "lease_expires",
                )
            },
        ),
    )

    created = _time_column("created_at", _("created"))
    next_run = _time_column("run_after", _("run after"))
    published = _time_column("published_at", _("published"))
    started = _time_column("started_at", _("started"))
    finished = _time_column("finished_at", _("finished"))
    lease_expires = _time_column("lease_expires_at", _("lease expires"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        # The schedule column: a LEFT JOIN on the slot's unique job_id, not a query per row.
        return super().get_queryset(request).select_related("schedule_slot__schedule")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_urls(self) -> list[URLPattern]:
        from django_bgjobs import admin_views

        def view(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            # admin_view: login and staff required, CSRF checked on POST, never cached.
            guarded = self.admin_site.admin_view(partial(function, self))

            def staff_only(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                # Signed in but not staff: a 403, not admin_view's login page again.
                if request.user.is_authenticated and not request.user.is_staff:
                    raise PermissionDenied
                return guarded(request, *args, **kwargs)

            return staff_only

        return [
            path(
                "dashboard/", view(admin_views.dashboard_view), name="django_bgjobs_job_dashboard"
            ),
            path("bulk/", view(admin_views.bulk_view), name="django_bgjobs_job_bulk"),
            *(
                path(
                    f"<path:object_id>/{action}/",
                    view(partial(admin_views.job_action_view, action=action)),
                    name=f"django_bgjobs_job_{action}",
                )
                for action in ("retry", "cancel", "replay")
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(
            request,
            {
                **(extra_context or {}),
                "dashboard_url": reverse("admin:django_bgjobs_job_dashboard"),
                "bulk_url": reverse("admin:django_bgjobs_job_bulk"),
            },
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Job | None = None,
    ) -> HttpResponse:
        from django_bgjobs.admin_views import job_page_context

        if obj is not None:
            context.update(job_page_context(self, request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # History is kept; deleting a running job would orphan its worker's writes.
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.cancel_job")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.replay_job")

    @admin.display(description=_("args"))
    def arguments(self, job: Job) -> str:
        from django_bgjobs.admin_views import pretty_json, shown_payload

        return pretty_json(shown_payload(job)[0])

    @admin.display(description=_("kwargs"))
    def keyword_arguments(self, job: Job) -> str:
        from django_bgjobs.admin_views import pretty_json, shown_payload

        return pretty_json(shown_payload(job)[1])

    @admin.display(description=_("result"))
    def result_display(self, job: Job) -> str:
        from django_bgjobs.admin_views import pretty_json

        if job.result is None:
            return "-"
        return pretty_json(job.result)

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, job: Job) -> str:
        # The start of a UUIDv7 is its timestamp, the same for jobs made together: show the end.
        return "…" + str(job.pk)[-12:]

    @admin.display(description=_("next run / finished"))
    def when_display(self, job: Job) -> str:
        if job.status in (JobStatus.SCHEDULED, JobStatus.RETRYING):
            return format_html("next {}", precise_time(job.run_after))
        if job.finished_at:
            return precise_time(job.finished_at)
        return "-"

    @admin.display(description=_("schedule"))
    def schedule_display(self, job: Job) -> str:
        slot: ScheduleSlot | None = getattr(job, "schedule_slot", None)  # None: a one-off job
        if slot is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a> <span class="quiet" style="white-space:nowrap">{}</span>',
            reverse("admin:django_bgjobs_jobschedule_change", args=[slot.schedule_id]),
            slot.schedule.key,
            slot_time(slot.slot_at),
        )

    @admin.display(description=_("webhook receipt"))
    def webhook_display(self, job: Job) -> str:
        # The job's page only (not a list column): one or two queries for one job.
        found = receipt_of(job)
        if found is None:
            return "-"
        receipt, current = found
        link = format_html('<a href="{}">{}</a>', receipt_url(receipt), receipt)
        if current or receipt.job_id is None:
            return link
        return format_html(
            "{} (replayed since: its job is now {})", link, "…" + str(receipt.job_id)[-12:]
        )

    @admin.display(description=_("message"))
    def message_display(self, job: Job) -> str:
        """The message a delivery job delivers (the job's page only: one query)."""
        message = Message.objects.filter(job_id=job.pk).only("id", "url").first()
        if message is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a> → {}',
            reverse("admin:django_bgjobs_message_change", args=[message.pk]),
            message.pk,
            message.url,
        )

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, job: Job) -> str:
        label = job.get_status_display()
        if job.status == JobStatus.RUNNING and job.cancel_requested:
            label = f"{label} (cancelling)"
        return status_badge(job.status, label)

    @admin.display(description=_("attempts"))
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description=_("last error"))
    def error_excerpt(self, job: Job) -> str:
        return (job.error[:80] + "…") if len(job.error) > 80 else job.error

    @admin.display(description=_("progress"))
    def progress_display(self, job: Job) -> str:
        from django_bgjobs.admin_views import progress_bar

        return progress_bar(job) or "-"

    def _transition_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        transition: Callable[[Job], bool],
        logged_as: str,
    ) -> tuple[int, int]:
        """Apply a transition to each selected job, logging each change; (done, skipped)."""
        return apply_each(
            self, request, queryset, lambda job: logged_as if transition(job) else None
        )

    @admin.action(description=_("Retry selected dead or cancelled jobs"), permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, skipped = self._transition_each(
            request, queryset, states.retry, "Retried: queued again with a fresh budget."
        )
        self.message_user(request, f"{done} job(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} job(s) skipped: only dead or cancelled jobs can be retried.",
                messages.WARNING,
            )

    @admin.action(description=_("Cancel selected jobs"), permissions=["cancel"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, skipped = self._transition_each(request, queryset, states.cancel, "Cancelled.")
        self.message_user(
            request,
            f"{done} job(s) cancelled (running ones stop at their next check).",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(request, f"{skipped} job(s) had already finished.", messages.WARNING)


@admin.register(JobDashboard)
class JobDashboardAdmin(_DashboardAdminBase):
    """The "Dashboard" entry of the admin index and sidebar: it leads to the dashboard, which
    is mounted on the jobs admin (``JobAdmin.get_urls``). Nothing else: no list, no pages."""

    def get_urls(self) -> list[URLPattern]:
        def to_dashboard(request: HttpRequest) -> HttpResponse:
            if not self.has_view_permission(request):
                raise PermissionDenied
            return HttpResponseRedirect(reverse("admin:django_bgjobs_job_dashboard"))

        return [
            path(
                "",
                self.admin_site.admin_view(to_dashboard),
                name="django_bgjobs_jobdashboard_changelist",
            )
        ]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_bgjobs.view_job")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- schedules ---

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
    from django_bgjobs.schedule_sync import declared

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


class ScheduleChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # The page's queryset caches its rows: the template iterates these same objects.
        load_overviews(self.result_list)


@admin.register(JobSchedule)
class JobScheduleAdmin(_ScheduleAdminBase):
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
    change_form_template = "django_bgjobs/admin/schedule_change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "key",
                    "job_name",
                    "when_display",
                    "state_display",
                    "next_run_display",
                    "last_run_display",
                    "drift_display",
                )
            },
        ),
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

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ScheduleChangeList

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> JobSchedule | None:
        row = super().get_object(request, object_id, from_field)
        if row is not None:
            load_overviews([row])
        return row

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # schedules are declared in code

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a row of a schedule still in code would come back at the next sync

    def has_run_schedule_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.run_schedule")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        recent = (
            (
                ScheduleSlot.objects.filter(schedule_id=int(object_id))
                .select_related("job")
                .order_by("-slot_at")[:RECENT_SLOTS]
            )
            if object_id.isdigit()
            else []
        )
        return super().change_view(
            request,
            object_id,
            form_url,
            {
                **(extra_context or {}),
                "recent_slots": [
                    {
                        "slot": slot_time(s.slot_at),
                        "handled": precise_time(s.created_at),
                        "outcome": self._slot_outcome(s),
                    }
                    for s in recent
                ],
            },
        )

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
                "{} ({}) {}", slot_time(ahead.slot_at), _in(ahead.slot_at, overview.now), claimed
            )
        upcoming = overview.declared[1].next_slot(overview.now)
        return format_html("{} ({})", slot_time(upcoming), _in(upcoming, overview.now))

    @admin.display(description=_("last run"))
    def last_run_display(self, row: JobSchedule) -> str:
        overview = self._overview(row)
        slot = overview.last
        if slot is None:
            return "never"
        return format_html(
            "{} ({}) {}",
            slot_time(slot.slot_at),
            _ago(slot.slot_at, overview.now),
            self._slot_outcome(slot),
        )

    @admin.display(description=_("drift from code"))
    def drift_display(self, row: JobSchedule) -> str:
        from django_bgjobs.schedule_sync import drift_of

        differences = drift_of(row, self._overview(row).declared)
        if not differences:
            return "none"
        return format_html(
            '<ul class="bgjobs-drift" style="margin:0;padding-left:1em;color:#a04a00">{}</ul>',
            format_html_join("", "<li>{}</li>", ((d,) for d in differences)),
        )

    @admin.display(description=_("args"))
    def arguments(self, row: JobSchedule) -> str:
        return json.dumps(masked_payload(registry.get(row.job_name), row.args, row.kwargs)[0])

    @admin.display(description=_("kwargs"))
    def keyword_arguments(self, row: JobSchedule) -> str:
        return json.dumps(masked_payload(registry.get(row.job_name), row.args, row.kwargs)[1])

    @admin.display(description=_("beat task"))
    def beat_task_display(self, row: JobSchedule) -> str:
        task = row.periodic_task
        if task is None:
            return "-"
        try:  # django-celery-beat's admin, when the project keeps it
            url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        except NoReverseMatch:
            return str(task.name)
        return format_html('<a href="{}">{}</a>', url, task.name)

    # --- actions ---

    @admin.action(description=_("Run now (not tied to a slot)"), permissions=["run_schedule"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[JobSchedule]) -> None:
        from django_bgjobs.schedule_sync import declared

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
                    job_link(job, f"job …{str(job.pk)[-12:]}"),
                    row.key,
                ),
                messages.SUCCESS,
            )
            return f"Run now: enqueued job {job.pk}."

        done, skipped = apply_each(self, request, queryset, run)
        if skipped:
            self.message_user(
                request,
                f"{skipped} schedule(s) skipped: no longer declared in code.",
                messages.WARNING,
            )

    @admin.action(description=_("Pause (cancels jobs claimed ahead)"), permissions=["run_schedule"])
    def pause(self, request: HttpRequest, queryset: QuerySet[JobSchedule]) -> None:
        from django_bgjobs.beat import cancel_future_slots

        def pause_one(row: JobSchedule) -> str | None:
            task = row.periodic_task
            if task is None or not row.in_code or not task.enabled:
                return None
            with transaction.atomic():
                task.enabled = False
                task.save()  # save(), not update(): django-celery-beat tells beat to reload
                cancelled = cancel_future_slots(row)
            return f"Paused; {cancelled} job(s) claimed ahead cancelled."

        done, skipped = apply_each(self, request, queryset, pause_one)
        self.message_user(
            request,
            f"{done} schedule(s) paused; they stay paused across deploys until resumed.",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                f"{skipped} schedule(s) were already paused or removed from code.",
                messages.WARNING,
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

        done, skipped = apply_each(self, request, queryset, resume_one)
        self.message_user(request, f"{done} schedule(s) resumed.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} schedule(s) skipped: already enabled, or "
                "removed from code (or never synced: run `manage.py "
                "bgjobs sync-schedules`).",
                messages.WARNING,
            )


def _in(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    if seconds < 60:  # timeuntil() says "0 minutes" below a minute
        return "now" if seconds <= 0 else f"in {seconds} s"
    return f"in {timeuntil(moment, now, depth=1)}"


def _ago(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    return f"{max(seconds, 0)} s ago" if seconds < 60 else f"{timesince(moment, now, depth=1)} ago"


# --- webhook receipts ---

OUTCOME_COLOURS: dict[str, str] = {"accepted": "#146c43", "rejected": "#b02a37"}
BODY_SHOWN = 64 * 1024  # how much of a body a receipt's page shows; the rest is cut
PRETTY_MAX = 2 * 1024 * 1024  # bytes; larger bodies are not parsed to pretty-print them


def receipt_url(receipt: InboundWebhook) -> str:
    return reverse("admin:django_bgjobs_inboundwebhook_change", args=[receipt.pk])


def receipt_of(job: Job) -> tuple[InboundWebhook, bool] | None:
    """The receipt a handler job was enqueued for, and whether that receipt still points at it.
    A replay points the receipt at the new job; the jobs before it are found by their argument,
    the receipt's id (the handler's contract), when their name is that endpoint's handler."""
    from django.core.exceptions import ImproperlyConfigured

    from django_bgjobs.webhooks.endpoints import endpoint
    from django_bgjobs.webhooks.receipts import handler

    current = job.webhook_receipts.order_by("-pk").first()
    if current is not None:
        return current, True
    if job.kwargs or len(job.args) != 1 or type(job.args[0]) is not int:
        return None
    receipt = InboundWebhook.objects.filter(pk=job.args[0], verified=True).first()
    if receipt is None:
        return None
    try:
        found = endpoint(receipt.endpoint)
        function = handler(found) if found is not None else None
    except ImproperlyConfigured:  # the system check reports it; the page still shows the job
        return None
    return (receipt, False) if function is not None and function.name == job.name else None


@dataclass(frozen=True)
class BodyView:
    """A receipt's body as its page shows it (escaped by the template)."""

    kind: str  # "json" (pretty-printed), "text" (UTF-8, bad bytes replaced) or "none"
    text: str
    size: int  # bytes received
    cut: bool  # ``text`` is the first BODY_SHOWN characters (bytes, for text) of the body


def body_view(receipt: InboundWebhook) -> BodyView:
    raw = bytes(receipt.body)
    if not raw:
        return BodyView("none", "", 0, cut=False)
    if len(raw) <= PRETTY_MAX:
        try:
            pretty = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
            pass
        else:
            return BodyView("json", pretty[:BODY_SHOWN], len(raw), cut=len(pretty) > BODY_SHOWN)
    # A cut may split a UTF-8 sequence: the last character is then a replacement one.
    return BodyView(
        "text",
        raw[:BODY_SHOWN].decode("utf-8", errors="replace"),
        len(raw),
        cut=len(raw) > BODY_SHOWN,
    )


class EndpointFilter(admin.SimpleListFilter):
    """The endpoints in BGJOBS["WEBHOOKS"], not a SELECT DISTINCT over every receipt."""

    title = _("endpoint")
    parameter_name = "endpoint"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(bgjobs_settings.WEBHOOKS)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(endpoint=self.value()) if self.value() else queryset


class SchemeFilter(admin.SimpleListFilter):
    title = _("scheme")
    parameter_name = "scheme"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(scheme, scheme) for scheme in SCHEMES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(scheme=self.value()) if self.value() else queryset


class ReceiptChangeList(ChangeList):
    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Any]:
        # The list shows the body's size (computed by the database), never the body: up to
        # WEBHOOK_MAX_BODY bytes a row. Actions get this queryset too; replay needs no body.
        return super().get_queryset(request, exclude_parameters).defer("body")


@admin.register(InboundWebhook)
class InboundWebhookAdmin(_ReceiptAdminBase):
    """What arrived, as it was kept: nothing here can be edited; a verified one can be replayed."""

    list_display = (
        "received",
        "endpoint",
        "scheme",
        "message_id_display",
        "outcome_display",
        "size_display",
        "job_display",
    )
    list_filter = (EndpointFilter, SchemeFilter, "verified", "received_at")
    search_fields = ("=message_id", "=endpoint")
    list_per_page = 50
    show_full_result_count = False  # as for jobs: no COUNT(*) over every receipt
    actions = ("replay_receipts",)
    change_form_template = "django_bgjobs/admin/inboundwebhook_change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "received",
                    "endpoint",
                    "scheme",
                    "message_id_display",
                    "outcome_display",
                    "size_display",
                    "job_display",
                )
            },
        ),
    )

    received = _time_column("received_at", _("received"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundWebhook]:
        # The job column: a LEFT JOIN, not a query per row.
        return (
            super().get_queryset(request).select_related("job").annotate(body_size=Length("body"))
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ReceiptChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # receipts come from deliveries only

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a receipt is the record of what arrived; its job reads it

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.replay_inboundwebhook")

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: InboundWebhook | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(
                body=body_view(obj),
                kept_headers=sorted(obj.headers.items()),
                can_replay=obj.verified and self.has_replay_permission(request),
                changelist_url=reverse("admin:django_bgjobs_inboundwebhook_changelist"),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- columns ---

    @admin.display(description=_("provider message id"), ordering="message_id")
    def message_id_display(self, receipt: InboundWebhook) -> str:
        return receipt.message_id or "-"

    @admin.display(description=_("verification"), ordering="verified")
    def outcome_display(self, receipt: InboundWebhook) -> str:
        if receipt.verified:
            return status_badge("accepted", "accepted", OUTCOME_COLOURS)
        return status_badge("rejected", receipt.failed_check or "rejected", OUTCOME_COLOURS)

    @admin.display(description=_("body"), ordering="body_size")
    def size_display(self, receipt: InboundWebhook) -> str:
        size = getattr(receipt, "body_size", None)  # annotated by get_queryset
        if size is None:
            size = len(receipt.body)
        return filesizeformat(size) if size else "-"

    @admin.display(description=_("job"))
    def job_display(self, receipt: InboundWebhook) -> str:
        if receipt.job is None:  # no handler configured, a rejected delivery, or pruned
            return "-"
        return job_badge_link(receipt.job)

    # --- actions ---

    @admin.action(description=_("Replay selected verified receipts"), permissions=["replay"])
    def replay_receipts(
        self, request: HttpRequest, queryset: QuerySet[InboundWebhook]
    ) -> HttpResponse | None:
        from django_bgjobs.webhooks.receipts import replay

        replayed: list[Job] = []
        unverified: list[InboundWebhook] = []

        def replay_one(receipt: InboundWebhook) -> str | None:
            if not receipt.verified:  # a rejected delivery has no body to run again
                unverified.append(receipt)
                return None
            previous = receipt.job_id
            try:
                job = replay(receipt)
            except ValueError as problem:  # the endpoint has no handler job (any more)
                self.message_user(request, f"{receipt}: {problem}.", messages.ERROR)
                return None
            replayed.append(job)
            return f"Replayed: enqueued job {job.pk}" + (
                f" (its job was {previous})." if previous else "."
            )

        apply_each(self, request, queryset.order_by("pk"), replay_one)
        if replayed:
            self.message_user(
                request,
                format_html(
                    "{} receipt(s) replayed: {}.",
                    len(replayed),
                    format_html_join(
                        ", ", "{}", ((job_link(j, f"job …{str(j.pk)[-12:]}"),) for j in replayed)
                    ),
                ),
                messages.SUCCESS,
            )
        if unverified:
            self.message_user(
                request,
                f"{len(unverified)} receipt(s) refused: only verified "
                "deliveries can be replayed (a rejected one kept no body).",
                messages.WARNING,
            )
        # From a receipt's page (its Replay button), back to that page.
        back = request.POST.get("_bgjobs_back")
        if back and back.isdigit():
            return HttpResponseRedirect(
                reverse("admin:django_bgjobs_inboundwebhook_change", args=[int(back)])
            )
        return None


# The delivery side's admin (messages, URL groups, queues, tokens, keys, message schedules).
from django_bgjobs import delivery_admin  # noqa: E402, F401
