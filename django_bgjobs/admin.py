"""The admin: every job and every attempt, read-only, with retry and cancel actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs import states
from django_bgjobs.models import Job, JobRun, JobStatus

if TYPE_CHECKING:  # django-stubs' generics; not subscriptable at run time
    _AdminBase = admin.ModelAdmin[Job]
    _InlineBase = admin.TabularInline[JobRun, Job]
else:
    _AdminBase = admin.ModelAdmin
    _InlineBase = admin.TabularInline

STATUS_COLOURS: dict[str, str] = {
    JobStatus.SCHEDULED: "#6c757d",
    JobStatus.QUEUED: "#0d6efd",
    JobStatus.RUNNING: "#6f42c1",
    JobStatus.RETRYING: "#fd7e14",
    JobStatus.SUCCEEDED: "#198754",
    JobStatus.DEAD: "#dc3545",
    JobStatus.CANCELLED: "#adb5bd",
}


def status_badge(status: str, label: str) -> str:
    return format_html(
        '<span class="bgjobs-status bgjobs-status-{}" style="color:#fff;background:{};'
        'padding:1px 6px;border-radius:8px;white-space:nowrap">{}</span>',
        status, STATUS_COLOURS.get(status, "#6c757d"), label,
    )


class JobRunInline(_InlineBase):
    model = JobRun
    extra = 0
    can_delete = False
    fields = ("attempt", "status_display", "worker", "started_at", "finished_at", "duration_ms",
              "error", "traceback_display")
    readonly_fields = fields
    ordering = ("attempt",)

    @admin.display(description=_("status"))
    def status_display(self, run: JobRun) -> str:
        return status_badge(run.status, run.get_status_display())

    @admin.display(description=_("traceback"))
    def traceback_display(self, run: JobRun) -> str:
        if not run.traceback:
            return "-"
        return format_html(
            "<details><summary>show</summary><pre style='white-space:pre-wrap'>{}</pre></details>",
            run.traceback,
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(_AdminBase):
    list_display = ("short_id", "name", "status_display", "queue", "attempts_display",
                    "created_at", "run_after", "finished_at", "error_excerpt")
    list_filter = ("status", "queue", "name", "created_at")
    search_fields = ("=id", "name", "=idempotency_key")
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over millions of rows on every page load
    inlines = (JobRunInline,)
    actions = ("retry_jobs", "cancel_jobs")
    fieldsets = (
        (None, {"fields": ("id", "name", "status_display", "queue", "priority",
                           "idempotency_key")}),
        (_("Payload and result"), {"fields": ("args", "kwargs", "result", "error")}),
        (_("Attempts"), {"fields": ("attempts", "max_attempts", "worker", "progress_display",
                                    "cancel_requested")}),
        (_("Timing"), {"fields": ("created_at", "run_after", "published_at", "started_at",
                                  "finished_at", "lease_expires_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.cancel_job")

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, job: Job) -> str:
        return str(job.pk)[:8] + "…"

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
        if job.progress_done is None:
            return "-"
        if job.progress_total:
            percent = min(100, int(job.progress_done * 100 / job.progress_total))
            return format_html(
                '<progress value="{}" max="100"></progress> {}/{} {}', percent,
                job.progress_done, job.progress_total, job.progress_message,
            )
        return format_html("{} {}", job.progress_done, job.progress_message)

    @admin.action(description=_("Retry selected dead or cancelled jobs"),
                  permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = sum(states.retry(job) for job in queryset)
        skipped = queryset.count() - done
        self.message_user(request, f"{done} job(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} job(s) skipped: only dead or cancelled jobs can be retried.",
                messages.WARNING,
            )

    @admin.action(description=_("Cancel selected jobs"), permissions=["cancel"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = sum(states.cancel(job) for job in queryset)
        skipped = queryset.count() - done
        self.message_user(
            request, f"{done} job(s) cancelled (running ones stop at their next check).",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(request, f"{skipped} job(s) had already finished.", messages.WARNING)
