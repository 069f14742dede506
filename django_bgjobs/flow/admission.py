"""Admission: which blocked jobs get a place under their concurrency limit, and when it runs.

A key's places are counted from the rows (its jobs ``queued`` or ``running``), never kept in a
process, so a limit holds across every worker and host, and a place held by a worker that was
killed is free again when its lease expires (the job goes ``retrying``, and blocked again
when due). Admission locks the key's ``FlowKey`` row first, so two admissions of one key never
both see the same free place; it lets through the key's blocked jobs by priority, then age.

It runs once enqueues commit (``jobs_blocked``), when a job of the key stops holding its place
(it succeeded, failed, died or was cancelled), and on every dispatcher pass (``admit_waiting``),
which also catches a limit raised in the admin and anything a crashed process left undone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from django_bgjobs import signals, states
from django_bgjobs.flow import spec
from django_bgjobs.models import HOLDING, FlowGate, Job, JobStatus
from django_bgjobs.registry import registry

logger = logging.getLogger("django_bgjobs.flow")


def gate_of(flow_key: str) -> str:
    return flow_key.split(" ", 1)[0]


def limit_of(gate: str) -> int | None:
    """The gate's concurrency: as an operator set it in the admin, else as declared; None when
    this process does not know the gate (its jobs are left to a process that does)."""
    override = FlowGate.objects.filter(name=gate).values_list("concurrency", flat=True).first()
    if override is not None:
        return override
    declared = spec.gate(gate)
    return declared.concurrency if declared is not None else None


def _limit_dropped(flow_key: str) -> bool:
    """Whether the code no longer limits this key's blocked jobs: their job is known here but
    has no concurrency limit under this gate any more (a deploy removed or renamed it)."""
    name = Job.objects.blocked(flow_key).values_list("name", flat=True).first()
    job = registry.get(name) if name else None
    if job is None:
        return False
    return job.flow is None or job.flow.concurrency is None or job.flow.gate != gate_of(flow_key)


def admit(flow_keys: Iterable[str]) -> int:
    """Let through the blocked jobs of these keys that fit; returns how many."""
    return sum(_admit_key(key) for key in sorted(set(flow_keys)))


def _admit_key(flow_key: str) -> int:
    gate = gate_of(flow_key)
    declared = spec.gate(gate)
    # An operator's FlowGate row, when there is one, is read by the admission's statement.
    limit = declared.concurrency if declared is not None else None
    if limit is None:
        limit = limit_of(gate)
        if limit is None:
            return states.ungate(flow_key, timezone.now()) if _limit_dropped(flow_key) else 0
    return states.admit(flow_key, gate, limit, timezone.now())


def admit_waiting() -> int:
    """The dispatcher's pass: every key with blocked jobs and a free place."""
    keys = (
        Job.objects.filter(
            status__in=(JobStatus.BLOCKED, *HOLDING), flow_key__isnull=False, gated=True
        )
        .values("flow_key")
        .annotate(
            blocked=Count("pk", filter=Q(status=JobStatus.BLOCKED)),
            holding=Count("pk", filter=Q(status__in=HOLDING)),
        )
        .filter(blocked__gt=0)
        .order_by()  # every such key (a row each), not a batch: a full one must not hide others
    )
    admitted = 0
    for row in keys:
        flow_key = str(row["flow_key"])
        limit = limit_of(gate_of(flow_key))
        if limit is None or row["holding"] < limit:  # None: unknown here, or dropped by code
            admitted += _admit_key(flow_key)
    return admitted


def _blocked(sender: Any, flow_keys: set[str], **kwargs: Any) -> None:
    _admit_quietly(flow_keys)


def place_freed(job: Job) -> None:
    """A job of a key stopped holding its place (it ended, failed, was parked): the next one
    may go, once the transaction it happened in commits (admission locks the key's row after
    the job rows, never inside a transaction that holds them)."""
    if not job.flow_key:
        return
    if not job.gated:
        # Released by an operator for the attempt that held its place: the next attempts
        # count again (when the code still limits it).
        declared = registry.get(job.name)
        if declared is None or declared.flow is None or not declared.flow.gated:
            return
        Job.objects.filter(pk=job.pk).update(gated=True)
    key = job.flow_key
    transaction.on_commit(lambda: _admit_quietly({key}), robust=True)


def _place_freed(sender: Any, job: Job, **kwargs: Any) -> None:
    if not getattr(job, "place_passed_on", False):  # handed over as it finished (states/)
        place_freed(job)


def _admit_quietly(flow_keys: set[str]) -> None:
    # After the work is done: a failed admission (a deadlock, SQLite busy) is the dispatcher's
    # next pass to retry, not an error of the job or of the enqueue.
    try:
        admit(flow_keys)
    except DatabaseError as exc:
        logger.warning("admission of %s failed (%s): the dispatcher retries", flow_keys, exc)


def connect() -> None:
    signals.jobs_blocked.connect(_blocked, dispatch_uid="django_bgjobs.flow.blocked")
    for name in ("job_succeeded", "job_failed", "job_dead", "job_cancelled"):
        getattr(signals, name).connect(_place_freed, dispatch_uid=f"django_bgjobs.flow.{name}")
