"""The events sent, read-only: their payload, when they were delivered, and the runs they
started. Searchable by name and by payload field: ``user_id=42`` finds the events whose
``user_id`` is 42, ``email="a@b.c"`` (JSON) or ``email=a@b.c`` (text) by a string field."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from django_bgjobs._ids import uuid7_bound
from django_bgjobs.admin.widgets import (
    ReadOnlyAdmin,
    job_badge_link,
    pretty_json,
    short_id,
    time_column,
)
from django_bgjobs.models import EventRecord, Job

RUNS_SHOWN = 50  # runs listed on an event's page
SENT_WITH = timedelta(minutes=1)  # the most a sender's transaction may take after the event


@admin.register(EventRecord)
class EventAdmin(ReadOnlyAdmin[EventRecord]):
    list_display = ("short_id", "name", "payload_display", "created", "delivered")
    search_fields = ("name",)
    search_help_text = _(
        'An event name, or a payload field: user_id=42, email="a@b.c" (a JSON value) or '
        "email=a@b.c."
    )
    fieldsets = (
        (None, {"fields": ("id", "name", "payload_display", "created", "delivered")}),
        (_("Runs it started"), {"fields": ("runs_display",)}),
    )
    show_full_result_count = False

    created = time_column("created_at", _("sent"))
    delivered = time_column("delivered_at", _("delivered"))

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, record: EventRecord) -> str:
        return short_id(record.pk)

    @admin.display(description=_("payload"))
    def payload_display(self, record: EventRecord) -> str:
        return pretty_json(record.data)

    @admin.display(description=_("runs"))
    def runs_display(self, record: EventRecord) -> str:
        # The runs were written in the sender's transaction, right after the event: a primary
        # key range (UUIDv7 ids are time-ordered), not a scan of every job's arguments.
        since = uuid7_bound(record.created_at)
        until = uuid7_bound(record.created_at + SENT_WITH)
        started = Job.objects.filter(
            pk__gte=since, pk__lt=until, kwargs__event__id=str(record.pk)
        ).order_by("pk")[:RUNS_SHOWN]
        return (
            format_html_join(", ", "{} {}", ((job_badge_link(job), job.name) for job in started))
            or "-"
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[EventRecord], search_term: str
    ) -> tuple[QuerySet[EventRecord], bool]:
        field, equals, value = search_term.partition("=")
        if not equals or not field.strip().isidentifier():
            return super().get_search_results(request, queryset, search_term)
        field, value = field.strip(), value.strip()
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        # __exact: the field's name is a key even when it is a lookup's ("in", "contains").
        matches = Q(**{f"data__{field}__exact": parsed})
        if not isinstance(parsed, str):  # 42 typed in the box may be the string "42" too
            matches |= Q(**{f"data__{field}__exact": value})
        return queryset.filter(matches), False
