"""The job admin's own pages, mounted by ``JobAdmin.get_urls()`` (jobs.py) behind the admin
site's login and staff check: the dashboard, the bulk actions by filter, the job page's
buttons (retry now, cancel, replay) and its timeline of attempts.

Every page needs the permission to view jobs; every change is a POST (CSRF-checked by the admin
site), needs its own permission (``retry_job``, ``cancel_job``, ``replay_job``) and is written
to the admin's history (LogEntry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_bgjobs import states
from django_bgjobs.admin import charts
from django_bgjobs.admin.widgets import (
    RUN_STATUS_COLOURS,
    STATUS_COLOURS,
    apply_each,
    job_link,
    precise_time,
    status_badge,
    time_ago,
)
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.decorators import JobFunction
from django_bgjobs.exceptions import BgJobsError, JobConfigurationError
from django_bgjobs.figures import dashboard
from django_bgjobs.models import FINISHED, WAITING, Job, JobRun, JobStatus
from django_bgjobs.redaction import masked_payload
from django_bgjobs.registry import registry

if TYPE_CHECKING:
    from django_bgjobs.admin.jobs import JobAdmin

REFRESH_SECONDS = 10  # the dashboard
LIVE_JOB_SECONDS = 3  # the page of a job that has not finished
BULK_BATCH = 500  # jobs changed per transaction by a bulk action
RETRIED = "Retried: queued again with a fresh budget."  # as the list's retry action logs it
CANCELLED = "Cancelled."


def changelist_url(**filters: str) -> str:
    url = reverse("admin:django_bgjobs_job_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def job_url(job_id: Any) -> str:
    return reverse("admin:django_bgjobs_job_change", args=[job_id])


def short(job_id: Any) -> str:
    return "…" + str(job_id)[-12:]


# --- the dashboard -------------------------------------------------------------------------------


def dashboard_view(model_admin: JobAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    data = dashboard.build()
    hour, day = data.last_hour, data.last_day
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Background jobs dashboard"),
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "data": data,
        "hour": hour,
        "day": day,
        "minute_chart": charts.bar_chart(
            data.minutes,
            "Attempts ended per minute, last hour",
            timedelta(minutes=1),
            tick_every=10,
            tick_format="%H:%M",
        ),
        "hour_chart": charts.bar_chart(
            data.hours,
            "Attempts ended per hour, last 24 hours",
            timedelta(hours=1),
            tick_every=3,
            tick_format="%H:%M",
        ),
        "queues": [_queue_row(q) for q in data.queues],
        "names": [_name_row(n) for n in data.names],
        "failures": [_failure_row(f) for f in data.failures],
        "workers": [_worker_row(w, data.now) for w in data.workers],
        "rates": {
            "hour_success": charts.rate(hour.success_rate),
            "hour_failure": charts.rate(hour.failure_rate),
            "day_success": charts.rate(day.success_rate),
            "day_failure": charts.rate(day.failure_rate),
        },
        "oldest_age": charts.duration(data.oldest_age),
        "dead_url": changelist_url(status__exact=JobStatus.DEAD),
        "running_url": changelist_url(status__exact=JobStatus.RUNNING),
        "queued_url": changelist_url(status__exact=JobStatus.QUEUED),
        "changelist_url": changelist_url(),
        "bulk_url": reverse("admin:django_bgjobs_job_bulk"),
        "workers_window": charts.duration(dashboard.WORKERS_WINDOW.total_seconds()),
        "refresh_seconds": REFRESH_SECONDS,
        "can_bulk": model_admin.has_retry_permission(request)
        or model_admin.has_cancel_permission(request),
    }
    return TemplateResponse(request, "django_bgjobs/admin/dashboard.html", context)


def _queue_row(q: dashboard.QueueRow) -> dict[str, Any]:
    return {
        "name": q.name,
        "queued": q.queued,
        "running": q.running,
        "waiting": q.waiting,
        "known": q.known,
        "oldest": charts.duration(q.oldest_age),
        "oldest_seconds": "" if q.oldest_age is None else f"{q.oldest_age:.3f}",
        "url": changelist_url(queue=q.name, status__exact=JobStatus.QUEUED),
    }


def _ms(value: float) -> str:
    return charts.duration(value / 1000)


def _name_row(n: dashboard.NameRow) -> dict[str, Any]:
    o = n.outcomes
    return {
        "name": n.name,
        "ended": o.ended,
        "succeeded": o.succeeded,
        "failed": o.failed,
        "failure_rate": charts.rate(o.failure_rate),
        "run": [_ms(v) for v in n.run_ms] if n.run_ms else None,
        "wait": [charts.duration(v) for v in n.wait_s] if n.wait_s else None,
        "dead": n.dead,
        "url": changelist_url(name=n.name),
        "dead_url": changelist_url(name=n.name, status__exact=JobStatus.DEAD),
    }


def _failure_row(f: dashboard.Failure) -> dict[str, Any]:
    return {
        "name": f.job_name,
        "attempt": f.attempt,
        "status": f.status,
        "when": precise_time(f.finished_at),
        "error": f.error,
        "url": job_url(f.job_id),
        "job": short(f.job_id),
    }


def _worker_row(w: dashboard.WorkerRow, now: datetime) -> dict[str, Any]:
    return {
        "worker": w.worker,
        "running": w.running,
        "ended": w.ended,
        "stale": w.stale_leases,
        "seen": time_ago(w.last_seen, now),
    }


# --- the job page: buttons -----------------------------------------------------------------------


@dataclass(frozen=True)
class Button:
    action: str  # retry, cancel, replay
    label: str
    hint: str
    style: str  # primary, danger, default
    job_id: Any = None

    @property
    def url(self) -> str:
        return reverse(f"admin:django_bgjobs_job_{self.action}", args=[self.job_id])


def buttons(model_admin: JobAdmin, request: HttpRequest, job: Job) -> list[Button]:
    """The buttons the job page shows: those that apply to the job's state and that the user
    is allowed to press."""
    shown = []
    if job.status in (JobStatus.DEAD, JobStatus.CANCELLED) and model_admin.has_retry_permission(
        request
    ):
        shown.append(
            Button(
                "retry",
                "Retry now",
                "Queue it again now with a fresh budget of attempts; its attempts so far are kept.",
                "primary",
                job.pk,
            )
        )
    if job.status not in FINISHED and model_admin.has_cancel_permission(request):
        hint = (
            "Ask it to stop: it stops at its next progress report or heartbeat."
            if job.status == JobStatus.RUNNING
            else "Cancel it: it will not run."
        )
        if not (job.status == JobStatus.RUNNING and job.cancel_requested):
            shown.append(Button("cancel", "Cancel", hint, "danger", job.pk))
    if registry.get(job.name) is not None and model_admin.has_replay_permission(request):
        shown.append(
            Button(
                "replay",
                "Replay",
                "Enqueue a new job with the same name, "
                "arguments, queue and priority; this one is left as it is.",
                "default",
                job.pk,
            )
        )
    return shown


def job_action_view(
    model_admin: JobAdmin, request: HttpRequest, object_id: str, action: str
) -> HttpResponse:
    """POST .../job/<id>/<action>/ from the job page's buttons."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    job = model_admin.get_object(request, unquote(object_id))
    if job is None:
        raise Http404("No such job.")
    allowed = {
        "retry": model_admin.has_retry_permission,
        "cancel": model_admin.has_cancel_permission,
        "replay": model_admin.has_replay_permission,
    }[action]
    if not allowed(request):
        raise PermissionDenied
    back = HttpResponseRedirect(job_url(job.pk))
    if action == "retry":
        done, _skipped = apply_each(
            model_admin, request, [job], lambda j: RETRIED if states.retry(j) else None
        )
        if done:
            model_admin.message_user(
                request, "Job queued again with a fresh budget of attempts.", messages.SUCCESS
            )
        else:
            model_admin.message_user(
                request,
                f"Not retried: the job is {job.status}; only dead "
                "or cancelled jobs can be retried.",
                messages.WARNING,
            )
        return back
    if action == "cancel":
        was_running = job.status == JobStatus.RUNNING
        done, _skipped = apply_each(
            model_admin, request, [job], lambda j: CANCELLED if states.cancel(j) else None
        )
        if not done:
            model_admin.message_user(
                request, "Not cancelled: the job had already finished.", messages.WARNING
            )
        elif was_running:
            model_admin.message_user(
                request,
                "Cancel requested: the running job stops at its next progress report or heartbeat.",
                messages.SUCCESS,
            )
        else:
            model_admin.message_user(request, "Job cancelled.", messages.SUCCESS)
        return back
    replayed: list[Job] = []

    def replay(original: Job) -> str | None:
        try:
            copy = replay_job(original)
        except (BgJobsError, ValueError) as problem:
            model_admin.message_user(request, f"Not replayed: {problem}", messages.ERROR)
            return None
        replayed.append(copy)
        return f"Replayed: enqueued job {copy.pk} with the same arguments."

    apply_each(model_admin, request, [job], replay)
    if not replayed:
        return back
    copy = replayed[0]
    model_admin.log_addition(request, copy, f"Replay of job {job.pk}.")
    model_admin.message_user(
        request,
        format_html(
            "Replayed: this is a new job with the arguments of {}.",
            job_link(job, f"job {short(job.pk)}"),
        ),
        messages.SUCCESS,
    )
    return HttpResponseRedirect(job_url(copy.pk))


