"""Concurrency limits under any interleaving: hypothesis drives enqueues, starts, successes,
failures, crashed workers (expired leases), cancels, the dispatcher's passes and admissions in
random orders against the real database and the real state transitions (on PostgreSQL a
finishing job hands its place to the next one in its finishing statement), and checks after
every step that no key ever has more jobs holding a place than its limit, and at the end that
every job ends once the workers catch up: succeeded, cancelled, or dead with its attempts spent
(none lost, none stuck)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as examples
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from django_bgjobs import states
from django_bgjobs.flow import admission
from django_bgjobs.models import FINISHED, FlowKey, Job, JobRun, JobStatus
from django_bgjobs.testing import capture_jobs
from tests import flow_jobs as fj

# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]

KEYS = (1, 2, 3)
FAR = timedelta(days=1)


class Admissions(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        Job.objects.all().delete()
        FlowKey.objects.all().delete()
        self.claims: list[states.Claim] = []
        self.cancelled: set[object] = set()
        self.n = 0

    @rule(key=st.sampled_from(KEYS), priority=st.integers(0, 9))
    def enqueue(self, key: int, priority: int) -> None:
        self.n += 1
        fj.sync_customer.using(priority=priority).enqueue(key, self.n)

    @rule(pick=st.integers(0, 50))
    def a_worker_starts_a_queued_job(self, pick: int) -> None:
        queued = list(Job.objects.queued().order_by("id"))
        if queued:
            job = queued[pick % len(queued)]
            claim = states.claim(str(job.pk), job.attempts + 1, "w")
            if claim is not None:
                self.claims.append(claim)

    @rule(pick=st.integers(0, 50), outcome=st.sampled_from(["succeed", "fail", "crash"]))
    def a_running_job_ends(self, pick: int, outcome: str) -> None:
        if not self.claims:
            return
        claim = self.claims.pop(pick % len(self.claims))
        if outcome == "succeed":
            states.succeed(claim, result=None)
        elif outcome == "fail":
            states.fail(claim, "ConnectionError: flaky", "", retry_in=0.0)
        else:  # the worker was killed: its lease runs out and the dispatcher takes it back
            Job.objects.filter(pk=claim.job.pk).update(
                lease_expires_at=timezone.now() - timedelta(seconds=1)
            )
            states.expire_leases(timezone.now(), 100)

    @rule(pick=st.integers(0, 50))
    def someone_cancels_a_job(self, pick: int) -> None:
        unfinished = list(Job.objects.unfinished().order_by("id"))
        if unfinished:
            job = unfinished[pick % len(unfinished)]
            if job.cancel():
                self.cancelled.add(job.pk)

    @rule()
    def the_dispatcher_passes(self) -> None:
        states.promote_due(timezone.now(), 100, due_by=timezone.now() + FAR)
        admission.admit_waiting()

    @rule(key=st.sampled_from(KEYS))
    def an_admission_runs_again(self, key: int) -> None:
        admission.admit([f"{fj.sync_customer.name} customer_id={key}"])

    @invariant()
    def no_key_holds_more_than_its_limit(self) -> None:
        for key in KEYS:
            holding = Job.objects.holding(f"{fj.sync_customer.name} customer_id={key}").count()
            assert holding <= 1, (key, holding)

    def teardown(self) -> None:
        """The workers catch up: every job not cancelled succeeds; nothing is left waiting."""
        self.claims.clear()
        for _ in range(500):
            self.the_dispatcher_passes()
            queued = list(Job.objects.queued())
            running = list(Job.objects.running())
            for job in running:  # attempts a crashed test left running
                Job.objects.filter(pk=job.pk).update(
                    lease_expires_at=timezone.now() - timedelta(seconds=1)
                )
                states.expire_leases(timezone.now(), 100)
            if not queued and not running and not Job.objects.unfinished().exists():
                break
            for job in queued:
                claim = states.claim(str(job.pk), job.attempts + 1, "w")
                if claim is not None:
                    states.succeed(claim, result=None)
                self.no_key_holds_more_than_its_limit()
        leftover = list(Job.objects.exclude(status__in=FINISHED).values_list("pk", "status"))
        assert not leftover, leftover
        for job in Job.objects.all():
            if job.status == JobStatus.CANCELLED:
                continue
            if job.status == JobStatus.DEAD:  # its attempts were spent by failures and crashes
                assert job.attempts == job.max_attempts, (job.pk, job.attempts, job.error)
                continue
            assert job.status == JobStatus.SUCCEEDED, (job.pk, job.status, job.error)
            assert JobRun.objects.filter(job=job, status="succeeded").count() == 1


def test_a_concurrency_limit_holds_under_any_interleaving(settings):  # type: ignore[no-untyped-def]
    # Only the crash rule ends a lease: a slow example must not expire the others' as it runs.
    settings.BGJOBS = {**settings.BGJOBS, "LEASE_SECONDS": 3600}
    with capture_jobs():
        run_state_machine_as_test(
            Admissions,
            settings=examples(
                max_examples=25,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
