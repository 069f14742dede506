"""Settings for django-bgjobs and for bare Celery with bgjobs' safe settings.

bench/settings.py unchanged (the configuration bench/run.py measures: json, acks_late,
prefetch 1, the worker's dispatcher on), with three differences: this bench's own database and
Redis DB, and this package installed as an app so that bgjobs finds its ``jobs.py``, and the
bare task modules (safe, floor) imported by Celery.
"""

from bench.peers.pg import django_database
from bench.peers.redis_stats import redis_url
from bench.settings import *  # noqa: F403
from bench.settings import CELERY_IMPORTS, DATABASES, INSTALLED_APPS

DATABASE_NAME = "bench_peers_bgjobs"
DATABASES = {
    "default": {
        **django_database(DATABASE_NAME),
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],  # bench/run.py's choice
    }
}
INSTALLED_APPS = [*INSTALLED_APPS, "bench.peers"]
CELERY_BROKER_URL = redis_url()
BENCH_REDIS_URL = CELERY_BROKER_URL
CELERY_IMPORTS = [
    *CELERY_IMPORTS,
    "bench.peers.celery_safe_tasks",
    "bench.peers.celery_floor_tasks",
]
