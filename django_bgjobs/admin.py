"""The admin: every job and every attempt, read-only, with retry and cancel actions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs import states
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.redaction import masked_payload
from django_bgjobs.registry import registry

if TYPE_CHECKING:  # django-stubs' generics; not subscriptable at run time
    from django.utils.functional import _StrOrPromise as StrOrPromise

    _AdminBase = admin.ModelAdmin[Job]
    _InlineBase = admin.TabularInline[JobRun, Job]
else:
    _AdminBase = admin.ModelAdmin
    _InlineBase = admin.TabularInline

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
        status, colours.get(status, "#5c636a"), label,
    )


def precise_time(value: datetime | None) -> str:
    """Times to the millisecond: retries and backoff are read in seconds."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _time_column(attr: str, label: StrOrPromise) -> Callable[[Any, Any], str]:
    @admin.display(description=label, ordering=attr)
    def column(admin_: Any, obj: Any) -> str:
        return precise_time(getattr(obj, attr))

    return column


class JobRunInline(_InlineBase):
    model = JobRun
    extra = 0
    can_delete = False
    fields = ("attempt", "status_display", "started", "finished", "duration_ms", "worker",
              "error", "traceback_display")
    readonly_fields = fields
    ordering = ("attempt",)

    @admin.display(description=_("status"))
    def status_display(self, run: JobRun) -> str:
        return status_badge(run.status, run.get_status_display(), RUN_STATUS_COLOURS)

    started = _time_column("started_at", _("started"))
    finished = _time_column("finished_at", _("finished"))

    @admin.display(description=_("traceback"))
    def traceback_display(self, run: JobRun) -> str:
        if not run.traceback:
            return "-"
        return format_html(
            "<details><summary>show</summary><pre style='white-space:pre;min-width:40em;"
            "max-width:80em;max-height:30em;overflow:auto'>{}</pre></details>",
            run.traceback,
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(_AdminBase):
    list_display = ("short_id", "name", "status_display", "queue", "attempts_display",
                    "error_excerpt", "created_at", "when_display")
    list_filter = ("status", "queue", "name", "created_at")
    search_fields = ("=id", "name", "=idempotency_key")
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over millions of rows on every page load
    inlines = (JobRunInline,)
    actions = ("retry_jobs", "cancel_jobs")
    fieldsets = (
        (None, {"fields": ("id", "name", "status_display", "queue", "priority",
                           "idempotency_key")}),
        (_("Payload and result"), {"fields": ("arguments", "keyword_arguments", "result",
                                              "error")}),
        (_("Attempts"), {"fields": ("attempts", "max_attempts", "worker", "progress_display",
                                    "cancel_requested")}),
        (_("Timing"), {"fields": ("created", "next_run", "published", "started", "finished",
                                  "lease_expires")}),
    )

    created = _time_column("created_at", _("created"))
    next_run = _time_column("run_after", _("run after"))
    published = _time_column("published_at", _("published"))
    started = _time_column("started_at", _("started"))
    finished = _time_column("finished_at", _("finished"))
    lease_expires = _time_column("lease_expires_at", _("lease expires"))

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

    @admin.display(description=_("args"))
    def arguments(self, job: Job) -> str:
        return json.dumps(masked_payload(registry.get(job.name), job.args, job.kwargs)[0])

    @admin.display(description=_("kwargs"))
    def keyword_arguments(self, job: Job) -> str:
        return json.dumps(masked_payload(registry.get(job.name), job.args, job.kwargs)[1])

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

    def _transition_each(
        self, request: HttpRequest, queryset: QuerySet[Job],
        transition: Callable[[Job], bool], logged_as: str,
    ) -> tuple[int, int]:
        """Apply a transition to each selected job, logging each change; (done, skipped)."""
        done = 0
        for job in queryset:
            if transition(job):
                done += 1
                self.log_change(request, job, logged_as)
        return done, queryset.count() - done

    @admin.action(description=_("Retry selected dead or cancelled jobs"),
                  permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, skipped = self._transition_each(
            request, queryset, states.retry, "Retried: queued again with a fresh budget.")
        self.message_user(request, f"{done} job(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} job(s) skipped: only dead or cancelled jobs can be retried.",
                messages.WARNING,
            )

    @admin.action(description=_("Cancel selected jobs"), permissions=["cancel"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, skipped = self._transition_each(request, queryset, states.cancel, "Cancelled.")
        self.message_user(
            request, f"{done} job(s) cancelled (running ones stop at their next check).",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(request, f"{skipped} job(s) had already finished.", messages.WARNING)
