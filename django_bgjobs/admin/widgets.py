"""What every page of the admin draws or does the same way: status badges, times to the
millisecond, links, capped counts, JSON and bodies, choice filters, actions applied to each
selected row, and the bases of the pages (``BaseAdmin``, and ``ReadOnlyAdmin`` for the rows the
code writes)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext_lazy as _

from django_bgjobs.models import (
    Job,
    JobStatus,
    RunStatus,
)
from django_bgjobs.redaction import masked_payload
from django_bgjobs.registry import registry

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
    JobStatus.BLOCKED: "#7a5c00",
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
    RunStatus.PARKED: "#0a58ca",  # a durable function's run sleeps or waits: not a failure
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


def link(url: str, text: object) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


def short_id(job_id: Any) -> str:
    """The end of a job's id: the start of a UUIDv7 is its timestamp, the same for jobs made
    together."""
    return "…" + str(job_id)[-12:]


def job_url(job_id: Any) -> str:
    return reverse("admin:django_bgjobs_job_change", args=[job_id])


def jobs_url(**filters: str) -> str:
    """The list of jobs, filtered as its own filters would (``status__exact=dead``)."""
    url = reverse("admin:django_bgjobs_job_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def job_link(job: Job, text: str) -> str:
    return link(job_url(job.pk), text)


def job_badge_link(job: Job) -> str:
    return job_link(job, status_badge(job.status, job.get_status_display()))


def apply_each(
    model_admin: admin.ModelAdmin[M],
    request: HttpRequest,
    objects: Iterable[M],
    change: Callable[[M], str | None],
    *,
    done: str | None = None,
    skipped: str | None = None,
) -> tuple[int, int]:
    """Run an action on each selected object; ``change`` returns what to write in the admin's
    history (LogEntry), or None when it left the object alone. Then tell the user ``done``
    (always) and ``skipped`` (when any was), ``{n}`` in each replaced by its count. Returns
    (done, skipped)."""
    changed = left = 0
    for obj in objects:
        logged = change(obj)
        if logged is None:
            left += 1
        else:
            changed += 1
            model_admin.log_change(request, obj, logged)
    if done is not None:
        model_admin.message_user(request, done.format(n=changed), messages.SUCCESS)
    if skipped is not None and left:
        model_admin.message_user(request, skipped.format(n=left), messages.WARNING)
    return changed, left


def time_column(attr: str, label: StrOrPromise) -> Callable[[Any, Any], str]:
    @admin.display(description=label, ordering=attr)
    def column(admin_: Any, obj: Any) -> str:
        return precise_time(getattr(obj, attr))

    return column


def shown_payload(name: str, args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    """A job's arguments as the admin may show them: ``redact=`` ones masked."""
    return masked_payload(registry.get(name), args, kwargs)


def payload_columns(
    name_attr: str, show: Callable[[Any], str]
) -> tuple[Callable[[Any, Any], str], Callable[[Any, Any], str]]:
    """The "args" and "kwargs" fields of a row that holds a job's call (a job, a schedule),
    ``redact=`` arguments masked; ``name_attr`` names the job."""

    def shown(obj: Any) -> tuple[list[Any], dict[str, Any]]:
        return shown_payload(getattr(obj, name_attr), obj.args, obj.kwargs)

    @admin.display(description=_("args"))
    def arguments(admin_: Any, obj: Any) -> str:
        return show(shown(obj)[0])

    @admin.display(description=_("kwargs"))
    def keyword_arguments(admin_: Any, obj: Any) -> str:
        return show(shown(obj)[1])

    return arguments, keyword_arguments


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


BODY_SHOWN = 64 * 1024  # how much of a body a page shows; the rest is cut


@dataclass(frozen=True)
class BodyView:
    """A body as a page shows it (escaped by the template)."""

    kind: str  # "json" (pretty-printed), "text" (UTF-8, bad bytes replaced) or "none"
    text: str
    size: int  # bytes
    cut: bool  # ``text`` is the first BODY_SHOWN characters (bytes, for text) of the body


def body_view(raw: bytes, pretty_max: int | None = None) -> BodyView:
    """A body as JSON when it parses (and is no larger than ``pretty_max`` bytes), as text
    otherwise."""
    if not raw:
        return BodyView("none", "", 0, cut=False)
    if pretty_max is None or len(raw) <= pretty_max:
        try:
            pretty = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
            pass
        else:
            return BodyView("json", pretty[:BODY_SHOWN], len(raw), cut=len(pretty) > BODY_SHOWN)
    # A cut may split a UTF-8 sequence: the last character is then a replacement one.
    return BodyView(
        "text",
        raw[:BODY_SHOWN].decode("utf-8", errors="replace"),
        len(raw),
        cut=len(raw) > BODY_SHOWN,
    )


class ChoicesFilter(admin.SimpleListFilter):
    """A filter on the field ``parameter_name`` by equality, among the values ``known()`` lists
    from what the code knows (settings, the registry, a small table): not a SELECT DISTINCT over
    every row. With ``keep_unknown``, a value no longer known (from a link) is offered too."""

    keep_unknown = False

    def known(self, request: HttpRequest) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = self.known(request)
        if self.keep_unknown and self.value() and self.value() not in values:
            values.append(str(self.value()))
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class DeferringChangeList(ChangeList):
    """A list that does not read the columns its ModelAdmin names in ``list_deferred``."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Any]:
        rows = super().get_queryset(request, exclude_parameters)
        deferred: tuple[str, ...] = getattr(self.model_admin, "list_deferred", ())
        return rows.defer(*deferred) if deferred else rows


class BaseAdmin(_Base[M]):
    """The ModelAdmin every page here is built on: subscriptable at run time (``BaseAdmin[Job]``,
    as django-stubs type it), a list that does not read the columns named in ``list_deferred``
    (payloads, bodies: large), and ``page_context()``, what an object's page adds to Django's
    context."""

    list_deferred: tuple[str, ...] = ()
    changelist_class: type[ChangeList] = DeferringChangeList

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return self.changelist_class

    def page_context(self, request: HttpRequest, obj: M) -> dict[str, Any]:
        return {}

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: M | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self.page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)


class ReadOnlyAdmin(BaseAdmin[M]):
    """A page that shows rows written by the code, never edited by hand: no add or change (nor
    delete, unless ``deletable``); every field of ``fieldsets`` read-only. Actions that change a
    row go through their own permission and are written to the admin's history (LogEntry)."""

    deletable = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _, options in self.fieldsets or () for f in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.deletable and super().has_delete_permission(request, obj)
