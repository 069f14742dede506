"""Helpers for your tests: see what was enqueued, and run it in-process.

    from django_bgjobs.testing import capture_jobs

    def test_signup_sends_welcome(client, django_capture_on_commit_callbacks):
        with capture_jobs() as jobs, django_capture_on_commit_callbacks(execute=True):
            client.post("/api/signup", {...})
        assert jobs.names() == ["shop.jobs.send_welcome_email"]
        jobs.run_all()                     # runs them here, retries included, no waiting
        assert jobs.jobs[0].status == "succeeded"

Jobs are captured when they would be published, which is after the transaction commits: in a
TestCase (one big transaction) use ``self.captureOnCommitCallbacks(execute=True)`` around the
code that enqueues, or pytest-django's ``django_capture_on_commit_callbacks``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

from django.utils import timezone

from django_bgjobs import states
from django_bgjobs.celery import broker
from django_bgjobs.execution import heartbeat, run_attempt
from django_bgjobs.flow import admission
from django_bgjobs.models import FINISHED, Job, JobStatus, Step, StepStatus


class CapturedJobs:
    def __init__(self) -> None:
        self._messages: list[broker.MessageRef] = []
        self._ids: list[object] = []

    def _receive(self, refs: Sequence[broker.MessageRef]) -> None:
        self._messages.extend(refs)
        for ref in refs:
            if ref[0] not in self._ids:
                self._ids.append(ref[0])

    @property
    def jobs(self) -> list[Job]:
        """The captured jobs, fresh from the database, in the order they were published."""
        by_id = Job.objects.in_bulk(self._ids)
        return [by_id[i] for i in self._ids if i in by_id]

    def names(self) -> list[str]:
        return [job.name for job in self.jobs]

    def run_all(self, max_rounds: int = 1000) -> list[Job]:
        """Run every captured message here, as a worker would, then every retry and delayed job
        straight away (backoff and delays skipped), until nothing is left to run. A durable
        function's sleeps end at once too, and its waits for an event time out (send the event
        before ``run_all()`` for the wait to get it)."""
        for _ in range(max_rounds):
            if self._messages:
                pending, self._messages = self._messages, []
                for job_id, attempt, *_ in pending:
                    run_attempt(str(job_id), attempt)
                continue
            # What the dispatcher would do later, done now: release waiting jobs as if due.
            now = timezone.now()
            Step.objects.filter(
                job__status=JobStatus.SCHEDULED,
                status__in=[StepStatus.SLEEPING, StepStatus.WAITING],
                wake_at__gt=now,
            ).update(wake_at=now)
            due = states.promote_due(now, limit=1000, due_by=now + timedelta(days=36500))
            # Blocked jobs a place was freed for (flow control), as the dispatcher lets through.
            if not due and not admission.admit_waiting() and not self._messages:
                return self.jobs
            self._receive([broker.MessageRef.next_attempt(job) for job in due])
        raise RuntimeError(f"jobs still pending after {max_rounds} rounds")

    def unfinished(self) -> list[Job]:
        return [job for job in self.jobs if job.status not in FINISHED]


@contextmanager
def capture_jobs() -> Iterator[CapturedJobs]:
    """Capture jobs instead of sending them to the broker, for the duration of the block."""
    captured = CapturedJobs()
    previous, was_beating = broker._interceptor, heartbeat.enabled
    broker._interceptor = captured._receive
    heartbeat.enabled = False
    try:
        yield captured
    finally:
        broker._interceptor = previous
        heartbeat.enabled = was_beating
