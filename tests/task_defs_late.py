"""A task module nothing imports: tests/test_django_tasks.py has the registry find it by a job's
name. Its import is slow on purpose, so that two threads asking at once overlap."""

import time

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks package
    from django_tasks import task  # type: ignore[import-not-found, no-redef]

time.sleep(0.3)


@task
def late(x: int) -> int:
    return x
