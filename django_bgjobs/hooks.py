"""Signup hooks: when a user is created, enqueue the jobs registered for it.

The jobs are enqueued from post_save, so they share the user's transaction when the signup runs
in one (``transaction.atomic()`` or ATOMIC_REQUESTS): a rolled-back signup enqueues nothing, a
crash right after the commit loses nothing, and the messages go out after the commit. In plain
autocommit Django has already committed the user when post_save fires, so the jobs are written
just after it. Each job gets the new user's primary key as its only argument, and an idempotency
key, so that post_save and allauth's ``user_signed_up`` for one signup enqueue one job, not two.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.decorators import JobFunction
from django_bgjobs.exceptions import JobConfigurationError

_registered: list[JobFunction[Any, Any]] = []


def on_signup(job: JobFunction[Any, Any]) -> JobFunction[Any, Any]:
    """Enqueue ``job(user.pk)`` for every new user. Usable as a decorator above ``@bgjob``."""
    _check_signup_job(job, "on_signup()")
    if job not in _registered:
        _registered.append(job)
    return job


def _check_signup_job(job: Any, where: str) -> None:
    if not isinstance(job, JobFunction):
        raise JobConfigurationError(f"{where}: {job!r} is not a @bgjob function")
    try:
        job.spec.signature.bind(1)
    except TypeError:
        raise JobConfigurationError(
            f"{where}: {job.name} must accept the new user's primary key as its one argument"
        ) from None


def signup_jobs() -> list[JobFunction[Any, Any]]:
    jobs = list(_registered)
    for path in bgjobs_settings.ON_SIGNUP:
        job = bgjobs_settings.resolve("ON_SIGNUP", path)
        _check_signup_job(job, f"BGJOBS['ON_SIGNUP'] entry {path!r}")
        if job not in jobs:
            jobs.append(job)
    return jobs


def enqueue_signup_jobs(user: Any) -> None:
    for job in signup_jobs():
        job.using(idempotency_key=f"signup:{user.pk}").enqueue(user.pk)


def _user_saved(
    sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if created and not raw:  # raw: loaddata, not a signup
        enqueue_signup_jobs(instance)


def _allauth_signed_up(request: Any, user: Any, **kwargs: Any) -> None:
    enqueue_signup_jobs(user)


def connect() -> None:
    from django.apps import apps
    from django.contrib.auth import get_user_model

    if not apps.is_installed("django.contrib.auth"):
        return
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="django_bgjobs.signup")
    try:
        from allauth.account.signals import user_signed_up
    except ImportError:
        return
    user_signed_up.connect(_allauth_signed_up, dispatch_uid="django_bgjobs.signup.allauth")
