"""The admin of delivery queues and flow-control keys, with what waits and what is in
delivery."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import (
    BaseAdmin,
    time_column,
)
from django_bgjobs.delivery import admission
from django_bgjobs.delivery.models import (
    DeliveryQueue,
    FlowControl,
    Message,
)
from django_bgjobs.models import UNFINISHED


def _waiting(field: str) -> Any:
    """Messages of the row's queue / flow key still waiting to be let through (its lag)."""
    rows = Message.objects.filter(
        **{field: OuterRef("name" if field == "queue" else "key")},
        admitted_at__isnull=True,
        cancelled_at__isnull=True,
    )
    return Coalesce(
        Subquery(
            rows.values(field).annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()
        ),
        0,
    )


def _in_delivery(field: str) -> Any:
    """Messages of the row's queue / flow key admitted and not finished."""
    rows = Message.objects.filter(
        **{field: OuterRef("name" if field == "queue" else "key")},
        admitted_at__isnull=False,
        job__status__in=UNFINISHED,
    )
    return Coalesce(
        Subquery(
            rows.values(field).annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()
        ),
        0,
    )


class DeliveryQueueForm(forms.ModelForm):  # type: ignore[type-arg]
    parallelism = forms.IntegerField(
        min_value=1,
        initial=1,
        help_text=_("Messages of the queue in delivery at once (retries included)."),
    )

    class Meta:
        model = DeliveryQueue
        fields = ("name", "parallelism", "paused")


@admin.register(DeliveryQueue)
class DeliveryQueueAdmin(BaseAdmin[DeliveryQueue]):
    """Parallelism and pause are the admin's to change (the dispatcher's next pass admits what
    a change lets through); lag is read from the messages."""

    list_display = ("name", "parallelism", "paused", "lag", "active", "updated")
    list_editable = ("parallelism", "paused")
    list_filter = ("paused",)
    search_fields = ("name",)
    fields = ("name", "parallelism", "paused")
    form = DeliveryQueueForm

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> Any:
        return super().get_changelist_form(request, form=DeliveryQueueForm, **kwargs)

    updated = time_column("updated_at", _("updated"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryQueue]:
        return (
            super()
            .get_queryset(request)
            .annotate(waiting=_waiting("queue"), delivering=_in_delivery("queue"))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name"] if obj is not None else []  # its messages name it

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A queue with messages still waiting is protected: they would wait for a queue that
        is gone. Django then refuses the deletion (one queue or several) and says why."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        busy = (
            Message.objects.filter(
                queue__in=[queue.name for queue in objs],
                admitted_at__isnull=True,
                cancelled_at__isnull=True,
            )
            .values_list("queue", flat=True)
            .distinct()
        )
        protected = [
            *protected,
            *(
                f"queue {name}: messages are waiting in it (cancel them, or let them through first)"
                for name in busy
            ),
        ]
        return deleted, counts, perms_needed, protected

    @admin.display(description=_("lag (waiting)"), ordering="waiting")
    def lag(self, queue: DeliveryQueue) -> int:
        return int(getattr(queue, "waiting", 0))

    @admin.display(description=_("in delivery"), ordering="delivering")
    def active(self, queue: DeliveryQueue) -> int:
        return int(getattr(queue, "delivering", 0))

    def save_model(self, request: HttpRequest, obj: DeliveryQueue, form: Any, change: Any) -> None:
        obj.updated_at = timezone.now()
        if not change:
            obj.created_at = obj.updated_at
        super().save_model(request, obj, form, change)


@admin.register(FlowControl)
class FlowControlAdmin(BaseAdmin[FlowControl]):
    """A key's limits are set by the publishes that name it (the last one wins), unless
    pinned: an operator may set them here and pin them, as the API's ``pin`` does. Pausing
    and resetting the rate are the admin's too."""

    list_display = (
        "key",
        "parallelism",
        "rate",
        "period",
        "paused",
        "pinned",
        "lag",
        "active",
        "updated",
    )
    list_editable = ("paused",)
    list_filter = ("paused", "pinned_parallelism", "pinned_rate")
    search_fields = ("key",)
    fields = (
        "key",
        ("parallelism", "pinned_parallelism"),
        ("rate", "period", "pinned_rate"),
        "paused",
        "rate_reset_at",
        "updated",
    )
    readonly_fields = ("key", "rate_reset_at", "updated")
    actions = ["reset_rate"]

    updated = time_column("updated_at", _("updated"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[FlowControl]:
        return (
            super()
            .get_queryset(request)
            .annotate(waiting=_waiting("flow_key"), delivering=_in_delivery("flow_key"))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by the first publish naming the key

    @admin.display(description=_("lag (waiting)"), ordering="waiting")
    def lag(self, flow: FlowControl) -> int:
        return int(getattr(flow, "waiting", 0))

    @admin.display(description=_("in delivery"), ordering="delivering")
    def active(self, flow: FlowControl) -> int:
        return int(getattr(flow, "delivering", 0))

    @admin.display(description=_("pinned"))
    def pinned(self, flow: FlowControl) -> str:
        return ", ".join(
            name
            for name, pinned in (
                ("parallelism", flow.pinned_parallelism),
                ("rate", flow.pinned_rate),
            )
            if pinned
        )

    @admin.action(description=_("Reset the rate of the selected keys (count from now)"))
    def reset_rate(self, request: HttpRequest, queryset: QuerySet[FlowControl]) -> None:
        now = timezone.now()
        for flow in queryset:
            flow.rate_reset_at = flow.updated_at = now
            flow.save(update_fields=["rate_reset_at", "updated_at"])
            self.log_change(request, flow, "Reset the rate: counted from now.")
        self.message_user(request, f"Reset the rate of {len(queryset)} key(s).")

    def save_model(self, request: HttpRequest, obj: FlowControl, form: Any, change: Any) -> None:
        # Only what the form changed: a publish, a pause or a reset may have written the row
        # since the page was loaded. Then let through what now fits.
        obj.updated_at = timezone.now()
        obj.save(update_fields=[*form.changed_data, "updated_at"])
        transaction.on_commit(lambda: admission.admit_flow(obj.key), robust=True)
