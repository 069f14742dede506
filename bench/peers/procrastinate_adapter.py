"""Procrastinate: ``python -m django procrastinate worker``, two worker processes of concurrency
1 each (2-way parallelism in processes, as the prefork pools of the others)."""

from __future__ import annotations

from bench.peers.adapter import Adapter as BaseAdapter
from bench.peers.adapter import Workers, prefixed_tables, python, truncate

SETTINGS = "bench.peers.procrastinate_settings"
PROCESSES = 2


class Adapter(BaseAdapter):
    database = "bench_procrastinate"
    settings = SETTINGS
    packages = ("django", "procrastinate")

    def reset(self) -> None:
        # Its Django models do not cover every table it has: all of procrastinate_*.
        truncate(prefixed_tables("procrastinate_"))

    def enqueue(self, n: int, published: float) -> None:
        from bench.peers.procrastinate_tasks import noop

        noop.defer(n=n, published=published)

    def enqueue_bulk(self, count: int) -> None:
        from bench.peers.procrastinate_tasks import noop

        for start in range(0, count, 500):
            noop.batch_defer(
                *({"n": n, "published": 0.0} for n in range(start, min(start + 500, count)))
            )

    def workers(self) -> Workers:
        command = [python(), "-m", "django", "procrastinate", "worker", "--concurrency", "1"]
        return Workers(
            [[*command, "--name", f"bench-{i}"] for i in range(PROCESSES)],
            env={"DJANGO_SETTINGS_MODULE": SETTINGS},
            describe=f"{PROCESSES} worker processes, concurrency 1 each, LISTEN/NOTIFY",
        )

    def check(self, count: int) -> str:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT status, count(*) FROM procrastinate_jobs GROUP BY status")
            statuses = dict(cursor.fetchall())
        return f"jobs by status {statuses}"
