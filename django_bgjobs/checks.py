"""System checks (``manage.py check``): unsafe Celery settings, missing broker, orphaned jobs."""

from __future__ import annotations

import os
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from django_bgjobs.celery import filesystem_broker
from django_bgjobs.conf import bgjobs_settings, django_setting


def _celery_conf() -> Any:
    from django_bgjobs.celery.app import get_celery_app

    return get_celery_app().conf


def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    try:
        queues = bgjobs_settings.QUEUES
        default = bgjobs_settings.DEFAULT_QUEUE
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="django_bgjobs.E001")]
    if isinstance(queues, str) or not queues or not all(isinstance(q, str) for q in queues):
        return [
            checks.Error(
                f"BGJOBS['QUEUES'] must be a non-empty list of queue names, not {queues!r}.",
                hint='For example BGJOBS = {"QUEUES": ["default", "emails"]}.',
                id="django_bgjobs.E001",
            )
        ]
    if default not in queues:
        errors.append(
            checks.Error(
                f"BGJOBS['DEFAULT_QUEUE'] is {default!r}, which is not in BGJOBS['QUEUES'].",
                hint="Add it to QUEUES, or name one of them as DEFAULT_QUEUE.",
                id="django_bgjobs.E001",
            )
        )
    if not django_setting("USE_TZ", True):
        errors.append(
            checks.Error(
                "USE_TZ is False: job times (run_after, leases) are compared across processes and "
                "machines, and need time zones.",
                hint="Set USE_TZ = True (Django's default).",
                id="django_bgjobs.E005",
            )
        )
    import sqlite3

    from django.db import connections

    if sqlite3.sqlite_version_info < (3, 35) and any(
        connections[alias].vendor == "sqlite" for alias in connections
    ):
        errors.append(
            checks.Error(
                f"SQLite {sqlite3.sqlite_version} is too old for django-bgjobs, which needs "
                "UPDATE ... RETURNING (SQLite 3.35, 2021).",
                hint="Use a Python built with a newer SQLite, or PostgreSQL.",
                id="django_bgjobs.E006",
            )
        )
    from django_bgjobs.hooks import signup_jobs

    try:
        signup_jobs()
    except (ImportError, ImproperlyConfigured) as exc:
        errors.append(
            checks.Error(
                f"BGJOBS['ON_SIGNUP'] is invalid: {exc}",
                hint="List dotted paths of @bgjob functions that take the user's pk.",
                id="django_bgjobs.E002",
            )
        )
    return errors


def check_celery(**kwargs: Any) -> list[checks.CheckMessage]:
    conf = _celery_conf()
    messages: list[checks.CheckMessage] = []
    accepted = set(conf.accept_content or [])
    unsafe = {"pickle", "application/x-python-serialize", "yaml", "application/x-yaml"}
    if accepted & unsafe or conf.task_serializer in unsafe:
        messages.append(
            checks.Error(
                "Celery accepts pickle or yaml messages: anyone who can write to the broker can "
                "run code on your workers.",
                hint="Set CELERY_ACCEPT_CONTENT = ['json'] and CELERY_TASK_SERIALIZER = 'json'.",
                id="django_bgjobs.E003",
            )
        )
    if not django_setting("CELERY_BROKER_URL") and not conf.broker_url:
        messages.append(
            checks.Warning(
                "No Celery broker is configured; Celery would try amqp://localhost.",
                hint="Set CELERY_BROKER_URL, e.g. 'redis://localhost:6379/0', or "
                "'filesystem://' with CELERY_BROKER_TRANSPORT_OPTIONS for a server-less broker.",
                id="django_bgjobs.W001",
            )
        )
    if str(conf.broker_url or "").startswith("filesystem"):
        options = conf.broker_transport_options or {}
        for key in ("data_folder_in", "data_folder_out", "control_folder"):
            folder = options.get(key)
            if folder is None or not os.path.isdir(folder):
                messages.append(
                    checks.Error(
                        f"The filesystem broker's {key} folder {folder!r} does not exist "
                        "(or is not set): workers and enqueue() would fail on it.",
                        hint=f"Create it (mkdir -p {folder})"
                        if folder
                        else "Set CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in'], "
                        "'data_folder_out' and 'control_folder' to existing folders.",
                        id="django_bgjobs.E004",
                    )
                )
    if (
        str(conf.broker_url or "").startswith("filesystem")
        and conf.broker_transport != filesystem_broker.PATH
    ):
        messages.append(
            checks.Warning(
                "kombu's own filesystem transport can hand a worker a message file before it is "
                "written; the worker's consumer then dies on the empty message.",
                hint=f"Set CELERY_BROKER_TRANSPORT = {filesystem_broker.PATH!r} (the same "
                "transport, each message written whole).",
                id="django_bgjobs.W005",
            )
        )
    if (conf.worker_prefetch_multiplier or 1) > 1:
        messages.append(
            checks.Warning(
                f"CELERY_WORKER_PREFETCH_MULTIPLIER is {conf.worker_prefetch_multiplier}: a worker "
                "reserves that many jobs per process, which wait behind long ones and are "
                "redelivered if it dies.",
                hint="Set CELERY_WORKER_PREFETCH_MULTIPLIER = 1.",
                id="django_bgjobs.W002",
            )
        )
    if conf.task_always_eager:
        messages.append(
            checks.Warning(
                "CELERY_TASK_ALWAYS_EAGER is on: jobs run inside the web request after commit, "
                "without workers.",
                hint="Turn it off; in tests use django_bgjobs.testing.capture_jobs().",
                id="django_bgjobs.W003",
            )
        )
    return messages


