"""The admin of messages: their state, the attempts timeline, cancel and retry from the
dead-letter queue."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import (
    CappedPaginator,
    ChoicesFilter,
    ReadOnlyAdmin,
    apply_each,
    body_view,
    job_badge_link,
    link,
    precise_time,
    pretty_json,
    status_badge,
    time_column,
)
from django_bgjobs.delivery import redaction
from django_bgjobs.delivery.admin.common import (
    OUTCOME_COLOURS,
    STATE_COLOURS,
    message_link,
    message_url,
    shown_headers,
    state_of,
)
from django_bgjobs.delivery.models import (
    DeliveryAttempt,
    DeliveryQueue,
    Message,
    Topic,
)
from django_bgjobs.models import JobStatus


class MessageStateFilter(admin.SimpleListFilter):
    """QStash's states, as lifecycle.message_state() derives them from the delivery job."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(state, state.lower()) for state in STATE_COLOURS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        waiting = Q(job__isnull=True, admitted_at__isnull=True, cancelled_at__isnull=True)
        match self.value():
            case "CREATED":
                return queryset.filter(waiting | Q(job__status=JobStatus.SCHEDULED))
            case "ACTIVE":
                return queryset.filter(job__status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
            case "RETRY":
                return queryset.filter(job__status=JobStatus.RETRYING)
            case "DELIVERED":
                return queryset.filter(
                    Q(job__status=JobStatus.SUCCEEDED)
                    | Q(job__isnull=True, admitted_at__isnull=False, cancelled_at__isnull=True)
                )
            case "FAILED":
                return queryset.filter(job__status=JobStatus.DEAD)
            case "CANCELLED":
                return queryset.filter(
                    Q(job__status=JobStatus.CANCELLED)
                    | Q(job__isnull=True, cancelled_at__isnull=False)
                )
        return queryset


class DeadLetterFilter(admin.SimpleListFilter):
    title = _("dead-letter queue")
    parameter_name = "dlq"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("in", "in the DLQ"), ("out", "taken out (retried or deleted)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "in":
            return queryset.filter(dlq_id__isnull=False, dlq_removed_at__isnull=True)
        if self.value() == "out":
            return queryset.filter(dlq_removed_at__isnull=False)
        return queryset


class KindFilter(ChoicesFilter):
    """Fixed choices: a plain field filter would SELECT DISTINCT over every message."""

    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("message", "published"),
            ("callback", "callback"),
            ("failure_callback", "failure callback"),
        ]


class _NamesFilter(ChoicesFilter):
    """The names of a small table (URL groups, queues), and one since deleted from a link."""

    model: type[Topic] | type[DeliveryQueue]
    keep_unknown = True

    def known(self, request: HttpRequest) -> list[str]:
        return list(self.model.objects.values_list("name", flat=True)[:200])


class TopicFilter(_NamesFilter):
    title = _("URL group")
    parameter_name = "topic"
    model = Topic


class QueueFilter(_NamesFilter):
    title = _("queue")
    parameter_name = "queue"
    model = DeliveryQueue


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin[Message]):
    # published through publish() or the API
    # its job and callbacks point at it; pruning removes finished ones
    """Read-only: a message's state is its delivery job's. Cancel and retry from the DLQ go
    through lifecycle.py, as the API's do."""

    list_display = (
        "id",
        "url_display",
        "state_display",
        "attempts_display",
        "topic",
        "queue",
        "created",
        "next_display",
        "schedule_display",
    )
    list_filter = (
        MessageStateFilter,
        DeadLetterFilter,
        TopicFilter,
        QueueFilter,
        KindFilter,
        "created_at",
    )
    search_fields = (
        "=id",
        "^url",
        "=dlq_id",
        "=schedule_id",
        "label",
        "=flow_key",
        "=workflow_run_id",
    )
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over every message on each page load
    paginator = CappedPaginator
    show_facets = admin.ShowFacets.NEVER
    actions = ("cancel_messages", "retry_dead_letters")
    # The list shows neither the body nor the headers: not read (bodies can be large).
    list_deferred = ("body", "headers", "callback", "failure_callback")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "url",
                    "method",
                    "state_display",
                    "job_display",
                    "kind",
                    "source_display",
                    "label",
                    "redact",
                )
            },
        ),
        (
            _("Routing"),
            {
                "fields": (
                    "topic",
                    "endpoint_name",
                    "queue",
                    "flow_key",
                    "workflow_run_id",
                    "schedule_display",
                    "caller_ip",
                    "signature",
                )
            },
        ),
        (
            _("Retries and callbacks"),
            {
                "fields": (
                    "retries",
                    "retry_delay",
                    "timeout",
                    "callback_display",
                    "failure_callback_display",
                )
            },
        ),
        (
            _("Timing"),
            {
                "fields": (
                    "created",
                    "not_before_display",
                    "admitted",
                    "cancelled",
                    "dlq_id",
                    "dlq_removed",
                )
            },
        ),
    )

    created = time_column("created_at", _("created"))
    admitted = time_column("admitted_at", _("admitted"))
    cancelled = time_column("cancelled_at", _("cancelled"))
    dlq_removed = time_column("dlq_removed_at", _("taken out of the DLQ"))
    not_before_display = time_column("not_before", _("not before"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        # The state column reads the job: a LEFT JOIN, not a query per row.
        return super().get_queryset(request).select_related("job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bgjobs_delivery.cancel_message")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bgjobs_delivery.retry_message")

    def page_context(self, request: HttpRequest, obj: Message) -> dict[str, Any]:
        state = state_of(obj)
        attempts = list(DeliveryAttempt.objects.filter(message=obj).order_by("id"))
        return {
            "request_headers": shown_headers(
                request, redaction.shown_headers(obj.redact, obj.headers)
            ),
            "request_body": body_view(redaction.shown_body(obj.redact, bytes(obj.body))),
            "attempts": [self._attempt_row(request, a) for a in attempts],
            "can_cancel": state in ("CREATED", "ACTIVE", "RETRY")
            and self.has_cancel_permission(request),
            "can_retry": bool(obj.dlq_id)
            and obj.dlq_removed_at is None
            and self.has_retry_permission(request),
            "changelist_url": reverse("admin:bgjobs_delivery_message_changelist"),
        }

    @staticmethod
    def _attempt_row(request: HttpRequest, attempt: DeliveryAttempt) -> dict[str, Any]:
        return {
            "retried": attempt.retried,
            "started": precise_time(attempt.started_at),
            "duration": "-" if attempt.duration_ms is None else f"{attempt.duration_ms} ms",
            "outcome": status_badge(attempt.outcome, attempt.outcome, OUTCOME_COLOURS),
            "status": attempt.status or "-",
            "address": attempt.address or "-",
            "error": attempt.error,
            "next": precise_time(attempt.next_attempt_at),
            "headers": shown_headers(request, attempt.response_headers),
            "body": body_view(bytes(attempt.response_body)),
            "truncated": attempt.body_truncated,
        }

    # --- columns ---

    @admin.display(description=_("destination"), ordering="url")
    def url_display(self, message: Message) -> str:
        return message.url if len(message.url) <= 60 else message.url[:59] + "…"

    @admin.display(description=_("state"))
    def state_display(self, message: Message) -> str:
        state = state_of(message)
        label = state.lower()
        if message.dlq_id and message.dlq_removed_at is None:
            label = f"{label} (in DLQ)"
        return status_badge(state, label, STATE_COLOURS)

    @admin.display(description=_("attempts"))
    def attempts_display(self, message: Message) -> str:
        done = message.job.attempts if message.job is not None else 0
        return f"{done}/{message.retries + 1}"

    @admin.display(description=_("next attempt / finished"))
    def next_display(self, message: Message) -> str:
        job = message.job
        if job is None:
            return "-"
        if job.status in (JobStatus.SCHEDULED, JobStatus.RETRYING):
            return format_html("next {}", precise_time(job.run_after))
        return precise_time(job.finished_at) if job.finished_at else "-"

    @admin.display(description=_("schedule"), ordering="schedule_id")
    def schedule_display(self, message: Message) -> str:
        if not message.schedule_id:
            return "-"
        url = reverse(
            "admin:bgjobs_delivery_messageschedule_change", args=[quote(message.schedule_id)]
        )
        return link(url, message.schedule_id)

    @admin.display(description=_("delivery job"))
    def job_display(self, message: Message) -> str:
        if message.job is None:
            return (
                "none yet (waiting for its queue or flow-control key)"
                if (message.admitted_at is None and message.cancelled_at is None)
                else "-"
            )
        return job_badge_link(message.job)

    @admin.display(description=_("callback of"))
    def source_display(self, message: Message) -> str:
        if message.source_id is None:
            return "-"
        return format_html("{} ({})", message_link(message.source_id), message.kind)

    @admin.display(description=_("callback"))
    def callback_display(self, message: Message) -> str:
        return pretty_json(message.callback) if message.callback else "-"

    @admin.display(description=_("failure callback"))
    def failure_callback_display(self, message: Message) -> str:
        return pretty_json(message.failure_callback) if message.failure_callback else "-"

    # --- actions ---

    def _back(self, request: HttpRequest) -> HttpResponse | None:
        """From a message's page (its buttons), back to that page."""
        back = request.POST.get("_bgjobs_back")
        if back and Message.objects.filter(pk=back).exists():
            return HttpResponseRedirect(message_url(back))
        return None

    @admin.action(description=_("Cancel selected messages"), permissions=["cancel"])
    def cancel_messages(
        self, request: HttpRequest, queryset: QuerySet[Message]
    ) -> HttpResponse | None:
        from django_bgjobs.delivery.lifecycle import cancel

        apply_each(
            self,
            request,
            queryset,
            lambda m: "Cancelled." if cancel(m.pk) else None,
            done="{n} message(s) cancelled (an attempt in flight finishes; no other follows).",
            skipped="{n} message(s) skipped: already delivered, failed or cancelled.",
        )
        return self._back(request)

    @admin.action(
        description=_("Retry selected messages from the dead-letter queue"), permissions=["retry"]
    )
    def retry_dead_letters(
        self, request: HttpRequest, queryset: QuerySet[Message]
    ) -> HttpResponse | None:
        from django_bgjobs.delivery.lifecycle import retry_dead

        new: list[str] = []

        def retry_one(message: Message) -> str | None:
            if not message.dlq_id or message.dlq_removed_at is not None:
                return None
            published = retry_dead(message.dlq_id)
            if published is None:  # taken out meanwhile
                return None
            new.append(published.message_id)
            return f"Retried from the DLQ as message {published.message_id}."

        done, skipped = apply_each(self, request, queryset, retry_one)
        if new:
            self.message_user(
                request,
                format_html(
                    "{} message(s) published again: {}.",
                    len(new),
                    format_html(", ".join(["{}"] * len(new)), *(message_link(m) for m in new)),
                ),
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                f"{skipped} message(s) skipped: not in the dead-letter queue.",
                messages.WARNING,
            )
        return self._back(request)
