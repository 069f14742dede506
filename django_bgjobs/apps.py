import logging
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig
from django.db import DatabaseError
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger("django_bgjobs.schedules")


def sync_schedules_after_migrate(using: str = "default", verbosity: int = 1, **kwargs: Any) -> None:
    """Deploying is migrating: reconcile the code's schedules into django-celery-beat."""
    from django.db import router

    from django_bgjobs.models import JobSchedule
    from django_bgjobs.scheduling.sync import sync

    if not router.allow_migrate_model(using, JobSchedule):
        return
    try:
        report = sync()
    except DatabaseError as exc:  # e.g. `migrate django_bgjobs` before django_celery_beat's
        logger.warning(
            "schedules not synced after migrate (%s); run `manage.py bgjobs "
            "sync-schedules` once every app is migrated",
            exc,
        )
        return
    for line in report.lines():
        if verbosity >= 1 and not line.startswith("unchanged"):
            print(f"  bgjobs schedules: {line}")


def _uses_tasks_backend() -> Callable[[], None] | None:
    """django.tasks' hook-up when TASKS names this package's backend. Imported only then: the
    rest runs on a Django without the tasks API."""
    from django_bgjobs.conf import django_setting

    tasks = django_setting("TASKS", None)
    if not isinstance(tasks, dict) or not any(
        "django_bgjobs.tasks" in str(conf.get("BACKEND", "")) for conf in tasks.values()
    ):
        return None
    from django_bgjobs.tasks.connect import connect

    return connect


class BgJobsConfig(AppConfig):
    name = "django_bgjobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # beat and maintenance are imported for the Celery tasks and the job they define.
        from django_bgjobs import checks, extensions, hooks, logs, maintenance  # noqa: F401
        from django_bgjobs.flow import admission
        from django_bgjobs.functions import matching
        from django_bgjobs.scheduling import beat  # noqa: F401
        from django_bgjobs.worker import task  # noqa: F401

        checks.register()
        logs.connect()
        hooks.connect()
        task.connect()
        matching.connect()
        admission.connect()
        # Events whose sender died between its commit and their delivery.
        extensions.register_sweep("functions.events", matching.deliver_stragglers)
        if connect_tasks := _uses_tasks_backend():
            connect_tasks()
        # Jobs defined in <app>/jobs.py are known to every process without further imports.
        autodiscover_modules("jobs")
        post_migrate.connect(
            sync_schedules_after_migrate, sender=self, dispatch_uid="django_bgjobs.sync_schedules"
        )
