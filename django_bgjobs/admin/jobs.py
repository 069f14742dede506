"""Every job and every attempt, read-only, with retry, cancel and replay; the pages it mounts
(``JobAdmin.get_urls``): the dashboard (dashboard.py), the bulk actions (bulk.py), the job
page's buttons (job_page.py, its timeline in timeline.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from django_bgjobs import extensions, states
from django_bgjobs.admin import bulk, dashboard, flow, job_page, steps, widgets
from django_bgjobs.admin.job_actions import CANCELLED, RETRIED, JobActionsAdmin
from django_bgjobs.admin.timeline import progress_bar
from django_bgjobs.admin.webhooks import receipt_of, receipt_url
from django_bgjobs.admin.widgets import (
    CappedPaginator,
    ChoicesFilter,
    DeferringChangeList,
    ReadOnlyAdmin,
    link,
    payload_columns,
    precise_time,
    pretty_json,
    slot_time,
    status_badge,
    time_column,
)
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import (
    Job,
    JobDashboard,
    JobStatus,
    ScheduleSlot,
)
from django_bgjobs.registry import registry


class QueueFilter(ChoicesFilter):
    """The queues of BGJOBS["QUEUES"], and a queue since removed from a link."""

    title = _("queue")
    parameter_name = "queue"
    keep_unknown = True

    def known(self, request: HttpRequest) -> list[str]:
        return list(bgjobs_settings.QUEUES)


class JobNameFilter(ChoicesFilter):
    """The job names the code defines (the registry). A name no code defines any more can still
    be filtered on from a link (the dashboard's)."""

    title = _("name")
    parameter_name = "name"
    keep_unknown = True

    def known(self, request: HttpRequest) -> list[str]:
        return registry.names()


class JobChangeList(DeferringChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if self.result_count == 0:  # a filter nothing matches: do not search the table twice
            self.result_list = self.queryset.none()
        self.count_capped = self.result_count > widgets.COUNT_CAP  # read by job/pagination.html
        self.count_cap = f"{widgets.COUNT_CAP:,}"


@admin.register(Job)
class JobAdmin(JobActionsAdmin):
    # History is kept; deleting a running job would orphan its worker's writes.
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
    changelist_class = JobChangeList
    # The list shows neither the payload nor the result: not read (they can be large).
    list_deferred = ("args", "kwargs", "result")
    # The attempts are drawn as a timeline by the template (timeline.py).
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
                    "related_display",
                    "flow_display",
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

    created = time_column("created_at", _("created"))
    next_run = time_column("run_after", _("run after"))
    published = time_column("published_at", _("published"))
    started = time_column("started_at", _("started"))
    finished = time_column("finished_at", _("finished"))
    lease_expires = time_column("lease_expires_at", _("lease expires"))
    arguments, keyword_arguments = payload_columns("name", pretty_json)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        # The schedule column: a LEFT JOIN on the slot's unique job_id, not a query per row.
        return super().get_queryset(request).select_related("schedule_slot__schedule")

    def get_urls(self) -> list[URLPattern]:

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
            path("dashboard/", view(dashboard.dashboard_view), name="django_bgjobs_job_dashboard"),
            path("bulk/", view(bulk.bulk_view), name="django_bgjobs_job_bulk"),
            *(
                path(
                    f"<path:object_id>/{action}/",
                    view(partial(job_page.job_action_view, action=action)),
                    name=f"django_bgjobs_job_{action}",
                )
                for action in ("retry", "cancel", "replay")
            ),
            path(
                "<path:object_id>/replay-from/<int:position>/",
                view(steps.replay_from_view),
                name="django_bgjobs_job_replay_from",
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

    def page_context(self, request: HttpRequest, obj: Job) -> dict[str, Any]:
        return job_page.job_page_context(self, request, obj)

    @admin.display(description=_("result"))
    def result_display(self, job: Job) -> str:
        if job.result is None:
            return "-"
        return pretty_json(job.result)

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, job: Job) -> str:
        return widgets.short_id(job.pk)

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
            '{} <span class="quiet" style="white-space:nowrap">{}</span>',
            link(
                reverse("admin:django_bgjobs_jobschedule_change", args=[slot.schedule_id]),
                slot.schedule.key,
            ),
            slot_time(slot.slot_at),
        )

    @admin.display(description=_("webhook receipt"))
    def webhook_display(self, job: Job) -> str:
        # The job's page only (not a list column): one or two queries for one job.
        found = receipt_of(job)
        if found is None:
            return "-"
        receipt, current = found
        shown = link(receipt_url(receipt), receipt)
        if current or receipt.job_id is None:
            return shown
        return format_html(
            "{} (replayed since: its job is now {})", shown, widgets.short_id(receipt.job_id)
        )

    @admin.display(description=_("related"))
    def related_display(self, job: Job) -> str:
        """What the job works for, as the apps built on the core link it (extensions.
        register_job_link): a delivery job's message, for one. The job's page only."""
        lines = [
            format_html("{}: {}", label, html)
            for label, link in extensions.job_links()
            if (html := link(job)) is not None
        ]
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines)) or "-"

    @admin.display(description=_("flow control"))
    def flow_display(self, job: Job) -> str:
        return flow.describe(job)

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
        return progress_bar(job) or "-"

    @admin.action(description=_("Retry selected dead or cancelled jobs"), permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.transition_each(
            request,
            queryset,
            states.retry,
            RETRIED,
            done="{n} job(s) queued again.",
            skipped="{n} job(s) skipped: only dead or cancelled jobs can be retried.",
        )

    @admin.action(description=_("Cancel selected jobs"), permissions=["cancel"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.transition_each(
            request,
            queryset,
            states.cancel,
            CANCELLED,
            done="{n} job(s) cancelled (running ones stop at their next check).",
            skipped="{n} job(s) had already finished.",
        )


@admin.register(JobDashboard)
class JobDashboardAdmin(ReadOnlyAdmin[JobDashboard]):
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