def replay_job(job: Job) -> Job:
    """A new job with the name, arguments, queue and priority of ``job``, through its
    JobFunction (so it is validated and published like any enqueue). No idempotency key: a
    replay is meant to run again. Raises if the code no longer defines the job."""
    spec = registry.get(job.name)
    if spec is None:
        raise JobConfigurationError(f"no code defines {job.name!r} any more")
    function: JobFunction[..., Any] = JobFunction(spec).using(priority=job.priority)
    try:
        function = function.using(queue=job.queue)
    except JobConfigurationError:  # the queue was removed from BGJOBS["QUEUES"]
        pass
    return function.enqueue(*job.args, **job.kwargs)


# --- the job page: timeline ----------------------------------------------------------------------


@dataclass
class Event:
    """One line of a job's timeline. ``status`` picks the badge and the dot's colour."""

    kind: str  # enqueued, attempt, running, waiting, queued, finished
    title: str
    status: str = ""
    status_label: str = ""
    at: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    traceback: str = ""
    anchor: str = ""
    progress: SafeString | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def colour(self) -> str:
        return {**RUN_STATUS_COLOURS, **STATUS_COLOURS}.get(self.status, "#5c636a")

    @property
    def badge(self) -> SafeString | str:
        if not self.status:
            return ""
        return SafeString(status_badge(self.status, self.status_label, {self.status: self.colour}))


