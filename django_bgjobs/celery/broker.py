"""Publishing "execute job <id>, attempt <n>" messages to Celery.

Publishing is never the source of truth: a message that is lost, or never sent, is sent again by
the dispatcher. So a publish failure is logged, not raised, and the job stays ``queued``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from celery import Celery
from kombu import Queue

from django_bgjobs.models import Job

logger = logging.getLogger("django_bgjobs.broker")

EXECUTE_TASK = "django_bgjobs.execute"


class MessageRef(NamedTuple):
    """What a message carries and where it goes: the job, and the attempt it is for (the claim's
    fence: a copy for an attempt already made claims nothing)."""

    job_id: UUID | str
    attempt: int
    queue: str
    priority: int
    name: str

    @classmethod
    def next_attempt(cls, job: Job) -> MessageRef:
        return cls(job.pk, job.attempts + 1, job.queue, job.priority, job.name)


# Seconds Celery waits past the soft limit before killing the child (hard limit).
HARD_LIMIT_GRACE = 10


def _lowest_first(app: Celery) -> bool:
    """Our priority is 0-9, higher first. AMQP serves the highest number first too; Redis
    serves 0 first, so for Redis the number is turned around."""
    url = str(app.conf.broker_url or "")
    return url.split("://", 1)[0] in {"redis", "rediss", "sentinel"}


# Set by django_bgjobs.testing.capture_jobs() to receive messages instead of the broker.
_interceptor: Callable[[Sequence[MessageRef]], None] | None = None


def intercepted() -> bool:
    """Messages go to a test's capture_jobs(), not to the broker."""
    return _interceptor is not None


def publish(refs: Sequence[MessageRef]) -> int:
    """Send the messages now through one pooled producer. Returns how many were sent."""
    if _interceptor is not None:
        _interceptor(refs)
        return len(refs)
    from django_bgjobs.celery.app import get_celery_app
    from django_bgjobs.registry import registry

    app = get_celery_app()
    task = app.tasks[EXECUTE_TASK]
    invert = _lowest_first(app)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            # Fail in milliseconds when the broker is down (kombu would retry for seconds
            # inside the web request); the job is safe in the database.
            producer.connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            for job_id, attempt, queue, priority, name in refs:
                # The arguments are an id and a number: skip Celery's safe-repr of them.
                options: dict[str, Any] = {"argsrepr": "", "kwargsrepr": ""}
                spec = registry.get(name)
                if spec is not None and spec.timeout is not None:
                    options["soft_time_limit"] = spec.timeout
                    options["time_limit"] = spec.timeout + HARD_LIMIT_GRACE
                task.apply_async(
                    (str(job_id), attempt),
                    queue=queue,
                    priority=9 - priority if invert else priority,
                    producer=producer,
                    # Fail fast: the row is safe in the database and the dispatcher retries.
                    retry=False,
                    **options,
                )
                sent += 1
    except Exception as exc:  # the broker is down or refused: the dispatcher will publish
        unsent = [job_id for job_id, *_ in refs[sent:]]
        logger.warning(
            "could not publish %d job(s) (%s: %s); the dispatcher will publish them when the "
            "broker is back",
            len(unsent),
            type(exc).__name__,
            exc,
            extra={"job_ids": [str(i) for i in unsent], "error": str(exc)},
        )
        _mark_unpublished(unsent)
    return sent


def queue_depth(queue: str) -> int | None:
    """Messages waiting in ``queue`` at the broker (0 when it does not exist); None when the
    broker cannot be asked."""
    from django_bgjobs.celery.app import get_celery_app

    try:
        with get_celery_app().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            declared = Queue(queue, channel=connection.default_channel)
            try:
                # A queue_declare_ok_t (name, message_count, consumer_count); stubs say str.
                declare_ok: Any = declared.queue_declare(passive=True)
                return int(declare_ok.message_count)
            except connection.channel_errors:  # no such queue: nothing in it
                return 0
    except Exception:
        logger.debug("could not read the depth of queue %r", queue, exc_info=True)
        return None


def _mark_unpublished(job_ids: list[UUID | str]) -> None:
    """Let the dispatcher's next pass pick these up instead of waiting REPUBLISH_AFTER."""
    try:
        Job.objects.filter(pk__in=job_ids, status="queued").update(published_at=None)
    except Exception:  # the database is down too: REPUBLISH_AFTER covers it
        logger.exception("could not mark %d job(s) as unpublished", len(job_ids))
