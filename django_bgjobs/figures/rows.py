"""What the admin dashboard shows, as plain data: attempts by outcome, per bucket of time, per
queue, per job name, recent failures and workers (computed by ``dashboard.build()``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django_bgjobs.models import RunStatus

FAILED = (RunStatus.FAILED, RunStatus.LOST)


@dataclass
class Outcomes:
    """Attempts that ended, by outcome. ``failed`` counts failed and lost attempts; ``other``
    the cancelled, released (given back at a worker's shutdown) and superseded ones."""

    succeeded: int = 0
    failed: int = 0
    other: int = 0

    def add(self, status: str, n: int) -> None:
        if status == RunStatus.SUCCEEDED:
            self.succeeded += n
        elif status in FAILED:
            self.failed += n
        else:
            self.other += n

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.other

    @property
    def success_rate(self) -> float | None:
        """Succeeded / (succeeded + failed): None when no attempt succeeded or failed."""
        judged = self.succeeded + self.failed
        return self.succeeded / judged if judged else None

    @property
    def failure_rate(self) -> float | None:
        judged = self.succeeded + self.failed
        return self.failed / judged if judged else None


@dataclass
class Bucket:
    start: datetime
    outcomes: Outcomes = field(default_factory=Outcomes)


@dataclass(frozen=True)
class QueueRow:
    name: str
    queued: int
    oldest_age: float | None  # seconds the oldest queued job has waited; None when empty
    running: int
    waiting: int  # scheduled or retrying: due later
    known: bool  # in BGJOBS["QUEUES"]
    blocked: int = 0  # waiting for a place under a concurrency limit (flow control)


@dataclass
class NameRow:
    """One job name over the last hour (and its dead jobs, all time)."""

    name: str
    outcomes: Outcomes = field(default_factory=Outcomes)
    run_ms: tuple[float, float, float] | None = None  # p50, p95, p99
    wait_s: tuple[float, float, float] | None = None
    dead: int = 0


@dataclass(frozen=True)
class Failure:
    run_id: int
    job_id: Any
    job_name: str
    attempt: int
    status: str
    finished_at: datetime | None  # set by every writer of a failed or lost attempt
    error: str


@dataclass
class WorkerRow:
    worker: str
    last_seen: datetime
    running: int = 0
    ended: int = 0  # attempts it ended in WORKERS_WINDOW
    stale_leases: int = 0  # running jobs whose lease expired: the worker stopped heartbeating


@dataclass
class Dashboard:
    now: datetime
    queues: list[QueueRow]
    minutes: list[Bucket]  # the last HOUR_MINUTES minutes, oldest first (the last one is now)
    hours: list[Bucket]  # the last DAY_HOURS hours, oldest first
    names: list[NameRow]
    failures: list[Failure]
    workers: list[WorkerRow]
    dead: int
    took_ms: float = 0.0

    @property
    def last_hour(self) -> Outcomes:
        return total(b.outcomes for b in self.minutes)

    @property
    def last_day(self) -> Outcomes:
        return total(b.outcomes for b in self.hours)

    @property
    def queued(self) -> int:
        return sum(q.queued for q in self.queues)

    @property
    def running(self) -> int:
        return sum(q.running for q in self.queues)

    @property
    def waiting(self) -> int:
        return sum(q.waiting for q in self.queues)

    @property
    def oldest_age(self) -> float | None:
        ages = [q.oldest_age for q in self.queues if q.oldest_age is not None]
        return max(ages) if ages else None


def total(outcomes: Iterable[Outcomes]) -> Outcomes:
    total = Outcomes()
    for o in outcomes:
        total.succeeded += o.succeeded
        total.failed += o.failed
        total.other += o.other
    return total