def timeline(job: Job, runs: Sequence[JobRun], now: datetime | None = None) -> list[Event]:
    """The job's life, oldest first: enqueued, each attempt that ended (from its JobRun), the
    attempt running now (from the job row), what it waits for, how it ended."""
    now = now or timezone.now()
    events = [
        Event(
            "enqueued",
            "Enqueued",
            at=precise_time(job.created_at),
            facts=[("queue", job.queue), ("priority", str(job.priority))],
        )
    ]
    for run in runs:
        facts = [
            ("started", precise_time(run.started_at)),
            ("finished", precise_time(run.finished_at)),
            ("took", _ms(run.duration_ms) if run.duration_ms is not None else "-"),
            ("worker", run.worker or "-"),
        ]
        if run.attempt == job.attempts and job.published_at and job.published_at <= run.started_at:
            facts.insert(0, ("queued", precise_time(job.published_at)))
            facts.insert(
                1,
                ("waited", charts.duration((run.started_at - job.published_at).total_seconds())),
            )
        events.append(
            Event(
                "attempt",
                f"Attempt {run.attempt}",
                run.status,
                run.get_status_display(),
                precise_time(run.started_at),
                facts,
                run.error,
                run.traceback,
                anchor=f"attempt-{run.attempt}",
            )
        )
    if job.status == JobStatus.RUNNING:
        started = job.started_at
        facts = [
            ("started", precise_time(started)),
            (
                "running for",
                charts.duration((now - started).total_seconds()) if started else "-",
            ),
            ("worker", job.worker or "-"),
            ("lease until", precise_time(job.lease_expires_at)),
        ]
        if job.published_at and started and job.published_at <= started:
            facts.insert(0, ("queued", precise_time(job.published_at)))
        warnings = []
        if job.lease_expires_at and job.lease_expires_at < now:
            warnings.append(
                "Lease expired: the worker stopped heartbeating; the dispatcher "
                "will record this attempt as lost."
            )
        if job.cancel_requested:
            warnings.append("Cancel requested: it stops at its next progress report or heartbeat.")
        events.append(
            Event(
                "running",
                f"Attempt {job.attempts}",
                JobStatus.RUNNING,
                "Running",
                precise_time(started),
                facts,
                progress=progress_bar(job),
                warnings=warnings,
            )
        )
    elif job.status in WAITING:
        due = job.run_after
        when = "-"
        if due is not None:
            seconds = (due - now).total_seconds()
            when = f"in {charts.duration(seconds)}" if seconds > 0 else "now"
        title = (
            "Retry" if job.status == JobStatus.RETRYING else "Scheduled"
        ) + f": attempt {job.attempts + 1}"
        events.append(
            Event(
                "waiting",
                title,
                job.status,
                job.get_status_display(),
                precise_time(due),
                [("due", f"{precise_time(due)} ({when})")],
            )
        )
    elif job.status == JobStatus.QUEUED:
        since = job.published_at or job.created_at
        events.append(
            Event(
                "queued",
                f"Queued: attempt {job.attempts + 1}",
                job.status,
                job.get_status_display(),
                precise_time(since),
                [
                    ("waiting for a worker since", precise_time(since)),
                    ("for", charts.duration((now - since).total_seconds())),
                ],
            )
        )
    if job.status in FINISHED:
        facts = []
        if job.finished_at:
            facts.append(
                ("after", charts.duration((job.finished_at - job.created_at).total_seconds()))
            )
        # The error that killed it, unless its last attempt just above says the same.
        error = job.error if job.status == JobStatus.DEAD else ""
        if error and runs and runs[-1].error == error:
            error = ""
        events.append(
            Event(
                "finished",
                job.get_status_display(),
                job.status,
                job.get_status_display(),
                precise_time(job.finished_at),
                facts,
                error,
            )
        )
    return events


