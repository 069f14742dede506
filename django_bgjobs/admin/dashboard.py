"""The dashboard: the figures of figures/dashboard.py (queues, job names, recent failures,
workers, the attempts of the last hour and day) as the page shows them, each linked to the jobs
list filtered to what it counts. It refreshes itself every REFRESH_SECONDS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin import charts
from django_bgjobs.admin.job_actions import JobActionsAdmin
from django_bgjobs.admin.widgets import job_url, jobs_url, precise_time, short_id, time_ago
from django_bgjobs.figures import dashboard as figures
from django_bgjobs.figures import rows
from django_bgjobs.models import JobStatus

REFRESH_SECONDS = 10


def dashboard_view(model_admin: JobActionsAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    data = figures.build()
    hour, day = data.last_hour, data.last_day
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Background jobs dashboard"),
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "data": data,
        "hour": hour,
        "day": day,
        "minute_chart": _attempts_chart(
            data.minutes, "Attempts ended per minute, last hour", timedelta(minutes=1), 10
        ),
        "hour_chart": _attempts_chart(
            data.hours, "Attempts ended per hour, last 24 hours", timedelta(hours=1), 3
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
        "dead_url": jobs_url(status__exact=JobStatus.DEAD),
        "running_url": jobs_url(status__exact=JobStatus.RUNNING),
        "queued_url": jobs_url(status__exact=JobStatus.QUEUED),
        "changelist_url": jobs_url(),
        "bulk_url": reverse("admin:django_bgjobs_job_bulk"),
        "workers_window": charts.duration(figures.WORKERS_WINDOW.total_seconds()),
        "refresh_seconds": REFRESH_SECONDS,
        "can_bulk": model_admin.has_retry_permission(request)
        or model_admin.has_cancel_permission(request),
    }
    return TemplateResponse(request, "django_bgjobs/admin/dashboard.html", context)


def _attempts_chart(
    buckets: Sequence[rows.Bucket], label: str, span: timedelta, tick_every: int
) -> SafeString:
    """The attempts ended per bucket of ``span``, a time of day under every ``tick_every``th."""
    return charts.bar_chart(buckets, label, span, tick_every=tick_every, tick_format="%H:%M")


def _queue_row(q: rows.QueueRow) -> dict[str, Any]:
    return {
        "name": q.name,
        "queued": q.queued,
        "running": q.running,
        "waiting": q.waiting,
        "blocked": q.blocked,
        "blocked_url": jobs_url(queue=q.name, status__exact=JobStatus.BLOCKED),
        "known": q.known,
        "oldest": charts.duration(q.oldest_age),
        "oldest_seconds": "" if q.oldest_age is None else f"{q.oldest_age:.3f}",
        "url": jobs_url(queue=q.name, status__exact=JobStatus.QUEUED),
    }


def _name_row(n: rows.NameRow) -> dict[str, Any]:
    o = n.outcomes
    return {
        "name": n.name,
        "ended": o.ended,
        "succeeded": o.succeeded,
        "failed": o.failed,
        "failure_rate": charts.rate(o.failure_rate),
        "run": [charts.duration(v / 1000) for v in n.run_ms] if n.run_ms else None,
        "wait": [charts.duration(v) for v in n.wait_s] if n.wait_s else None,
        "dead": n.dead,
        "url": jobs_url(name=n.name),
        "dead_url": jobs_url(name=n.name, status__exact=JobStatus.DEAD),
    }


def _failure_row(f: rows.Failure) -> dict[str, Any]:
    return {
        "name": f.job_name,
        "attempt": f.attempt,
        "status": f.status,
        "when": precise_time(f.finished_at),
        "error": f.error,
        "url": job_url(f.job_id),
        "job": short_id(f.job_id),
    }


def _worker_row(w: rows.WorkerRow, now: datetime) -> dict[str, Any]:
    return {
        "worker": w.worker,
        "running": w.running,
        "ended": w.ended,
        "stale": w.stale_leases,
        "seen": time_ago(w.last_seen, now),
    }
