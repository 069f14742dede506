"""Upstash Workflow runs (api/workflow_runs.py): each run with its waits and a link to its
steps, which are messages. Read-only: the app's SDK writes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import ReadOnlyAdmin, time_column
from django_bgjobs.delivery.models import WorkflowRun, WorkflowWaiter

if TYPE_CHECKING:  # django-stubs' generics; not subscriptable at run time
    _WaiterInlineBase = admin.TabularInline[WorkflowWaiter, WorkflowRun]
else:
    _WaiterInlineBase = admin.TabularInline


class WaiterInline(_WaiterInlineBase):
    model = WorkflowWaiter
    fields = ("event_id", "deadline", "ended_at", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: WorkflowRun | None = None) -> bool:
        return False


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyAdmin[WorkflowRun]):
    list_display = ("id", "url", "state", "created", "ended")
    list_filter = ("cancelled", "created_at")
    search_fields = ("=id", "^url")
    fieldsets = ((None, {"fields": ("id", "url", "state", "steps", "result", "created_at")}),)
    inlines = [WaiterInline]

    created = time_column("created_at", _("created"))
    ended = time_column("ended_at", _("ended"))

    @admin.display(description=_("state"))
    def state(self, run: WorkflowRun) -> str:
        if run.ended_at is None:
            return "running"
        return "cancelled" if run.cancelled else "finished"

    @admin.display(description=_("steps"))
    def steps(self, run: WorkflowRun) -> str:
        url = reverse("admin:bgjobs_delivery_message_changelist")
        return format_html('<a href="{}?q={}">its messages</a>', url, run.pk)
