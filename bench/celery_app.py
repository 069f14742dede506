"""The Celery app for ``celery -A bench.celery_app worker`` (the bare Celery worker).

It is the app bgjobs builds when a project has none: ``CELERY_*`` settings over bgjobs' safe
defaults. The bgjobs worker (``manage.py bgjobs worker``) builds the same one.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django_bgjobs.celery.app import get_celery_app  # noqa: E402

app = get_celery_app()
