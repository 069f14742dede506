"""What the delivery admin pages share: links, state badges, masked headers, byte views."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.utils import quote
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

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
BODY_SHOWN = 64 * 1024  # characters of a message's body its page shows
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
    return format_html('<a href="{}">{}</a>', message_url(message_id), text or message_id)


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
    return BytesView(
        kind,
        text[:BODY_SHOWN],
        len(raw),
        cut=len(text) > BODY_SHOWN or (kind == "text" and len(raw) > BODY_SHOWN),
    )
