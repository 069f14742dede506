"""A durable function's run on its job page: its steps, in order, with what each did (status,
attempts, how long, its result or error, what it waits for and what it matched, the run it
invoked), and the POST view that replays the run from a chosen step."""

from __future__ import annotations

import json
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
from django.utils.safestring import SafeString

from django_bgjobs.admin import charts
from django_bgjobs.admin.job_actions import JobActionsAdmin
from django_bgjobs.admin.widgets import job_url, precise_time, short_id, status_badge
from django_bgjobs.functions import runs, specs
from django_bgjobs.models import Job, Step, StepStatus

STEP_COLOURS: dict[str, str] = {
    StepStatus.SUCCEEDED: "#146c43",
    StepStatus.FAILED: "#b02a37",
    StepStatus.SLEEPING: "#0a58ca",
    StepStatus.WAITING: "#0a58ca",
}
RESULT_SHOWN = 300  # characters of a step's result on the page


@dataclass(frozen=True)
class StepRow:
    step: Step
    badge: str
    took: str
    detail: SafeString | str
    replay_url: str  # empty: no replay from this step


def step_rows(model_admin: JobActionsAdmin, request: HttpRequest, job: Job) -> list[StepRow]:
    """The steps of a function's run (none for a plain job)."""
    if not specs.is_function(job.name):
        return []
    steps = list(Step.objects.filter(job=job).select_related("matched_event"))
    may_replay = model_admin.has_replay_permission(request)
    rows, clean = [], True  # a replay keeps the steps before it: they must have succeeded
    for step in steps:
        rows.append(
            StepRow(
                step=step,
                badge=status_badge(step.status, step.get_status_display(), STEP_COLOURS),
                took="-" if step.duration_ms is None else charts.duration(step.duration_ms / 1000),
                detail=_detail(step),
                replay_url=reverse(
                    "admin:django_bgjobs_job_replay_from", args=[job.pk, step.position]
                )
                if may_replay and clean
                else "",
            )
        )
        clean = clean and step.status == StepStatus.SUCCEEDED
    return rows


def _replay_url(job: Job, step: Step) -> str:
    return reverse("admin:django_bgjobs_job_replay_from", args=[job.pk, step.position])


def _detail(step: Step) -> SafeString | str:
    if step.error:
        return format_html('<span class="bgjobs-error">{}</span>', step.error)
    if step.child_id is not None:
        return format_html(
            'run <a href="{}">{}</a>: {}',
            job_url(step.child_id),
            short_id(step.child_id),
            "-" if step.result is None else _short(step.result),
        )
    if step.matched_event is not None:
        event = step.matched_event
        return format_html(
            'matched <a href="{}">{}</a> {}',
            reverse("admin:django_bgjobs_eventrecord_change", args=[event.pk]),
            event.name,
            _short(event.data),
        )
    if step.status in (StepStatus.WAITING, StepStatus.SLEEPING) and step.wake_at:
        until = (
            "until" if step.status == StepStatus.SLEEPING else "for " + step.waits_for + ", until"
        )
        return format_html("{} {}", until, precise_time(step.wake_at))
    if step.waits_for and step.result is not None:  # its event was pruned; the step kept it
        return format_html("matched {} {}", step.result.get("name", ""), _short(step.result))
    if step.waits_for:
        return format_html("{}: timed out", step.waits_for)
    return "" if step.result is None else _short(step.result)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= RESULT_SHOWN else text[: RESULT_SHOWN - 1] + "…"


def replay_from_view(
    model_admin: JobActionsAdmin, request: HttpRequest, object_id: str, position: int
) -> HttpResponse:
    """POST .../job/<id>/replay-from/<position>/: a new run that starts at that step."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_replay_permission(request):
        raise PermissionDenied
    run = model_admin.get_object(request, unquote(object_id))
    if run is None:
        raise Http404("No such job.")
    try:
        copy = runs.replay_from(run, position)
    except (LookupError, ValueError) as exc:
        model_admin.message_user(request, f"Not replayed: {exc}.", messages.ERROR)
        return HttpResponseRedirect(job_url(run.pk))
    model_admin.log_change(request, run, f"Replayed from step {position + 1} as run {copy.pk}.")
    model_admin.log_addition(request, copy, f"Replay of run {run.pk} from step {position + 1}.")
    model_admin.message_user(
        request,
        f"A new run started from step {position + 1}; the steps before it were kept.",
        messages.SUCCESS,
    )
    return HttpResponseRedirect(job_url(copy.pk))
