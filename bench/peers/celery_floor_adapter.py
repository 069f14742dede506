"""The floor: bare Celery with bgjobs' safe settings plus one row per job, claimed and finished
in two commits (bench/peers/celery_floor_tasks.py). Not a product: the line under which no
database-backed system on Celery can go on this machine."""

from __future__ import annotations

import os
from types import ModuleType

from bench.peers import pg, redis_stats
from bench.peers.adapter import Workers, python
from bench.peers.celery_safe_adapter import Adapter as SafeAdapter


def floor() -> ModuleType:
    """The tasks module. Imported late: importing it builds the Celery app, which must come
    after the base class's django_setup() of the bench's settings (the broker's URL)."""
    from bench.peers import celery_floor_tasks

    return celery_floor_tasks


class Adapter(SafeAdapter):
    database = "bench_peers_floor"  # celery_floor_tasks.DATABASE
    packages = ("celery", "kombu", "psycopg")

    def setup(self) -> dict[str, str]:
        pg.ensure_database(floor().DATABASE)
        table = floor().TABLE
        floor().connection().execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id integer PRIMARY KEY, status text NOT NULL)"
        )
        return super().setup()

    def reset(self) -> None:
        floor().connection().execute(f"TRUNCATE {floor().TABLE}")
        redis_stats.flush()

    def enqueue(self, n: int, published: float) -> None:
        floor().connection().execute(f"INSERT INTO {floor().TABLE} VALUES (%s, 'queued')", (n,))
        floor().noop.delay(n, published)

    def enqueue_bulk(self, count: int) -> None:
        copying = f"COPY {floor().TABLE} (id, status) FROM STDIN"
        with floor().connection().cursor().copy(copying) as copy:
            for n in range(count):
                copy.write_row((n, "queued"))
        for n in range(count):
            floor().noop.delay(n, 0.0)

    def close(self) -> None:
        super().close()
        floor().close()

    def workers(self) -> Workers:
        command = [python(), "-m", "celery", "-A", "bench.celery_app", "worker"]
        command += ["--concurrency", "2", "--pool", "prefork", "--queues", floor().QUEUE]
        command += ["--loglevel", "warning", "--hostname", f"peers-floor-{os.getpid()}@%h"]
        workers = super().workers()
        workers.commands = [command]
        workers.describe = "as Celery safe, plus a row claimed and finished per job (2 commits)"
        return workers

    def check(self, count: int) -> str:
        counting = f"SELECT status, count(*) FROM {floor().TABLE} GROUP BY 1"
        return f"rows by status {dict(floor().connection().execute(counting).fetchall())}"
