"""What the delivery admin pages share: links to a message, state badges, masked headers."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import quote
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from django_bgjobs.admin.widgets import link
from django_bgjobs.delivery.models import (
    DELIVER_JOB,
    Message,
)
from django_bgjobs.models import Job

# QStash's message states (lifecycle.message_state), as badges.
STATE_COLOURS: dict[str, str] = {
    "CREATED": "#5c636a",
    "ACTIVE": "#0b5ed7",
    "RETRY": "#a04a00",
    "DELIVERED": "#146c43",
    "FAILED": "#b02a37",
    "CANCELLED": "#495057",
}
OUTCOME_COLOURS: dict[str, str] = {
    "delivered": "#146c43",
    "retry": "#a04a00",
    "failed": "#b02a37",
    "refused": "#b02a37",
}
# Header values hidden from staff who are not superusers: credentials forwarded to the
# destination (Upstash-Forward-Authorization arrives as Authorization).
SECRET_HEADER_WORDS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
    "signature",
)


def message_url(message_id: str) -> str:
    return reverse("admin:bgjobs_delivery_message_change", args=[quote(message_id)])


def message_link(message_id: str | None, text: str | None = None) -> str:
    if not message_id:
        return "-"
    return link(message_url(message_id), text or message_id)


def job_message_link(job: Job) -> str | None:
    """The job page's line for a delivery job: its message and where it goes (one query, and
    none for other jobs)."""
    if job.name != DELIVER_JOB:
        return None
    message = Message.objects.filter(job_id=job.pk).only("id", "url").first()
    if message is None:
        return None
    return format_html("{} → {}", message_link(message.pk), message.url)


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