def progress_bar(job: Job) -> SafeString | None:
    """A bar for a job that reports progress with a total; the count alone without one."""
    if job.progress_done is None:
        return None
    if job.progress_total:
        percent = max(0, min(100, int(job.progress_done * 100 / job.progress_total)))
        return format_html(
            '<div class="bgjobs-progress" role="progressbar" aria-valuemin="0" '
            'aria-valuemax="100" aria-valuenow="{}" title="{}%"><div class="bgjobs-progress-fill"'
            ' style="width:{}%"></div></div> <span class="bgjobs-progress-text">{}% · {} of {}'
            "{}</span>",
            percent,
            percent,
            percent,
            percent,
            job.progress_done,
            job.progress_total,
            format_html(" · {}", job.progress_message) if job.progress_message else "",
        )
    return format_html(
        '<span class="bgjobs-progress-text">{} done{}</span>',
        job.progress_done,
        format_html(" · {}", job.progress_message) if job.progress_message else "",
    )


def shown_payload(job: Job) -> tuple[list[Any], dict[str, Any]]:
    """The arguments as the admin may show them: ``redact=`` ones masked."""
    return masked_payload(registry.get(job.name), job.args, job.kwargs)


def job_page_context(model_admin: JobAdmin, request: HttpRequest, job: Job) -> dict[str, Any]:
    runs = list(job.runs.order_by("attempt"))
    return {
        "timeline": timeline(job, runs),
        "buttons": buttons(model_admin, request, job),
        "live": job.status not in FINISHED,
        "refresh_seconds": LIVE_JOB_SECONDS,
        "dashboard_url": reverse("admin:django_bgjobs_job_dashboard"),
    }


# --- bulk actions by filter ----------------------------------------------------------------------


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
        return Job.objects.filter(
            status=JobStatus.DEAD,
            name=self.cleaned_data["name"],
            finished_at__gte=self.cleaned_data["since"],
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
        return Job.objects.filter(status=JobStatus.QUEUED, queue=self.cleaned_data["queue"])

    def describe(self) -> str:
        return f"queued jobs of queue {self.cleaned_data['queue']}"


def _queued_by_queue() -> dict[str, int]:
    """Every configured queue with its queued jobs (the dispatcher's partial index)."""
    found = dict(
        Job.objects.filter(status=JobStatus.QUEUED)
        .order_by()
        .values_list("queue")
        .annotate(n=Count("*"))
    )
    return {q: found.pop(q, 0) for q in bgjobs_settings.QUEUES} | found


def bulk_view(model_admin: JobAdmin, request: HttpRequest) -> HttpResponse:
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
    dead = dashboard.dead_by_name(Job.objects.db)
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
        "changelist_url": changelist_url(),
    }
    return TemplateResponse(request, "django_bgjobs/admin/bulk.html", context)


def _list_url_of(chosen: str, form: RetryDeadForm | CancelQueuedForm) -> str:
    if isinstance(form, RetryDeadForm):
        return changelist_url(status__exact=JobStatus.DEAD, name=form.cleaned_data["name"])
    return changelist_url(status__exact=JobStatus.QUEUED, queue=form.cleaned_data["queue"])


def _run_bulk(
    model_admin: JobAdmin, request: HttpRequest, chosen: str, form: RetryDeadForm | CancelQueuedForm
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
