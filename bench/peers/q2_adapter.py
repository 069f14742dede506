"""django-q2: ``python -m django qcluster`` with 2 workers (one cluster: a sentinel, a pusher
polling the ORM broker, a monitor saving results, and 2 worker processes)."""

from __future__ import annotations

from bench.peers.adapter import Adapter as BaseAdapter
from bench.peers.adapter import Workers, app_tables, python, truncate

SETTINGS = "bench.peers.q2_settings"


class Adapter(BaseAdapter):
    database = "bench_q2"
    settings = SETTINGS
    packages = ("django", "django-q2")

    def reset(self) -> None:
        truncate(app_tables("django_q"))

    def enqueue(self, n: int, published: float) -> None:
        from django_q.tasks import async_task

        from bench.peers.q2_tasks import PATH

        async_task(PATH, n, published)

    def workers(self) -> Workers:
        return Workers(
            [[python(), "-m", "django", "qcluster"]],
            env={"DJANGO_SETTINGS_MODULE": SETTINGS},
            describe="one qcluster, 2 worker processes, ORM broker polled every 0.2 s",
        )

    def check(self, count: int) -> str:
        from django_q.models import Failure, OrmQ, Success

        return (
            f"{OrmQ.objects.count()} left in the ORM queue, {Failure.objects.count()} failed, "
            f"{Success.objects.count()} successes kept (save_limit 250)"
        )
