"""A project's own Celery app, the way Celery's Django guide writes ``proj/celery.py``.

Only the worker started by test_project_celery_app imports it (``celery -A``): imported in the
test process it would become the current app for every other test.
"""

from celery import Celery

app = Celery("tests_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
