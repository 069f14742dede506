"""The bulk actions by filter: retry the dead jobs of a name that died since a time, cancel the
queued jobs of a queue. A GET shows how many jobs match and a button to confirm; the POST
changes the jobs matching then, in batches (BULK_BATCH a transaction), one LogEntry per job.

The page needs the permission to view jobs; each action needs its own (``retry_job``,
``cancel_job``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_bgjobs import states
from django_bgjobs.admin.job_actions import RETRIED, JobActionsAdmin
from django_bgjobs.admin.widgets import jobs_url
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.figures import dashboard as figures
from django_bgjobs.models import Job, JobStatus
from django_bgjobs.registry import registry

BULK_BATCH = 500  # jobs changed per transaction


class RetryDeadForm(forms.Form):
    name = forms.ChoiceField(label=_("Job name"))
    since = forms.DateTimeField(
        label=_("Died at or after"),
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"
        ),
        help_text=_("In the site's time zone."),
    )

    def __init__(self, *args: Any, dead: dict[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = sorted(set(dead) | set(registry.names()))
        field = self.fields["name"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(n, f"{n} ({dead.get(n, 0)} dead)") for n in names]

    def matching(self) -> QuerySet[Job]:
        return Job.objects.dead().filter(
            name=self.cleaned_data["name"], finished_at__gte=self.cleaned_data["since"]
        )

    def describe(self) -> str:
        since = timezone.localtime(self.cleaned_data["since"]).strftime("%Y-%m-%d %H:%M:%S %Z")
        return f"dead jobs of {self.cleaned_data['name']} that died since {since}"


class CancelQueuedForm(forms.Form):
    queue = forms.ChoiceField(label=_("Queue"))

    def __init__(self, *args: Any, queues: dict[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["queue"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(q, f"{q} ({n} queued)") for q, n in queues.items()]

    def matching(self) -> QuerySet[Job]:
        return Job.objects.queued().filter(queue=self.cleaned_data["queue"])

    def describe(self) -> str:
        return f"queued jobs of queue {self.cleaned_data['queue']}"


def _queued_by_queue() -> dict[str, int]:
    """Every configured queue with its queued jobs (the dispatcher's partial index)."""
    found = dict(Job.objects.queued().order_by().values_list("queue").annotate(n=Count("*")))
    return {q: found.pop(q, 0) for q in bgjobs_settings.QUEUES} | found


def bulk_view(model_admin: JobActionsAdmin, request: HttpRequest) -> HttpResponse:
    """GET: the two forms; with ``?bulk=retry|cancel&...``, how many jobs match, and a button
    to confirm. POST: the change, in batches, each job logged."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    can = {
        "retry": model_admin.has_retry_permission(request),
        "cancel": model_admin.has_cancel_permission(request),
    }
    data = request.POST if request.method == "POST" else request.GET
    chosen = data.get("bulk", "")
    if request.method == "POST" and not can.get(chosen, False):
        raise PermissionDenied
    dead = figures.dead_by_name(Job.objects.db)
    since_default = (timezone.localtime() - timedelta(days=1)).replace(microsecond=0)
    retry_form = RetryDeadForm(
        data if chosen == "retry" else None,
        dead=dead,
        initial={"since": since_default},
        prefix="retry",
    )
    cancel_form = CancelQueuedForm(
        data if chosen == "cancel" else None, queues=_queued_by_queue(), prefix="cancel"
    )
    form: RetryDeadForm | CancelQueuedForm | None = (
        retry_form if chosen == "retry" else cancel_form if chosen == "cancel" else None
    )
    preview = None
    if form is not None and form.is_valid():
        if request.method == "POST":
            message = _run_bulk(model_admin, request, chosen, form)
            model_admin.message_user(request, message, messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        preview = {
            "count": form.matching().count(),
            "what": form.describe(),
            "bulk": chosen,
            "form": form,
            "list_url": _list_url_of(chosen, form),
        }
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Bulk actions on jobs"),
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "retry_form": retry_form,
        "cancel_form": cancel_form,
        "can_retry": can["retry"],
        "can_cancel": can["cancel"],
        "preview": preview,
        "dashboard_url": reverse("admin:django_bgjobs_job_dashboard"),
        "changelist_url": jobs_url(),
    }
    return TemplateResponse(request, "django_bgjobs/admin/bulk.html", context)


def _list_url_of(chosen: str, form: RetryDeadForm | CancelQueuedForm) -> str:
    if isinstance(form, RetryDeadForm):
        return jobs_url(status__exact=JobStatus.DEAD, name=form.cleaned_data["name"])
    return jobs_url(status__exact=JobStatus.QUEUED, queue=form.cleaned_data["queue"])


def _run_bulk(
    model_admin: JobActionsAdmin,
    request: HttpRequest,
    chosen: str,
    form: RetryDeadForm | CancelQueuedForm,
) -> str:
    """Apply the bulk action to the jobs matching now (not when the count was shown), in
    batches of BULK_BATCH, each its own transaction; one LogEntry per job changed, written
    with its batch in one INSERT."""
    ids = list(form.matching().order_by().values_list("pk", flat=True))
    what = form.describe()
    change: Callable[[Sequence[Any]], list[Job]]
    if chosen == "retry":
        change, logged, verb = states.retry_many, f"{RETRIED[:-1]} (bulk: {what}).", "queued again"
    else:
        change, logged, verb = states.cancel_many, f"Cancelled (bulk: {what}).", "cancelled"
    done = 0
    for batch in _batches(ids, BULK_BATCH):
        changed = change(batch)
        if changed:
            assert request.user.pk is not None  # admin_view: a logged-in staff user
            LogEntry.objects.log_actions(
                user_id=request.user.pk, queryset=changed, action_flag=CHANGE, change_message=logged
            )
        done += len(changed)
    skipped = len(ids) - done
    return f"{done} job(s) {verb}: {what}." + (
        f" {skipped} changed meanwhile and were left alone." if skipped else ""
    )


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
