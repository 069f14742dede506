"""A job's life as its page draws it: the timeline (enqueued, each attempt from its JobRun, the
attempt running now, what it waits for, how it ended) and the progress bar of a job that reports
its progress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_bgjobs.admin import charts
from django_bgjobs.admin.widgets import (
    RUN_STATUS_COLOURS,
    STATUS_COLOURS,
    precise_time,
    status_badge,
)
from django_bgjobs.models import FINISHED, WAITING, Job, JobRun, JobStatus


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
            ("took", "-" if run.duration_ms is None else charts.duration(run.duration_ms / 1000)),
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
