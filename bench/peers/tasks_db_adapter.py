"""django-tasks-db: ``python -m django db_worker``, two worker processes (it runs one task at a
time per process), default polling interval (1 s when the queue is empty)."""

from __future__ import annotations

from bench.peers.adapter import Adapter as BaseAdapter
from bench.peers.adapter import Workers, python, truncate

SETTINGS = "bench.peers.tasks_db_settings"
PROCESSES = 2


class Adapter(BaseAdapter):
    database = "bench_tasks_db"
    settings = SETTINGS
    packages = ("django", "django-tasks-db")

    def reset(self) -> None:
        from django_tasks_db.models import DBTaskResult

        truncate([DBTaskResult._meta.db_table])

    def enqueue(self, n: int, published: float) -> None:
        from bench.peers.tasks_db_tasks import noop

        noop.enqueue(n, published)

    def workers(self) -> Workers:
        command = [python(), "-m", "django", "db_worker", "--verbosity", "0", "--no-reload"]
        return Workers(
            [command] * PROCESSES,
            env={"DJANGO_SETTINGS_MODULE": SETTINGS},
            describe=f"{PROCESSES} db_worker processes (one task at a time each), interval 1 s",
        )

    def check(self, count: int) -> str:
        from django.db.models import Count
        from django_tasks_db.models import DBTaskResult

        statuses = dict(DBTaskResult.objects.values_list("status").annotate(n=Count("pk")))
        return f"task results by status {statuses}"
