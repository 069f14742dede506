"""The admin of QStash message schedules: next run, last fire, pause and resume."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import (
    ReadOnlyAdmin,
    apply_each,
    body_view,
    precise_time,
    pretty_json,
    status_badge,
    time_ago,
    time_column,
    time_until,
)
from django_bgjobs.delivery import redaction
from django_bgjobs.delivery.admin.common import (
    message_link,
    shown_headers,
)
from django_bgjobs.delivery.models import (
    MessageSchedule,
)


class ScheduleStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active"), ("paused", "paused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(periodic_task__enabled=True)
        if self.value() == "paused":
            return queryset.filter(Q(periodic_task__isnull=True) | Q(periodic_task__enabled=False))
        return queryset


@admin.register(MessageSchedule)
class MessageScheduleAdmin(ReadOnlyAdmin[MessageSchedule]):
    """Made through the API or ``message_schedules.create()``: read-only here, except pausing,
    resuming and deleting (which removes its beat task too)."""

    list_display = (
        "id",
        "destination",
        "cron",
        "state_display",
        "next_run_display",
        "last_fired_display",
        "last_message_display",
    )
    list_filter = (ScheduleStateFilter,)
    search_fields = ("=id", "^destination")
    actions = ("pause_schedules", "resume_schedules")
    deletable = True  # delete_model removes its beat task too
    fieldsets = (
        (None, {"fields": (*list_display, "queue", "created")}),  # the list's columns, and more
        (_("Message template"), {"fields": ("method_display", "template_options")}),
    )

    created = time_column("created_at", _("created"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[MessageSchedule]:
        return super().get_queryset(request).select_related("periodic_task")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bgjobs_delivery.change_messageschedule")

    def delete_model(self, request: HttpRequest, obj: MessageSchedule) -> None:
        from django_bgjobs.delivery.message_schedules import delete

        delete(obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from django_bgjobs.delivery.message_schedules import delete

        for pk in queryset.values_list("pk", flat=True):
            delete(pk)

    def _template(self, row: MessageSchedule) -> Any:
        from django_bgjobs.delivery.publish import Publish

        return Publish.from_json(row.template)

    # --- columns ---

    @admin.display(description=_("state"))
    def state_display(self, row: MessageSchedule) -> str:
        state = "paused" if row.paused else "active"
        return status_badge(state, state, {"active": "#146c43", "paused": "#5c636a"})

    @admin.display(description=_("next run"))
    def next_run_display(self, row: MessageSchedule) -> str:
        from django_bgjobs.delivery.message_schedules import next_run

        now = timezone.now()
        upcoming = next_run(row, now)
        if upcoming is None:
            return "paused" if row.paused else "-"
        return format_html("{} ({})", precise_time(upcoming)[:-4], time_until(upcoming, now))

    @admin.display(description=_("last fired"), ordering="last_fired_at")
    def last_fired_display(self, row: MessageSchedule) -> str:
        if row.last_fired_at is None:
            return "never"
        return format_html(
            "{} ({})",
            precise_time(row.last_fired_at)[:-4],
            time_ago(row.last_fired_at, timezone.now()),
        )

    @admin.display(description=_("last message"))
    def last_message_display(self, row: MessageSchedule) -> str:
        return message_link(row.last_message_id)

    @admin.display(description=_("method"))
    def method_display(self, row: MessageSchedule) -> str:
        return str(self._template(row).method)

    @admin.display(description=_("options"))
    def template_options(self, row: MessageSchedule) -> str:
        template = self._template(row)
        shown = {
            name: value
            for name, value in (
                ("retries", template.retries),
                ("retry_delay", template.retry_delay),
                ("delay", template.delay),
                ("timeout", template.timeout),
                ("callback", template.callback and template.callback.url),
                ("failure_callback", template.failure_callback and template.failure_callback.url),
                ("queue", template.queue),
                ("flow_control", template.flow and template.flow.key),
                ("label", template.label),
                ("signature", template.signature),
            )
            if value
        }
        return pretty_json(shown)

    def page_context(self, request: HttpRequest, obj: MessageSchedule) -> dict[str, Any]:
        template = self._template(obj)
        return {
            "request_headers": shown_headers(
                request, redaction.shown_headers(template.redact, template.headers)
            ),
            "request_body": body_view(redaction.shown_body(template.redact, template.body)),
        }

    # --- actions ---

    def _toggle(
        self, request: HttpRequest, queryset: Iterable[MessageSchedule], paused: bool
    ) -> None:
        from django_bgjobs.delivery.message_schedules import pause, resume

        def toggle(row: MessageSchedule) -> str | None:
            if row.paused == paused:
                return None
            (pause if paused else resume)(row.pk)
            return "Paused." if paused else "Resumed."

        verb = "paused" if paused else "resumed"
        apply_each(
            self,
            request,
            queryset,
            toggle,
            done=f"{{n}} schedule(s) {verb}.",
            skipped=f"{{n}} schedule(s) were {verb} already.",
        )

    @admin.action(description=_("Pause selected schedules"), permissions=["pause"])
    def pause_schedules(self, request: HttpRequest, queryset: QuerySet[MessageSchedule]) -> None:
        self._toggle(request, queryset, paused=True)

    @admin.action(
        description=_("Resume selected schedules (from their next slot)"), permissions=["pause"]
    )
    def resume_schedules(self, request: HttpRequest, queryset: QuerySet[MessageSchedule]) -> None:
        self._toggle(request, queryset, paused=False)
