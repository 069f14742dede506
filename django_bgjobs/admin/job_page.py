"""The job page's buttons (retry now, cancel, replay): those that apply to the job's state and
that the user may press, the POST view behind them, and what the page adds to Django's context
(the buttons, the timeline, the refresh of a job that has not finished).

Each button is a POST (CSRF-checked by the admin site) that needs its own permission and is
written to the admin's history (LogEntry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import reverse
from django.utils.html import format_html

from django_bgjobs import states
from django_bgjobs.admin.job_actions import CANCELLED, RETRIED, JobActionsAdmin
from django_bgjobs.admin.steps import step_rows
from django_bgjobs.admin.timeline import timeline
from django_bgjobs.admin.widgets import apply_each, job_link, job_url, short_id
from django_bgjobs.decorators import JobFunction
from django_bgjobs.exceptions import BgJobsError, JobConfigurationError
from django_bgjobs.functions import runs, specs
from django_bgjobs.models import FINISHED, Job, JobStatus
from django_bgjobs.registry import registry

LIVE_JOB_SECONDS = 3  # the page of a job that has not finished refreshes itself this often


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


def buttons(model_admin: JobActionsAdmin, request: HttpRequest, job: Job) -> list[Button]:
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


def job_page_context(
    model_admin: JobActionsAdmin, request: HttpRequest, job: Job
) -> dict[str, Any]:
    runs = list(job.runs.order_by("attempt"))
    return {
        "timeline": timeline(job, runs),
        "steps": step_rows(model_admin, request, job),
        "buttons": buttons(model_admin, request, job),
        "live": job.status not in FINISHED,
        "refresh_seconds": LIVE_JOB_SECONDS,
        "dashboard_url": reverse("admin:django_bgjobs_job_dashboard"),
    }


def job_action_view(
    model_admin: JobActionsAdmin, request: HttpRequest, object_id: str, action: str
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
    if action == "retry":
        _retry(model_admin, request, job)
    elif action == "cancel":
        _cancel(model_admin, request, job)
    else:
        copy = _replay(model_admin, request, job)
        if copy is not None:
            return HttpResponseRedirect(job_url(copy.pk))
    return HttpResponseRedirect(job_url(job.pk))


def _retry(model_admin: JobActionsAdmin, request: HttpRequest, job: Job) -> None:
    done, _skipped = model_admin.transition_each(request, [job], states.retry, RETRIED)
    if done:
        model_admin.message_user(
            request, "Job queued again with a fresh budget of attempts.", messages.SUCCESS
        )
    else:
        model_admin.message_user(
            request,
            f"Not retried: the job is {job.status}; only dead or cancelled jobs can be retried.",
            messages.WARNING,
        )


def _cancel(model_admin: JobActionsAdmin, request: HttpRequest, job: Job) -> None:
    was_running = job.status == JobStatus.RUNNING
    done, _skipped = model_admin.transition_each(request, [job], states.cancel, CANCELLED)
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


def _replay(model_admin: JobActionsAdmin, request: HttpRequest, job: Job) -> Job | None:
    """The new job, logged on both jobs' histories; None (and an error message) when the code
    no longer defines the job or refuses its arguments."""
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
        return None
    copy = replayed[0]
    model_admin.log_addition(request, copy, f"Replay of job {job.pk}.")
    model_admin.message_user(
        request,
        format_html(
            "Replayed: this is a new job with the arguments of {}.",
            job_link(job, f"job {short_id(job.pk)}"),
        ),
        messages.SUCCESS,
    )
    return copy


def replay_job(job: Job) -> Job:
    """A new job with the name, arguments, queue and priority of ``job``, through its
    JobFunction (so it is validated and published like any enqueue). No idempotency key: a
    replay is meant to run again. Raises if the code no longer defines the job. A durable
    function's run is replayed as a new run from its first step, with its event and waits."""
    if specs.is_function(job.name):
        return runs.replay_from(job, 0)
    spec = registry.get(job.name)
    if spec is None:
        raise JobConfigurationError(f"no code defines {job.name!r} any more")
    function: JobFunction[..., Any] = JobFunction(spec).using(priority=job.priority)
    try:
        function = function.using(queue=job.queue)
    except JobConfigurationError:  # the queue was removed from BGJOBS["QUEUES"]
        pass
    return function.enqueue(*job.args, **job.kwargs)
