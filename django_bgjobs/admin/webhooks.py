"""The webhook receipts, read-only, with their verification outcome, body and job, and
replay."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import (
    ChoicesFilter,
    ReadOnlyAdmin,
    apply_each,
    body_view,
    job_badge_link,
    job_link,
    short_id,
    status_badge,
    time_column,
)
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import (
    InboundWebhook,
    Job,
)
from django_bgjobs.webhooks.endpoints import SCHEMES

OUTCOME_COLOURS: dict[str, str] = {"accepted": "#146c43", "rejected": "#b02a37"}
PRETTY_MAX = 2 * 1024 * 1024  # bytes; larger bodies are not parsed to pretty-print them


def receipt_url(receipt: InboundWebhook) -> str:
    return reverse("admin:django_bgjobs_inboundwebhook_change", args=[receipt.pk])


def receipt_of(job: Job) -> tuple[InboundWebhook, bool] | None:
    """The receipt a handler job was enqueued for, and whether that receipt still points at it.
    A replay points the receipt at the new job; the jobs before it are found by their argument,
    the receipt's id (the handler's contract), when their name is that endpoint's handler."""
    from django.core.exceptions import ImproperlyConfigured

    from django_bgjobs.webhooks.endpoints import endpoint
    from django_bgjobs.webhooks.receipts import handler

    current = job.webhook_receipts.order_by("-pk").first()
    if current is not None:
        return current, True
    if job.kwargs or len(job.args) != 1 or type(job.args[0]) is not int:
        return None
    receipt = InboundWebhook.objects.filter(pk=job.args[0], verified=True).first()
    if receipt is None:
        return None
    try:
        found = endpoint(receipt.endpoint)
        function = handler(found) if found is not None else None
    except ImproperlyConfigured:  # the system check reports it; the page still shows the job
        return None
    return (receipt, False) if function is not None and function.name == job.name else None


class EndpointFilter(ChoicesFilter):
    """The endpoints in BGJOBS["WEBHOOKS"]."""

    title = _("endpoint")
    parameter_name = "endpoint"

    def known(self, request: HttpRequest) -> list[str]:
        return sorted(bgjobs_settings.WEBHOOKS)


class SchemeFilter(ChoicesFilter):
    title = _("scheme")
    parameter_name = "scheme"

    def known(self, request: HttpRequest) -> list[str]:
        return list(SCHEMES)


@admin.register(InboundWebhook)
class InboundWebhookAdmin(ReadOnlyAdmin[InboundWebhook]):
    # receipts come from deliveries only
    # a receipt is the record of what arrived; its job reads it
    """What arrived, as it was kept: nothing here can be edited; a verified one can be replayed."""

    list_display = (
        "received",
        "endpoint",
        "scheme",
        "message_id_display",
        "outcome_display",
        "size_display",
        "job_display",
    )
    # The list shows the body's size (computed by the database), never the body: up to
    # WEBHOOK_MAX_BODY bytes a row. Actions get this queryset too; replay needs no body.
    list_deferred = ("body",)
    list_filter = (EndpointFilter, SchemeFilter, "verified", "received_at")
    search_fields = ("=message_id", "=endpoint")
    list_per_page = 50
    show_full_result_count = False  # as for jobs: no COUNT(*) over every receipt
    actions = ("replay_receipts",)
    change_form_template = "django_bgjobs/admin/inboundwebhook_change_form.html"
    fieldsets = ((None, {"fields": list_display}),)  # the list's columns, on the page too

    received = time_column("received_at", _("received"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundWebhook]:
        # The job column: a LEFT JOIN, not a query per row.
        return (
            super().get_queryset(request).select_related("job").annotate(body_size=Length("body"))
        )

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.replay_inboundwebhook")

    def page_context(self, request: HttpRequest, obj: InboundWebhook) -> dict[str, Any]:
        return {
            "body": body_view(bytes(obj.body), pretty_max=PRETTY_MAX),
            "kept_headers": sorted(obj.headers.items()),
            "can_replay": obj.verified and self.has_replay_permission(request),
            "changelist_url": reverse("admin:django_bgjobs_inboundwebhook_changelist"),
        }

    # --- columns ---

    @admin.display(description=_("provider message id"), ordering="message_id")
    def message_id_display(self, receipt: InboundWebhook) -> str:
        return receipt.message_id or "-"

    @admin.display(description=_("verification"), ordering="verified")
    def outcome_display(self, receipt: InboundWebhook) -> str:
        if receipt.verified:
            return status_badge("accepted", "accepted", OUTCOME_COLOURS)
        return status_badge("rejected", receipt.failed_check or "rejected", OUTCOME_COLOURS)

    @admin.display(description=_("body"), ordering="body_size")
    def size_display(self, receipt: InboundWebhook) -> str:
        size = getattr(receipt, "body_size", None)  # annotated by get_queryset
        if size is None:
            size = len(receipt.body)
        return filesizeformat(size) if size else "-"

    @admin.display(description=_("job"))
    def job_display(self, receipt: InboundWebhook) -> str:
        if receipt.job is None:  # no handler configured, a rejected delivery, or pruned
            return "-"
        return job_badge_link(receipt.job)

    # --- actions ---

    @admin.action(description=_("Replay selected verified receipts"), permissions=["replay"])
    def replay_receipts(
        self, request: HttpRequest, queryset: QuerySet[InboundWebhook]
    ) -> HttpResponse | None:
        from django_bgjobs.webhooks.receipts import replay

        replayed: list[Job] = []
        unverified: list[InboundWebhook] = []

        def replay_one(receipt: InboundWebhook) -> str | None:
            if not receipt.verified:  # a rejected delivery has no body to run again
                unverified.append(receipt)
                return None
            previous = receipt.job_id
            try:
                job = replay(receipt)
            except ValueError as problem:  # the endpoint has no handler job (any more)
                self.message_user(request, f"{receipt}: {problem}.", messages.ERROR)
                return None
            replayed.append(job)
            return f"Replayed: enqueued job {job.pk}" + (
                f" (its job was {previous})." if previous else "."
            )

        apply_each(self, request, queryset.order_by("pk"), replay_one)
        if replayed:
            self.message_user(
                request,
                format_html(
                    "{} receipt(s) replayed: {}.",
                    len(replayed),
                    format_html_join(
                        ", ", "{}", ((job_link(j, f"job {short_id(j.pk)}"),) for j in replayed)
                    ),
                ),
                messages.SUCCESS,
            )
        if unverified:
            self.message_user(
                request,
                f"{len(unverified)} receipt(s) refused: only verified "
                "deliveries can be replayed (a rejected one kept no body).",
                messages.WARNING,
            )
        # From a receipt's page (its Replay button), back to that page.
        back = request.POST.get("_bgjobs_back")
        if back and back.isdigit():
            return HttpResponseRedirect(
                reverse("admin:django_bgjobs_inboundwebhook_change", args=[int(back)])
            )
        return None
