"""The job actions, wherever they are pressed (the list's actions, the job page's buttons, the
bulk actions): each one's permission (``retry_job``, ``cancel_job``, ``replay_job``) and what
it writes to the admin's history. ``JobActionsAdmin`` is the base of ``JobAdmin`` (jobs.py)
and the ModelAdmin the pages it mounts are given, so that they never import jobs.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.http import HttpRequest

from django_bgjobs.admin.widgets import ReadOnlyAdmin, apply_each
from django_bgjobs.models import Job

RETRIED = "Retried: queued again with a fresh budget."
CANCELLED = "Cancelled."


class JobActionsAdmin(ReadOnlyAdmin[Job]):
    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.cancel_job")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_bgjobs.replay_job")

    def transition_each(
        self,
        request: HttpRequest,
        jobs: Iterable[Job],
        transition: Callable[[Job], bool],
        logged: str,
        *,
        done: str | None = None,
        skipped: str | None = None,
    ) -> tuple[int, int]:
        """A transition (states.retry, states.cancel) on each job, each job it changed logged
        as ``logged``; ``done`` and ``skipped`` as for apply_each. Returns (done, skipped)."""
        return apply_each(
            self,
            request,
            jobs,
            lambda job: logged if transition(job) else None,
            done=done,
            skipped=skipped,
        )
