"""Procrastinate's Django contrib on PostgreSQL, its defaults otherwise (LISTEN/NOTIFY, polling
every 5 s as a fallback, finished jobs kept)."""

from bench.peers.peer_settings import *  # noqa: F403
from bench.peers.peer_settings import conn_max_age
from bench.peers.pg import django_database

DATABASE_NAME = "bench_procrastinate"
DATABASES = {"default": {**django_database(DATABASE_NAME), "CONN_MAX_AGE": conn_max_age()}}
INSTALLED_APPS = ["procrastinate.contrib.django"]
# The task module by name, instead of autodiscovering "tasks" modules in the installed apps.
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = ""
PROCRASTINATE_IMPORT_PATHS = ["bench.peers.procrastinate_tasks"]
