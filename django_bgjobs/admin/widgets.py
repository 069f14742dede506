"""What every page of the admin draws the same way: status badges, times to the millisecond,
links to a job, capped counts, JSON, and the read-only base of the pages that show rows the
code writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

from django_bgjobs.models import (
    Job,
    JobStatus,
    RunStatus,
)

if TYPE_CHECKING:  # django-stubs' generics; not subscriptable at run time
    from django.utils.functional import _StrOrPromise as StrOrPromise


M = TypeVar("M", bound=models.Model)

if TYPE_CHECKING:  # django-stubs make ModelAdmin generic; Django's own class is not
    _Base = admin.ModelAdmin
else:

    class _Base(admin.ModelAdmin, Generic[M]):
        pass


# Badge backgrounds, dark enough for white text (contrast >= 4.5:1).
STATUS_COLOURS: dict[str, str] = {
    JobStatus.SCHEDULED: "#5c636a",
    JobStatus.QUEUED: "#0b5ed7",
    JobStatus.RUNNING: "#6f42c1",
    JobStatus.RETRYING: "#a04a00",
    JobStatus.SUCCEEDED: "#146c43",
    JobStatus.DEAD: "#b02a37",
    JobStatus.CANCELLED: "#495057",
}
RUN_STATUS_COLOURS: dict[str, str] = {
    RunStatus.RUNNING: "#6f42c1",
    RunStatus.SUCCEEDED: "#146c43",
    RunStatus.FAILED: "#b02a37",
    RunStatus.LOST: "#a04a00",
    RunStatus.SUPERSEDED: "#5c636a",
    RunStatus.CANCELLED: "#495057",
    RunStatus.RELEASED: "#087990",  # given back to the queue at shutdown: not a failure
}


def status_badge(status: str, label: str, colours: dict[str, str] = STATUS_COLOURS) -> str:
    return format_html(
        '<span class="bgjobs-status bgjobs-status-{}" style="color:#fff;background:{};'
        'padding:1px 6px;border-radius:8px;white-space:nowrap">{}</span>',
        status,
        colours.get(status, "#5c636a"),
        label,
    )


def precise_time(value: datetime | None) -> str:
    """Times to the millisecond: retries and backoff are read in seconds."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def slot_time(value: datetime) -> str:
    """Slots fall on whole seconds; the zone is named, as a cron may run in another one."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def job_link(job: Job, text: str) -> str:
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:django_bgjobs_job_change", args=[job.pk]), text
    )


def job_badge_link(job: Job) -> str:
    return job_link(job, status_badge(job.status, job.get_status_display()))


def apply_each(
    model_admin: admin.ModelAdmin[M],
    request: HttpRequest,
    objects: Iterable[M],
    change: Callable[[M], str | None],
) -> tuple[int, int]:
    """Run an action on each selected object; ``change`` returns what to write in the admin's
    history (LogEntry), or None when it left the object alone. Returns (done, skipped)."""
    done = skipped = 0
    for obj in objects:
        logged = change(obj)
        if logged is None:
            skipped += 1
        else:
            done += 1
            model_admin.log_change(request, obj, logged)
    return done, skipped


def time_column(attr: str, label: StrOrPromise) -> Callable[[Any, Any], str]:
    @admin.display(description=label, ordering=attr)
    def column(admin_: Any, obj: Any) -> str:
        return precise_time(getattr(obj, attr))

    return column


COUNT_CAP = 10_000


class CappedPaginator(Paginator):  # type: ignore[type-arg]
    """Counts the matching jobs up to COUNT_CAP + 1 only: an exact COUNT(*) of a filter that
    matches most of a million rows reads them all, on every page load. Beyond the cap the list
    says "more than 10,000" and pages up to there (filters narrow it down)."""

    @cached_property
    def count(self) -> int:
        rows: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        return rows.order_by().values("pk")[: COUNT_CAP + 1].count()


def time_until(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    if seconds < 60:  # timeuntil() says "0 minutes" below a minute
        return "now" if seconds <= 0 else f"in {seconds} s"
    return f"in {timeuntil(moment, now, depth=1)}"


def time_ago(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    return f"{max(seconds, 0)} s ago" if seconds < 60 else f"{timesince(moment, now, depth=1)} ago"


def pretty_json(value: object) -> SafeString:
    """JSON on one line when it fits, indented otherwise (escaped: it is shown, not run)."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 100:
        text = json.dumps(value, indent=2, ensure_ascii=False)
    return format_html('<pre class="bgjobs-json">{}</pre>', text)


class ReadOnlyAdmin(_Base[M]):
    """A page that shows rows written by the code, never edited by hand: no add, change or
    delete; every field of ``fieldsets`` read-only. Actions that change a row go through their
    own permission and are written to the admin's history (LogEntry)."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets or () for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
