"""django-q2 with its ORM broker on PostgreSQL, 2 workers, its defaults otherwise (poll 0.2 s,
results of the last 250 successful tasks kept, a worker process recycled every 500 tasks)."""

from bench.peers.peer_settings import *  # noqa: F403
from bench.peers.peer_settings import conn_max_age
from bench.peers.pg import django_database

DATABASE_NAME = "bench_q2"
DATABASES = {"default": {**django_database(DATABASE_NAME), "CONN_MAX_AGE": conn_max_age()}}
INSTALLED_APPS = ["django_q"]
# timeout below retry, as django-q2 warns at start-up otherwise (no no-op job comes near either).
Q_CLUSTER = {"name": "bench_q2", "orm": "default", "workers": 2, "timeout": 30, "retry": 60}
