"""A Hypothesis state machine over the job transitions, with the faults mixed in: duplicate and
stale deliveries, workers that vanish (lease expiry), late finishes from zombies, cancels and
manual retries, dispatcher sweeps. After every step the invariants must hold."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from django_bgjobs import states
from django_bgjobs.celery import broker
from django_bgjobs.models import FINISHED, Job, JobRun, JobStatus, RunStatus
from tests import jobs

FAR = timedelta(days=3650)


class JobLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        JobRun.objects.all().delete()
        Job.objects.all().delete()
        self.messages: list[tuple[str, int]] = []  # what the broker holds (never forgets here)
        self.running: list[states.Claim] = []  # claimed, not finished
        self.zombies: list[states.Claim] = []  # their lease was taken over
        self.wins: dict[str, int] = {}  # job id -> successful completions accepted
        self.released: set[tuple[str, int]] = set()  # (job id, attempt) given back at shutdown
        broker._interceptor = self._published

    def _published(self, refs: Any) -> None:
        self.messages.extend((str(ref[0]), ref[1]) for ref in refs)

    def teardown(self) -> None:
        broker._interceptor = None

    @rule(attempts=st.integers(1, 3))
    def enqueue(self, attempts: int) -> None:
        job = jobs.noop.enqueue()
        Job.objects.filter(pk=job.pk).update(max_attempts=attempts)

    @precondition(lambda self: self.messages)
    @rule(index=st.integers(0, 1000), duplicate=st.booleans())
    def deliver(self, index: int, duplicate: bool) -> None:
        message = self.messages[index % len(self.messages)]
        if not duplicate:
            self.messages.remove(message)
        claim = states.claim(message[0], message[1], "worker")
        if claim is not None:
            self.running.append(claim)

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 1000), outcome=st.sampled_from(["ok", "retry", "dead"]))
    def finish(self, index: int, outcome: str) -> None:
        claim = self.running.pop(index % len(self.running))
        self._finish(claim, outcome)

    def _finish(self, claim: states.Claim, outcome: str) -> bool:
        if outcome == "ok":
            won = states.succeed(claim, result=claim.run.attempt)
            if won:
                self.wins[str(claim.job.pk)] = self.wins.get(str(claim.job.pk), 0) + 1
            return won
        return (
            states.fail(claim, "boom", "", retry_in=0 if outcome == "retry" else None) is not None
        )

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 1000))
    def worker_vanishes(self, index: int) -> None:
        claim = self.running.pop(index % len(self.running))
        Job.objects.filter(pk=claim.job.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        self.zombies.append(claim)

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 1000))
    def worker_shuts_down(self, index: int) -> None:
        """The grace period ran out: the attempt is released and the job published again; the
        attempt, still going, becomes a zombie whose late finish must be rejected."""
        claim = self.running.pop(index % len(self.running))
        job = Job.objects.get(pk=claim.job.pk)
        still_ours = job.status == JobStatus.RUNNING and job.attempts == claim.run.attempt
        released = states.release(claim.job.pk, claim.run.attempt, "shutting down")
        assert (released is not None) == still_ours
        if released is not None:
            self.released.add((str(job.pk), claim.run.attempt))
            if released.status == JobStatus.QUEUED:
                self.messages.append((str(job.pk), released.attempts + 1))
        self.zombies.append(claim)

    @precondition(lambda self: self.zombies)
    @rule(index=st.integers(0, 1000), outcome=st.sampled_from(["ok", "retry", "dead"]))
    def zombie_finishes_late(self, index: int, outcome: str) -> None:
        claim = self.zombies.pop(index % len(self.zombies))
        job = Job.objects.get(pk=claim.job.pk)
        still_ours = job.status == JobStatus.RUNNING and job.attempts == claim.run.attempt
        assert self._finish(claim, outcome) == still_ours

    @rule()
    def dispatcher_sweeps(self) -> None:
        now = timezone.now()
        states.expire_leases(now, 1000)
        due = states.promote_due(now, 1000, due_by=now + FAR)
        self.messages.extend((str(job.pk), job.attempts + 1) for job in due)

    @precondition(lambda self: Job.objects.exists())
    @rule(index=st.integers(0, 1000))
    def someone_cancels(self, index: int) -> None:
        ids = list(Job.objects.order_by("pk").values_list("pk", flat=True))
        states.cancel(Job.objects.get(pk=ids[index % len(ids)]))

    @precondition(
        lambda self: Job.objects.filter(status__in=[JobStatus.DEAD, JobStatus.CANCELLED]).exists()
    )
    @rule(index=st.integers(0, 1000))
    def someone_retries(self, index: int) -> None:
        ids = list(
            Job.objects.filter(status__in=[JobStatus.DEAD, JobStatus.CANCELLED])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        assert states.retry(Job.objects.get(pk=ids[index % len(ids)]))

    @invariant()
    def at_most_one_success_per_job(self) -> None:
        assert all(count <= 1 for count in self.wins.values())
        doubled = (
            JobRun.objects.filter(status=RunStatus.SUCCEEDED)
            .values("job")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
        )
        assert not doubled.exists()

    @invariant()
    def attempts_stay_within_the_budget(self) -> None:
        for job in Job.objects.all():
            assert job.attempts <= job.max_attempts, job
            runs = list(job.runs.values_list("attempt", flat=True))
            assert len(runs) == len(set(runs)) and all(a <= job.attempts for a in runs)

    @invariant()
    def a_release_record_is_never_overwritten(self) -> None:
        for job_id, attempt in self.released:
            assert JobRun.objects.get(job_id=job_id, attempt=attempt).status == RunStatus.RELEASED

    @invariant()
    def states_are_consistent(self) -> None:
        for job in Job.objects.all():
            if job.status == JobStatus.RUNNING:
                assert job.lease_expires_at is not None
            if job.status == JobStatus.SUCCEEDED:
                assert job.runs.filter(status=RunStatus.SUCCEEDED).count() == 1
            if job.status in FINISHED:
                assert job.finished_at is not None and job.lease_expires_at is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_session_worker")  # its dispatcher would change jobs under us
def test_job_transitions_hold_their_invariants() -> None:
    JobLifecycle.TestCase.settings = settings(
        # 100 sequences in the default run (about 45 s on PostgreSQL); BGJOBS_SOAK=1 runs 500.
        max_examples=500 if os.environ.get("BGJOBS_SOAK") == "1" else 100,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    JobLifecycle.TestCase().runTest()
