"""django-tasks-db: Django 6's ``django.tasks`` with the database backend, defaults otherwise."""

from bench.peers.peer_settings import *  # noqa: F403
from bench.peers.peer_settings import conn_max_age
from bench.peers.pg import django_database

DATABASE_NAME = "bench_tasks_db"
DATABASES = {"default": {**django_database(DATABASE_NAME), "CONN_MAX_AGE": conn_max_age()}}
INSTALLED_APPS = ["django_tasks_db"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
