"""The admin of the delivery side (self-hosted QStash): messages with their attempts (cancel,
retry from the dead-letter queue), URL groups and their endpoints, delivery queues and
flow-control keys, message schedules (pause, resume), API tokens (shown once) and the signing
keys (rotate). Imported at the end of ``admin.py``; its conventions are that module's: state
the engine owns is read-only, each action has its own permission and leaves a LogEntry, lists
make no query per row."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin import (
    CappedPaginator,
    _ago,
    _in,
    _time_column,
    apply_each,
    job_badge_link,
    precise_time,
    status_badge,
)
from django_bgjobs.admin_views import pretty_json
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.delivery.models import (
    ApiToken,
    DeliveryAttempt,
    DeliveryQueue,
    FlowControl,
    Message,
    MessageSchedule,
    SigningKeys,
    Topic,
    TopicEndpoint,
)
from django_bgjobs.models import JobStatus

if TYPE_CHECKING:  # django-stubs' generics; not subscriptable at run time
    _MessageAdminBase = admin.ModelAdmin[Message]
    _TopicAdminBase = admin.ModelAdmin[Topic]
    _EndpointInlineBase = admin.TabularInline[TopicEndpoint, Topic]
    _QueueAdminBase = admin.ModelAdmin[DeliveryQueue]
    _FlowAdminBase = admin.ModelAdmin[FlowControl]
    _TokenAdminBase = admin.ModelAdmin[ApiToken]
    _KeysAdminBase = admin.ModelAdmin[SigningKeys]
    _ScheduleAdminBase = admin.ModelAdmin[MessageSchedule]
    _EndpointFormSetBase = BaseInlineFormSet[TopicEndpoint, Topic, forms.ModelForm[TopicEndpoint]]
else:
    _MessageAdminBase = _TopicAdminBase = _QueueAdminBase = _FlowAdminBase = admin.ModelAdmin
    _TokenAdminBase = _KeysAdminBase = _ScheduleAdminBase = admin.ModelAdmin
    _EndpointInlineBase = admin.TabularInline
    _EndpointFormSetBase = BaseInlineFormSet

UNFINISHED = (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING)

# QStash's message states (lifecycle.message_state), as badges.
STATE_COLOURS: dict[str, str] = {
    "CREATED": "#5c636a", "ACTIVE": "#0b5ed7", "RETRY": "#a04a00", "DELIVERED": "#146c43",
    "FAILED": "#b02a37", "CANCELLED": "#495057",
}
OUTCOME_COLOURS: dict[str, str] = {
    "delivered": "#146c43", "retry": "#a04a00", "failed": "#b02a37", "refused": "#b02a37",
}
BODY_SHOWN = 64 * 1024  # characters of a message's body its page shows
# Header values hidden from staff who are not superusers: credentials forwarded to the
# destination (Upstash-Forward-Authorization arrives as Authorization).
SECRET_HEADER_WORDS = ("authorization", "cookie", "token", "secret", "password", "api-key",
                       "apikey", "signature")


def message_url(message_id: str) -> str:
    return reverse("admin:django_bgjobs_message_change", args=[quote(message_id)])


def message_link(message_id: str | None, text: str | None = None) -> str:
    if not message_id:
        return "-"
    return format_html('<a href="{}">{}</a>', message_url(message_id), text or message_id)


def state_of(message: Message) -> str:
    from django_bgjobs.delivery.lifecycle import message_state

    return message_state(message)


def shown_headers(request: HttpRequest, headers: dict[str, Any]) -> list[tuple[str, str]]:
    """Headers as a page shows them: sorted, credentials masked for all but superusers."""
    reveal = request.user.is_superuser
    shown = []
    for name, value in sorted(headers.items(), key=lambda item: item[0].lower()):
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        if not reveal and any(word in name.lower() for word in SECRET_HEADER_WORDS):
            text = "•••• (shown to superusers)"
        shown.append((name, text))
    return shown


@dataclass(frozen=True)
class BytesView:
    """A body as a page shows it (escaped by the template)."""

    kind: str  # "json" (pretty-printed), "text" (UTF-8, bad bytes replaced) or "none"
    text: str
    size: int
    cut: bool


def bytes_view(raw: bytes) -> BytesView:
    if not raw:
        return BytesView("none", "", 0, cut=False)
    try:
        text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        kind = "json"
    except (ValueError, RecursionError):
        text, kind = raw[:BODY_SHOWN].decode("utf-8", errors="replace"), "text"
    return BytesView(kind, text[:BODY_SHOWN], len(raw), cut=len(text) > BODY_SHOWN or (
        kind == "text" and len(raw) > BODY_SHOWN))


# --- messages ---


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
                return queryset.filter(Q(job__status=JobStatus.SUCCEEDED) | Q(
                    job__isnull=True, admitted_at__isnull=False, cancelled_at__isnull=True))
            case "FAILED":
                return queryset.filter(job__status=JobStatus.DEAD)
            case "CANCELLED":
                return queryset.filter(Q(job__status=JobStatus.CANCELLED) | Q(
                    job__isnull=True, cancelled_at__isnull=False))
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


class KindFilter(admin.SimpleListFilter):
    """Fixed choices: a plain field filter would SELECT DISTINCT over every message."""

    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("message", "published"), ("callback", "callback"),
                ("failure_callback", "failure callback")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(kind=self.value()) if self.value() else queryset


class _NamesFilter(admin.SimpleListFilter):
    """The names of a small table (URL groups, queues), not a SELECT DISTINCT over messages."""

    model: type[Topic] | type[DeliveryQueue]
    field: str

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = list(self.model.objects.values_list("name", flat=True)[:200])
        if self.value() and self.value() not in names:  # one since deleted, from a link
            names.append(str(self.value()))
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class TopicFilter(_NamesFilter):
    title = _("URL group")
    parameter_name = "topic"
    model = Topic
    field = "topic"


class QueueFilter(_NamesFilter):
    title = _("queue")
    parameter_name = "queue"
    model = DeliveryQueue
    field = "queue"


class MessageChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest,
                     exclude_parameters: list[str | None] | None = None) -> QuerySet[Any]:
        # The list shows neither the body nor the headers: not read (bodies can be large).
        return super().get_queryset(request, exclude_parameters).defer(
            "body", "headers", "callback", "failure_callback")


@admin.register(Message)
class MessageAdmin(_MessageAdminBase):
    """Read-only: a message's state is its delivery job's. Cancel and retry from the DLQ go
    through lifecycle.py, as the API's do."""

    list_display = ("id", "url_display", "state_display", "attempts_display", "topic", "queue",
                    "created", "next_display", "schedule_display")
    list_filter = (MessageStateFilter, DeadLetterFilter, TopicFilter, QueueFilter, KindFilter,
                   "created_at")
    search_fields = ("=id", "^url", "=dlq_id", "=schedule_id", "=label", "=flow_key")
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over every message on each page load
    paginator = CappedPaginator
    show_facets = admin.ShowFacets.NEVER
    actions = ("cancel_messages", "retry_dead_letters")
    fieldsets = (
        (None, {"fields": ("id", "url", "method", "state_display", "job_display", "kind",
                           "source_display", "label")}),
        (_("Routing"), {"fields": ("topic", "endpoint_name", "queue", "flow_key",
                                   "schedule_display", "caller_ip", "signature")}),
        (_("Retries and callbacks"), {"fields": ("retries", "retry_delay", "timeout",
                                                 "callback_display", "failure_callback_display")}),
        (_("Timing"), {"fields": ("created", "not_before_display", "admitted", "cancelled",
                                  "dlq_id", "dlq_removed")}),
    )

    created = _time_column("created_at", _("created"))
    admitted = _time_column("admitted_at", _("admitted"))
    cancelled = _time_column("cancelled_at", _("cancelled"))
    dlq_removed = _time_column("dlq_removed_at", _("taken out of the DLQ"))
    not_before_display = _time_column("not_before", _("not before"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        # The state column reads the job: a LEFT JOIN, not a query per row.
        return super().get_queryset(request).select_related("job")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return MessageChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # published through publish() or the API

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its job and callbacks point at it; pruning removes finished ones

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.cancel_message")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.retry_message")

    def render_change_form(self, request: HttpRequest, context: dict[str, Any],
                           add: bool = False, change: bool = False, form_url: str = "",
                           obj: Message | None = None) -> HttpResponse:
        if obj is not None:
            state = state_of(obj)
            attempts = list(DeliveryAttempt.objects.filter(message=obj).order_by("id"))
            context.update(
                request_headers=shown_headers(request, obj.headers),
                request_body=bytes_view(bytes(obj.body)),
                attempts=[self._attempt_row(request, a) for a in attempts],
                can_cancel=state in ("CREATED", "ACTIVE", "RETRY")
                and self.has_cancel_permission(request),
                can_retry=bool(obj.dlq_id) and obj.dlq_removed_at is None
                and self.has_retry_permission(request),
                changelist_url=reverse("admin:django_bgjobs_message_changelist"))
        return super().render_change_form(request, context, add, change, form_url, obj)

    @staticmethod
    def _attempt_row(request: HttpRequest, attempt: DeliveryAttempt) -> dict[str, Any]:
        return {
            "retried": attempt.retried, "started": precise_time(attempt.started_at),
            "duration": "-" if attempt.duration_ms is None else f"{attempt.duration_ms} ms",
            "outcome": status_badge(attempt.outcome, attempt.outcome, OUTCOME_COLOURS),
            "status": attempt.status or "-", "address": attempt.address or "-",
            "error": attempt.error, "next": precise_time(attempt.next_attempt_at),
            "headers": shown_headers(request, attempt.response_headers),
            "body": bytes_view(bytes(attempt.response_body)),
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
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:django_bgjobs_messageschedule_change", args=[quote(message.schedule_id)]),
            message.schedule_id)

    @admin.display(description=_("delivery job"))
    def job_display(self, message: Message) -> str:
        if message.job is None:
            return "none yet (waiting for its queue or flow-control key)" if (
                message.admitted_at is None and message.cancelled_at is None) else "-"
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
    def cancel_messages(self, request: HttpRequest,
                        queryset: QuerySet[Message]) -> HttpResponse | None:
        from django_bgjobs.delivery.lifecycle import cancel

        done, skipped = apply_each(self, request, queryset,
                                   lambda m: "Cancelled." if cancel(m.pk) else None)
        self.message_user(request, f"{done} message(s) cancelled (an attempt in flight "
                                   "finishes; no other follows).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} message(s) skipped: already delivered, "
                                       "failed or cancelled.", messages.WARNING)
        return self._back(request)

    @admin.action(description=_("Retry selected messages from the dead-letter queue"),
                  permissions=["retry"])
    def retry_dead_letters(self, request: HttpRequest,
                           queryset: QuerySet[Message]) -> HttpResponse | None:
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
            self.message_user(request, format_html(
                "{} message(s) published again: {}.", len(new),
                format_html(", ".join(["{}"] * len(new)), *(message_link(m) for m in new))),
                messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} message(s) skipped: not in the dead-letter "
                                       "queue.", messages.WARNING)
        return self._back(request)