def check_orphaned_jobs(databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Jobs waiting in the database whose code is gone would go dead when they run.

    Runs with ``check --database <alias>`` (and migrate), like Django's own database checks.
    """
    from django.db import DatabaseError

    from django_bgjobs.models import Job
    from django_bgjobs.registry import registry

    if not databases:
        return []
    try:
        names: set[str] = set()
        for alias in databases:
            names |= set(
                Job.objects.using(alias).unfinished().values_list("name", flat=True).distinct()
            )
    except DatabaseError:  # not migrated yet
        return []
    missing = sorted(names - set(registry.names()))
    if not missing:
        return []
    return [
        checks.Warning(
            f"Unfinished jobs in the database name job(s) no code defines: {', '.join(missing)}.",
            hint="Restore or rename the @bgjob (or give it name='old.name'); otherwise these jobs "
            "go dead when a worker gets them. Cancel them with the admin if they are obsolete.",
            id="django_bgjobs.W004",
        )
    ]


def check_webhooks(**kwargs: Any) -> list[checks.CheckMessage]:
    """Every BGJOBS["WEBHOOKS"] entry is complete and names a job that exists."""
    from django_bgjobs.webhooks.endpoints import endpoint
    from django_bgjobs.webhooks.receipts import handler

    errors: list[checks.CheckMessage] = []
    for name in bgjobs_settings.WEBHOOKS:
        try:
            found = endpoint(name)
            if found is not None:
                handler(found)
        except ImproperlyConfigured as exc:
            errors.append(
                checks.Error(
                    str(exc),
                    hint='See docs/howto/webhooks.md (the BGJOBS["WEBHOOKS"] entries).',
                    id="django_bgjobs.E007",
                )
            )
    return errors


def check_metrics(**kwargs: Any) -> list[checks.CheckMessage]:
    """METRICS_TOKEN is a secret worth the name; the windows are positive durations."""
    errors: list[checks.CheckMessage] = []
    token = bgjobs_settings.METRICS_TOKEN
    if token is not None and (
        not isinstance(token, str) or len(token) < 16 or token != token.strip() or " " in token
    ):
        errors.append(
            checks.Error(
                "BGJOBS['METRICS_TOKEN'] must be None or a string of at least 16 characters "
                "without spaces: whoever has it reads the metrics.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="django_bgjobs.E008",
            )
        )
    for name in ("METRICS_WINDOW", "METRICS_WORKERS_WINDOW"):
        try:
            positive = getattr(bgjobs_settings, name).total_seconds() > 0
        except (TypeError, AttributeError):
            positive = False
        if not positive:
            errors.append(
                checks.Error(
                    f"BGJOBS[{name!r}] must be a positive timedelta or number of seconds.",
                    id="django_bgjobs.E008",
                )
            )
    return errors


def register() -> None:
    checks.register(check_settings, "django_bgjobs")
    checks.register(check_metrics, "django_bgjobs")
    checks.register(check_webhooks, "django_bgjobs")
    checks.register(check_celery, "django_bgjobs")
    checks.register(check_orphaned_jobs, checks.Tags.database)
