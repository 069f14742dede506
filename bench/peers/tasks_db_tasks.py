"""django-tasks-db's no-op task (``db_worker`` imports it by its path, stored with the task)."""

from django.tasks import task

from bench.peers import body


@task()
def noop(n: int, published: float) -> None:
    body.noop(n, published)
