"""The systems, in the order of the table, and where each one is installed: six, and a floor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class System:
    key: str  # for --systems and file names
    label: str  # for the table
    adapter: str  # module run by bench.peers.driver
    venv: str  # "main": the project's .venv; "peers": .venv-peers


SYSTEMS = [
    System("bgjobs", "django-bgjobs", "bench.peers.bgjobs_adapter", "main"),
    System(
        "celery-default", "Celery, default settings", "bench.peers.celery_default_adapter", "main"
    ),
    System(
        "celery-safe", "Celery, acks_late + prefetch 1", "bench.peers.celery_safe_adapter", "main"
    ),
    System(
        "celery-floor",
        "Celery safe + 2 commits/job (floor)",
        "bench.peers.celery_floor_adapter",
        "main",
    ),
    System("tasks-db", "django-tasks-db", "bench.peers.tasks_db_adapter", "peers"),
    System("q2", "django-q2 (ORM broker)", "bench.peers.q2_adapter", "peers"),
    System("procrastinate", "Procrastinate", "bench.peers.procrastinate_adapter", "peers"),
]
BASELINE = "bgjobs"  # the ratios are this system's figure over each other's
