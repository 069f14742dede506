"""Django settings for the benchmark (``DJANGO_SETTINGS_MODULE=bench.settings``).

PostgreSQL from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/bgjobs_bench), Redis from
CELERY_BROKER_URL (default redis://127.0.0.1:6379/14; the bench FLUSHDBs it). Celery settings are
bgjobs' safe defaults (json, acks_late, prefetch 1) for both the bare tasks and the jobs: bare
Celery and bgjobs run on the very same app configuration.
"""

import os

import dj_database_url

SECRET_KEY = "bench-only"
DEBUG = False  # DEBUG=True would record every query in memory
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
    "bench",
]

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bgjobs_bench")
# CONN_MAX_AGE: Django's default (0) unless BENCH_CONN_MAX_AGE says otherwise ("none" = forever).
_max_age = os.environ.get("BENCH_CONN_MAX_AGE", "0").strip().lower()
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=None if _max_age in ("none", "") else int(_max_age)
    )
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
# Where the bare Celery tasks count completions and record timestamps (same Redis by default).
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", CELERY_BROKER_URL)
# The bare tasks are ordinary shared_tasks; workers import them like any task module.
CELERY_IMPORTS = ["bench.tasks"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Explicit, although they are bgjobs' SAFE_DEFAULTS already: the same for both sides.
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

BGJOBS = {
    "QUEUES": ["default"],
    "DEFAULT_QUEUE": "default",
    # "off" for the bare Celery worker (no bgjobs machinery there); "worker" for bgjobs.
    "DISPATCHER": os.environ.get("BENCH_DISPATCHER", "worker"),
    # bench/delivery.py delivers to a local HTTP server (the SSRF rules refuse loopback).
    "DELIVERY_ALLOW_HOSTS": ["127.0.0.1"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "django_bgjobs": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "celery": {"level": "WARNING"},
    },
}
