"""Django's tasks API (``django.tasks``, or the ``django-tasks`` package on Django 5.2) on
django-bgjobs: the ``Backend`` for the ``TASKS`` setting, and ``task``, Django's ``@task`` with
``max_attempts`` and ``backoff``.

Imported only by projects that use it, so that a Django without the tasks API can run the rest.
"""

from django_bgjobs.tasks.backend import Backend
from django_bgjobs.tasks.task import Task, task

__all__ = ["Backend", "Task", "task"]
