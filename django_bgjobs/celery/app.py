"""The Celery app bgjobs publishes to and runs on: the project's own, or one made here.

Django projects usually have a Celery app already (``proj/celery.py``); bgjobs' task is a
``shared_task`` and works with it. Without one, ``get_celery_app()`` builds an app configured the
Celery way, from ``CELERY_*`` settings, with safe defaults underneath.
"""

from __future__ import annotations

import threading

from celery import Celery
from celery import _state as celery_state

from django_bgjobs.conf import bgjobs_settings

# Applied under the user's CELERY_* settings (theirs win; checks.py warns about unsafe ones).
SAFE_DEFAULTS = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "worker_cancel_long_running_tasks_on_connection_loss": True,
    "broker_connection_retry_on_startup": True,
    "beat_scheduler": "django_celery_beat.schedulers:DatabaseScheduler",
}

_lock = threading.Lock()
_own_app: Celery | None = None


def create_app(main: str = "django_bgjobs") -> Celery:
    """A Celery app reading ``CELERY_*`` settings, with bgjobs' safe defaults underneath."""
    app = Celery(main, set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.add_defaults(lambda: dict(SAFE_DEFAULTS))
    return app


def get_celery_app() -> Celery:
    """BGJOBS['CELERY_APP'] if set; else the project's current Celery app; else our own."""
    global _own_app
    path = bgjobs_settings.CELERY_APP
    if path:
        app: Celery = bgjobs_settings.resolve("CELERY_APP", path)
        return app
    current = celery_state.get_current_app()
    fallback = getattr(celery_state, "default_app", None)
    if current is not fallback and getattr(current, "main", None) != "default":
        return current
    with _lock:
        if _own_app is None:
            _own_app = create_app()
            _own_app.set_current()
        return _own_app