# --- URL groups ---


class EndpointFormSet(_EndpointFormSetBase):
    def clean(self) -> None:
        super().clean()
        urls = [form.cleaned_data.get("url") for form in self.forms
                if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        if len(urls) != len(set(urls)):
            raise ValidationError(_("An endpoint URL appears twice in this group."))


class EndpointForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = TopicEndpoint
        fields = ("url", "name")
        widgets = {"url": forms.TextInput(attrs={"size": 70})}

    def clean_url(self) -> str:
        from django_bgjobs.delivery.publish import PublishError, check_destination_url

        url = str(self.cleaned_data["url"]).strip()
        try:
            check_destination_url(url)
        except PublishError as exc:
            raise ValidationError(str(exc)) from None
        return url


class TopicEndpointInline(_EndpointInlineBase):
    model = TopicEndpoint
    form = EndpointForm
    formset = EndpointFormSet
    extra = 1


@admin.register(Topic)
class TopicAdmin(_TopicAdminBase):
    """URL groups are configuration: editable here (publishing to one makes a message per
    endpoint)."""

    list_display = ("name", "endpoint_count", "updated")
    search_fields = ("name",)
    fields = ("name", "headers")
    inlines = (TopicEndpointInline,)

    updated = _time_column("updated_at", _("updated"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Topic]:
        return super().get_queryset(request).annotate(endpoint_total=Count("endpoints"))

    @admin.display(description=_("endpoints"), ordering="endpoint_total")
    def endpoint_count(self, topic: Topic) -> int:
        return int(getattr(topic, "endpoint_total", 0))

    def save_model(self, request: HttpRequest, obj: Topic, form: Any, change: Any) -> None:
        obj.updated_at = timezone.now()
        if not change:
            obj.created_at = obj.updated_at
        super().save_model(request, obj, form, change)


# --- queues and flow control ---


def _waiting(field: str) -> Any:
    """Messages of the row's queue / flow key still waiting to be let through (its lag)."""
    rows = Message.objects.filter(**{field: OuterRef("name" if field == "queue" else "key")},
                                  admitted_at__isnull=True, cancelled_at__isnull=True)
    return Coalesce(Subquery(rows.values(field).annotate(n=Count("pk")).values("n")[:1],
                             output_field=IntegerField()), 0)


def _in_delivery(field: str) -> Any:
    """Messages of the row's queue / flow key admitted and not finished."""
    rows = Message.objects.filter(**{field: OuterRef("name" if field == "queue" else "key")},
                                  admitted_at__isnull=False, job__status__in=UNFINISHED)
    return Coalesce(Subquery(rows.values(field).annotate(n=Count("pk")).values("n")[:1],
                             output_field=IntegerField()), 0)


class DeliveryQueueForm(forms.ModelForm):  # type: ignore[type-arg]
    parallelism = forms.IntegerField(min_value=1, initial=1, help_text=_(
        "Messages of the queue in delivery at once (retries included)."))

    class Meta:
        model = DeliveryQueue
        fields = ("name", "parallelism", "paused")


@admin.register(DeliveryQueue)
class DeliveryQueueAdmin(_QueueAdminBase):
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

    updated = _time_column("updated_at", _("updated"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryQueue]:
        return super().get_queryset(request).annotate(
            waiting=_waiting("queue"), delivering=_in_delivery("queue"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name"] if obj is not None else []  # its messages name it

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A queue with messages still waiting is protected: they would wait for a queue that
        is gone. Django then refuses the deletion (one queue or several) and says why."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        busy = (Message.objects.filter(queue__in=[queue.name for queue in objs],
                                       admitted_at__isnull=True, cancelled_at__isnull=True)
                .values_list("queue", flat=True).distinct())
        protected = [*protected, *(f"queue {name}: messages are waiting in it (cancel them, "
                                   "or let them through first)" for name in busy)]
        return deleted, counts, perms_needed, protected

    @admin.display(description=_("lag (waiting)"), ordering="waiting")
    def lag(self, queue: DeliveryQueue) -> int:
        return int(getattr(queue, "waiting", 0))

    @admin.display(description=_("in delivery"), ordering="delivering")
    def active(self, queue: DeliveryQueue) -> int:
        return int(getattr(queue, "delivering", 0))

    def save_model(self, request: HttpRequest, obj: DeliveryQueue, form: Any,
                   change: Any) -> None:
        obj.updated_at = timezone.now()
        if not change:
            obj.created_at = obj.updated_at
        super().save_model(request, obj, form, change)


@admin.register(FlowControl)
class FlowControlAdmin(_FlowAdminBase):
    """The limits are set by the publishes that name the key (the last one wins): read-only
    here. Pausing is the admin's."""

    list_display = ("key", "parallelism", "rate", "period", "paused", "lag", "active",
                    "updated")
    list_editable = ("paused",)
    list_filter = ("paused",)
    search_fields = ("key",)
    fields = ("key", "parallelism", "rate", "period", "paused", "updated")
    readonly_fields = ("key", "parallelism", "rate", "period", "updated")

    updated = _time_column("updated_at", _("updated"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[FlowControl]:
        return super().get_queryset(request).annotate(
            waiting=_waiting("flow_key"), delivering=_in_delivery("flow_key"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by the first publish naming the key

    @admin.display(description=_("lag (waiting)"), ordering="waiting")
    def lag(self, flow: FlowControl) -> int:
        return int(getattr(flow, "waiting", 0))

    @admin.display(description=_("in delivery"), ordering="delivering")
    def active(self, flow: FlowControl) -> int:
        return int(getattr(flow, "delivering", 0))

    def save_model(self, request: HttpRequest, obj: FlowControl, form: Any,
                   change: Any) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)


# --- API tokens ---


@admin.register(ApiToken)
class ApiTokenAdmin(_TokenAdminBase):
    """Adding a token shows it once, on the page that follows; only its hash is stored."""

    list_display = ("name", "prefix_display", "user", "is_active", "created", "last_used")
    list_filter = ("is_active",)
    search_fields = ("name", "=prefix")
    raw_id_fields = ("user",)
    actions = ("deactivate",)

    created = _time_column("created_at", _("created"))
    last_used = _time_column("last_used_at", _("last used"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).select_related("user")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "user"]
        return ["name", "prefix_display", "user", "is_active", "created", "last_used"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["prefix_display", "created", "last_used"]

    @admin.display(description=_("token starts with"))
    def prefix_display(self, token: ApiToken) -> str:
        return f"{token.prefix}…"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: Any) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        from django_bgjobs.qstash_api.tokens import create_token

        made, raw = create_token(obj.name, user=obj.user)
        for name in ("pk", "token_hash", "prefix", "created_at", "is_active"):
            setattr(obj, name, getattr(made, name))
        obj._bgjobs_raw_token = raw  # type: ignore[attr-defined]  # for response_add only

    def response_add(self, request: HttpRequest, obj: ApiToken,
                     post_url_continue: str | None = None) -> HttpResponse:
        """The token, on this response only: not in a message (kept in the session or a
        cookie until shown), not in the LogEntry, never again."""
        raw: str = obj._bgjobs_raw_token  # type: ignore[attr-defined]
        response = TemplateResponse(request, "admin/django_bgjobs/apitoken/token_created.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "token": obj,
            "raw_token": raw, "title": _("API token created"),
            "change_url": reverse("admin:django_bgjobs_apitoken_change", args=[obj.pk]),
            "changelist_url": reverse("admin:django_bgjobs_apitoken_changelist"),
        })
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Deactivate selected tokens"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        def deactivate_one(token: ApiToken) -> str | None:
            if not ApiToken.objects.filter(pk=token.pk, is_active=True).update(is_active=False):
                return None
            return "Deactivated."

        done, skipped = apply_each(self, request, queryset, deactivate_one)
        self.message_user(request, f"{done} token(s) deactivated.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} token(s) were inactive already.",
                              messages.WARNING)


# --- signing keys ---


def masked(key: str) -> str:
    return "" if not key else "•" * 8 + key[-4:]


def _key_column(attr: str, label: Any, reveal: bool) -> Any:
    @admin.display(description=label)
    def column(admin_: Any, keys: SigningKeys) -> str:
        key = str(getattr(keys, attr))
        return (key if reveal else masked(key)) or "-"

    return column


@admin.register(SigningKeys)
class SigningKeysAdmin(_KeysAdminBase):
    """The keys outbound deliveries are signed with. Shown in full to superusers only; other
    staff see the last four characters (the columns are chosen per request: a ModelAdmin is
    shared by every request). Rotate with its own permission."""

    actions = ("rotate_keys",)

    current_full = _key_column("current", _("current (signs deliveries)"), reveal=True)
    current_masked = _key_column("current", _("current (signs deliveries)"), reveal=False)
    next_full = _key_column("next", _("next"), reveal=True)
    next_masked = _key_column("next", _("next"), reveal=False)
    standard_full = _key_column("standard_secret", _("Standard Webhooks secret"), reveal=True)
    standard_masked = _key_column("standard_secret", _("Standard Webhooks secret"),
                                  reveal=False)
    rotated = _time_column("rotated_at", _("rotated"))

    @staticmethod
    def _suffix(request: HttpRequest) -> str:
        return "full" if request.user.is_superuser else "masked"

    def get_list_display(self, request: HttpRequest) -> list[str]:  # type: ignore[override]
        end = self._suffix(request)
        return ["__str__", f"current_{end}", f"next_{end}", "rotated"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        end = self._suffix(request)
        return [f"current_{end}", f"next_{end}", "previous_display", "rotated",
                f"standard_{end}"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.get_fields(request, obj))

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from django_bgjobs.delivery.keys import signing_keys

        if self.has_view_permission(request):
            signing_keys()  # made on first use: the list is never empty
        return super().changelist_view(request, extra_context)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any],
                           add: bool = False, change: bool = False, form_url: str = "",
                           obj: SigningKeys | None = None) -> HttpResponse:
        context.update(can_rotate=self.has_rotate_permission(request),
                       changelist_url=reverse("admin:django_bgjobs_signingkeys_changelist"),
                       overlap=int(bgjobs_settings.DELIVERY_KEY_OVERLAP.total_seconds()))
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description=_("previous current key"))
    def previous_display(self, keys: SigningKeys) -> str:
        """Never shown: only whether our own receivers still accept it."""
        if not keys.previous or keys.rotated_at is None:
            return "-"
        left = keys.rotated_at + bgjobs_settings.DELIVERY_KEY_OVERLAP
        if left <= timezone.now():
            return "no longer accepted (the overlap after the last rotation is over)"
        return format_html("…{}: accepted by this project's own receivers until {}",
                           keys.previous[-4:], precise_time(left))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row, made on first use

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.rotate_signingkeys")

    @admin.action(description=_("Rotate keys (next becomes current, a new next is drawn)"),
                  permissions=["rotate"])
    def rotate_keys(self, request: HttpRequest,
                    queryset: QuerySet[SigningKeys]) -> HttpResponse | None:
        from django_bgjobs.delivery.keys import rotate

        keys = rotate()
        self.log_change(request, keys, "Rotated the signing keys.")
        self.message_user(request, "Keys rotated: deliveries are now signed with the former "
                                   "next key. Give receivers the new current and next keys "
                                   "before rotating again.", messages.SUCCESS)
        if request.POST.get("_bgjobs_back"):
            return HttpResponseRedirect(reverse("admin:django_bgjobs_signingkeys_change",
                                                args=[keys.pk]))
        return None


# --- message schedules ---


class ScheduleStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active"), ("paused", "paused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(periodic_task__enabled=True)
        if self.value() == "paused":
            return queryset.filter(Q(periodic_task__isnull=True) |
                                   Q(periodic_task__enabled=False))
        return queryset


@admin.register(MessageSchedule)
class MessageScheduleAdmin(_ScheduleAdminBase):
    """Made through the API or ``message_schedules.create()``: read-only here, except pausing,
    resuming and deleting (which removes its beat task too)."""

    list_display = ("id", "destination", "cron", "state_display", "next_run_display",
                    "last_fired_display", "last_message_display")
    list_filter = (ScheduleStateFilter,)
    search_fields = ("=id", "^destination")
    actions = ("pause_schedules", "resume_schedules")
    fieldsets = (
        (None, {"fields": ("id", "destination", "cron", "state_display", "next_run_display",
                           "last_fired_display", "last_message_display", "queue",
                           "created")}),
        (_("Message template"), {"fields": ("method_display", "template_options")}),
    )

    created = _time_column("created_at", _("created"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[MessageSchedule]:
        return super().get_queryset(request).select_related("periodic_task")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.change_messageschedule")

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
        return format_html("{} ({})", precise_time(upcoming)[:-4], _in(upcoming, now))

    @admin.display(description=_("last fired"), ordering="last_fired_at")
    def last_fired_display(self, row: MessageSchedule) -> str:
        if row.last_fired_at is None:
            return "never"
        return format_html("{} ({})", precise_time(row.last_fired_at)[:-4],
                           _ago(row.last_fired_at, timezone.now()))

    @admin.display(description=_("last message"))
    def last_message_display(self, row: MessageSchedule) -> str:
        return message_link(row.last_message_id)

    @admin.display(description=_("method"))
    def method_display(self, row: MessageSchedule) -> str:
        return str(self._template(row).method)

    @admin.display(description=_("options"))
    def template_options(self, row: MessageSchedule) -> str:
        template = self._template(row)
        shown = {name: value for name, value in (
            ("retries", template.retries), ("retry_delay", template.retry_delay),
            ("delay", template.delay), ("timeout", template.timeout),
            ("callback", template.callback and template.callback.url),
            ("failure_callback", template.failure_callback and template.failure_callback.url),
            ("queue", template.queue), ("flow_control", template.flow and template.flow.key),
            ("label", template.label), ("signature", template.signature)) if value}
        return pretty_json(shown)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any],
                           add: bool = False, change: bool = False, form_url: str = "",
                           obj: MessageSchedule | None = None) -> HttpResponse:
        if obj is not None:
            template = self._template(obj)
            context.update(request_headers=shown_headers(request, dict(template.headers)),
                           request_body=bytes_view(template.body))
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- actions ---

    def _toggle(self, request: HttpRequest, queryset: Iterable[MessageSchedule],
                paused: bool) -> None:
        from django_bgjobs.delivery.message_schedules import pause, resume

        def toggle(row: MessageSchedule) -> str | None:
            if row.paused == paused:
                return None
            (pause if paused else resume)(row.pk)
            return "Paused." if paused else "Resumed."

        done, skipped = apply_each(self, request, queryset, toggle)
        verb = "paused" if paused else "resumed"
        self.message_user(request, f"{done} schedule(s) {verb}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} schedule(s) were {verb} already.",
                              messages.WARNING)

    @admin.action(description=_("Pause selected schedules"), permissions=["pause"])
    def pause_schedules(self, request: HttpRequest,
                        queryset: QuerySet[MessageSchedule]) -> None:
        self._toggle(request, queryset, paused=True)

    @admin.action(description=_("Resume selected schedules (from their next slot)"),
                  permissions=["pause"])
    def resume_schedules(self, request: HttpRequest,
                         queryset: QuerySet[MessageSchedule]) -> None:
        self._toggle(request, queryset, paused=False)
