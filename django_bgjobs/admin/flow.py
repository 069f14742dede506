"""Flow control in the admin: each key with what holds its places and what waits for one (and
*Release*, for a key whose holders are stuck), the limits an operator changed (``FlowGate``:
*Job limits*), and the line on a job's page that says what its limits do to it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import DatabaseError
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import BaseAdmin, ReadOnlyAdmin, jobs_url, link, time_column
from django_bgjobs.flow import admission, spec
from django_bgjobs.models import HOLDING, FlowGate, FlowKey, Job, JobStatus


def describe(job: Job) -> str:
    """The job page's *flow control* line."""
    if not job.flow_key:
        return "-"
    key = link(jobs_url(flow_key=job.flow_key), job.flow_key)
    limit = admission.limit_of(admission.gate_of(job.flow_key))
    if job.status == JobStatus.BLOCKED:
        held = Job.objects.holding(job.flow_key).count()
        return format_html(
            "{}: waits for a place, {} of {} held (the next one goes when one of them ends)",
            key,
            held,
            limit if limit is not None else "?",
        )
    declared = spec.gate(admission.gate_of(job.flow_key))
    if job.status == JobStatus.SCHEDULED and declared is not None and declared.throttle:
        throttle = declared.throttle
        return format_html(
            "{}: throttled to {} per {}, its turn is its run-after time",
            key,
            throttle.limit,
            throttle.period,
        )
    if job.gated and limit is not None:
        return format_html("{}: at most {} at once", key, limit)
    return key


class FlowKeyAdmin(ReadOnlyAdmin[FlowKey]):
    list_display = ("key", "gate", "limit", "holding", "blocked", "updated")
    search_fields = ("key",)
    list_filter = ("gate",)
    actions = ("release",)
    fieldsets = ((None, {"fields": ("key", "gate", "limit", "holding", "blocked", "updated")}),)

    updated = time_column("updated_at", _("last used"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[FlowKey]:
        def count(jobs: QuerySet[Job]) -> Coalesce:
            per_key = jobs.filter(flow_key=OuterRef("key")).values("flow_key")
            return Coalesce(Subquery(per_key.annotate(n=Count("pk")).values("n")), 0)

        return (
            super()
            .get_queryset(request)
            .annotate(
                holding_count=count(Job.objects.filter(status__in=HOLDING, gated=True)),
                blocked_count=count(Job.objects.filter(status=JobStatus.BLOCKED)),
            )
        )

    @admin.display(description=_("limit"))
    def limit(self, row: FlowKey) -> str:
        found = admission.limit_of(row.gate)
        return "-" if found is None else str(found)

    @admin.display(description=_("holding a place"), ordering="holding_count")
    def holding(self, row: Any) -> str:
        return link(jobs_url(flow_key=row.key, status__in="queued,running"), row.holding_count)

    @admin.display(description=_("blocked"), ordering="blocked_count")
    def blocked(self, row: Any) -> str:
        return link(jobs_url(flow_key=row.key, status__exact="blocked"), row.blocked_count)

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.change_flowgate")

    @admin.action(
        description=_("Release: the jobs holding these keys' places stop counting"),
        permissions=["release"],
    )
    def release(self, request: HttpRequest, queryset: QuerySet[FlowKey]) -> None:
        released = 0
        for row in queryset:
            count = Job.objects.holding(row.key).update(gated=False)
            admission.admit([row.key])
            self.log_change(request, row, f"Released: {count} job(s) holding a place.")
            released += count
        self.message_user(
            request,
            f"{released} job(s) no longer hold a place; the next blocked jobs were let through.",
            messages.SUCCESS,
        )


class FlowGateForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = FlowGate
        fields = ("name", "concurrency")

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"])
        limited = sorted(g for g, s in spec.gates().items() if s.concurrency is not None)
        if name not in limited:
            raise forms.ValidationError(
                f"No job has a concurrency limit named {name!r}. Limits: "
                f"{', '.join(limited) or 'none'}."
            )
        return name

    def clean_concurrency(self) -> int:
        value = int(self.cleaned_data["concurrency"])
        if value < 1:
            raise forms.ValidationError("At least 1: to stop a job, cancel its jobs instead.")
        return value


class FlowGateAdmin(BaseAdmin[FlowGate]):
    form = FlowGateForm
    list_display = ("name", "concurrency", "declared", "updated_at")

    @admin.display(description=_("declared in code"))
    def declared(self, row: FlowGate) -> str:
        found = spec.gate(row.name)
        return "-" if found is None or found.concurrency is None else str(found.concurrency)

    def get_readonly_fields(self, request: HttpRequest, obj: FlowGate | None = None) -> list[str]:
        # The name is the primary key: changing it would add a second row, not rename this one.
        return ["name"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: FlowGate, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        try:  # a raised limit lets jobs through now, not at the dispatcher's next pass
            admission.admit_waiting()
        except DatabaseError as exc:
            self.message_user(
                request, f"Saved; the dispatcher lets the jobs through ({exc}).", messages.WARNING
            )


admin.site.register(FlowKey, FlowKeyAdmin)
admin.site.register(FlowGate, FlowGateAdmin)
