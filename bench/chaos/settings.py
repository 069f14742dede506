"""Django settings for the chaos suite (``DJANGO_SETTINGS_MODULE=bench.chaos.settings``).

PostgreSQL from CHAOS_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/bgjobs_chaos,
created if missing), Redis from CHAOS_REDIS_URL (default redis://127.0.0.1:6379/13, wiped by
the suite). Timeouts are shrunk so that faults heal in seconds (reliability.md's harness: lease,
heartbeat, sweeper and visibility timeout all short); the mechanisms are the production ones.
"""

import os

import dj_database_url

SECRET_KEY = "chaos-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_celery_beat",
    "django_bgjobs",
    "django_bgjobs.delivery",
    "bench.chaos",
]

DATABASE_URL = os.environ.get(
    "CHAOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bgjobs_chaos"
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=None)}
# A database outage must surface in seconds, not after the kernel's TCP timeouts.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 3

CELERY_BROKER_URL = os.environ.get("CHAOS_REDIS_URL", "redis://127.0.0.1:6379/13")
# Messages a worker took and did not acknowledge come back after this (kombu's Redis transport).
VISIBILITY_TIMEOUT = float(os.environ.get("CHAOS_VISIBILITY_TIMEOUT", "10"))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": VISIBILITY_TIMEOUT,
    "socket_timeout": 5,
    "socket_connect_timeout": 3,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

BGJOBS = {
    "QUEUES": ["chaos"],
    "DEFAULT_QUEUE": "chaos",
    "LEASE_SECONDS": float(os.environ.get("CHAOS_LEASE_SECONDS", "4")),
    "DISPATCH_INTERVAL": 0.5,
    "REPUBLISH_AFTER": 5.0,
    "SHUTDOWN_GRACE": 3.0,
    # CHAOS_DISPATCHER=off runs the workers without their dispatcher: the checker must then
    # report lost and stuck jobs (a check that the checker can fail).
    "DISPATCHER": os.environ.get("CHAOS_DISPATCHER", "worker"),
    # Scenario 13 delivers to an HTTP server in the harness process.
    "DELIVERY_ALLOW_HOSTS": ["127.0.0.1"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "django_bgjobs": {
            "handlers": ["console"],
            "propagate": False,
            "level": os.environ.get("CHAOS_LOG_LEVEL", "WARNING"),
        },
    },
}
