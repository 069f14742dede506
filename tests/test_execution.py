"""Running attempts in-process through the same code the worker runs (states + execution)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from django_bgjobs import signals, states
from django_bgjobs.dispatcher import Dispatcher
from django_bgjobs.execution import run_attempt
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.testing import capture_jobs
from tests import jobs
from tests.models import Effect

# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]


def run_to_the_end(*jobs_to_enqueue):  # type: ignore[no-untyped-def]
    with capture_jobs() as captured:
        for enqueue in jobs_to_enqueue:
            enqueue()
        return captured.run_all()


def statuses(job: Job) -> list[str]:
    return list(job.runs.order_by("attempt").values_list("status", flat=True))


def test_capture_and_run_all_walks_through_retries_without_waiting():
    [job] = run_to_the_end(lambda: jobs.flaky.enqueue("k", 3))
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 4, "ok after 4")
    assert statuses(job) == ["failed", "failed", "failed", "succeeded"]


def test_non_retriable_goes_straight_to_dead():
    [job] = run_to_the_end(jobs.gives_up.enqueue)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)
    assert job.error == "NonRetriable: the card was declined"


def test_retry_after_sets_the_next_attempt_time():
    with capture_jobs() as captured:
        job = jobs.asks_later.enqueue(120)
        run_attempt(str(job.pk), 1)
        job.refresh_from_db()
        assert job.status == JobStatus.RETRYING
        wait = (job.run_after - timezone.now()).total_seconds()
        assert 115 < wait <= 120
        [job] = captured.run_all()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 2)


def test_retry_on_limits_which_errors_are_retried():
    [job] = run_to_the_end(jobs.wrong_kind_of_error.enqueue)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)
    assert job.error.startswith("KeyError")


def test_a_return_value_that_is_not_json_is_a_clear_error():
    [job] = run_to_the_end(jobs.returns_a_set.enqueue)
    assert job.status == JobStatus.DEAD
    assert "the return value is a set, which is not JSON-serializable" in job.error


def test_async_jobs_run():
    [job] = run_to_the_end(lambda: jobs.async_double.enqueue(4))
    assert job.result == 8


def test_a_duplicate_or_stale_message_claims_nothing():
    with capture_jobs():
        job = jobs.record.enqueue("once")
    assert run_attempt(str(job.pk), 1) == "succeeded"
    assert run_attempt(str(job.pk), 1) == "stale"  # redelivered
    assert run_attempt(str(job.pk), 2) == "stale"  # from the future
    assert Effect.objects.filter(key="once").count() == 1


def test_a_message_for_a_deleted_job_is_dropped():
    assert run_attempt("01a204e0-0000-7000-8000-000000000000", 1) == "stale"


def test_unknown_job_name_is_dead_with_a_clear_error():
    job = Job.objects.create(
        name="gone.job",
        queue="default",
        status=JobStatus.QUEUED,
        max_attempts=4,
        created_at=timezone.now(),
    )
    assert run_attempt(str(job.pk), 1) == "dead"
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD and "unknown job 'gone.job'" in job.error
    assert statuses(job) == ["failed"]


def test_a_completion_after_the_lease_was_taken_over_is_rejected():
    """A worker paused past its lease: the dispatcher takes the job back, a new attempt runs,
    and the old worker's late result must not overwrite anything."""
    with capture_jobs():
        job = jobs.add.enqueue(1, 1)
    old = states.claim(str(job.pk), 1, "paused-worker")
    assert old is not None
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with capture_jobs() as captured:
        sweep = Dispatcher().run_once()
        assert sweep.expired == 1
        Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
        [job] = captured.run_all()
    assert (job.status, job.result, job.attempts) == (JobStatus.SUCCEEDED, 2, 2)
    assert states.succeed(old, result=999) is False  # the zombie finishes late
    job.refresh_from_db()
    assert job.result == 2
    assert statuses(job) == [RunStatus.SUPERSEDED, RunStatus.SUCCEEDED]


def test_expired_lease_on_the_last_attempt_is_dead():
    with capture_jobs():
        job = jobs.add.using().enqueue(1, 1)
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    states.claim(str(job.pk), 1, "gone-worker")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    Dispatcher().run_once()
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD and job.error.startswith("lost")
    assert statuses(job) == [RunStatus.LOST]


def test_heartbeat_extends_the_lease_and_reports_cancellation():
    with capture_jobs():
        job = jobs.add.enqueue(1, 1)
    states.claim(str(job.pk), 1, "w")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now())
    assert states.heartbeat(job.pk, 1) == (True, False)
    job.refresh_from_db()
    assert job.lease_expires_at > timezone.now() + timedelta(seconds=1)
    job.cancel()
    assert states.heartbeat(job.pk, 1) == (True, True)
    assert states.heartbeat(job.pk, 2) == (False, False)  # not our attempt


def test_cancel_a_waiting_job_and_retry_it_with_a_fresh_budget():
    with capture_jobs() as captured:
        job = jobs.noop.using(delay=timedelta(hours=1)).enqueue()
        assert job.cancel() is True
        assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
        assert job.cancel() is False  # already finished
        assert job.retry() is True
        assert job.status == JobStatus.QUEUED and job.max_attempts == 4
        [job] = captured.run_all()
    assert job.status == JobStatus.SUCCEEDED


def test_retry_gives_a_dead_job_a_fresh_budget_and_keeps_its_history():
    with capture_jobs() as captured:
        job = jobs.always_fails.enqueue("again")
        [job] = captured.run_all()
        assert (job.status, job.attempts) == (JobStatus.DEAD, 3)
        assert job.retry() is True
        assert job.retry() is False  # already queued
        [job] = captured.run_all()
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.DEAD, 6, 6)
    assert len(statuses(job)) == 6


def test_signals_are_sent_through_the_life_of_a_job():
    seen: list[tuple[str, str]] = []

    def receiver(signal, job, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((signal_names[signal], job.status))

    signal_names = {
        signals.job_enqueued: "enqueued",
        signals.job_started: "started",
        signals.job_succeeded: "succeeded",
        signals.job_failed: "failed",
        signals.job_dead: "dead",
        signals.job_cancelled: "cancelled",
    }
    for signal in signal_names:
        signal.connect(receiver)
    try:
        run_to_the_end(lambda: jobs.flaky.enqueue("s", 1))
        run_to_the_end(jobs.gives_up.enqueue)
    finally:
        for signal in signal_names:
            signal.disconnect(receiver)
    assert seen == [
        ("enqueued", "queued"),
        ("started", "running"),
        ("failed", "retrying"),
        ("started", "running"),
        ("succeeded", "succeeded"),
        ("enqueued", "queued"),
        ("started", "running"),
        ("dead", "dead"),
    ]


def test_structured_log_records_carry_the_job_fields(caplog):
    with caplog.at_level(logging.INFO, logger="django_bgjobs"):
        [job] = run_to_the_end(lambda: jobs.flaky.enqueue("log", 1))
    records = [r for r in caplog.records if getattr(r, "job_id", None) == str(job.pk)]
    assert [r.status for r in records] == ["queued", "running", "retrying", "running", "succeeded"]
    failed = records[2]
    assert failed.levelname == "WARNING" and failed.attempt == 1
    assert failed.error == "ConnectionError: attempt 1 failed on purpose"
    assert failed.job_name == "tests.jobs.flaky" and failed.queue == "default"
    assert isinstance(records[-1].duration_ms, int)


def test_progress_is_stored_on_the_job():
    [job] = run_to_the_end(lambda: jobs.long_task.enqueue(3, 0))
    assert (job.progress_done, job.progress_total, job.progress_message) == (3, 3, "step 3")
    assert JobRun.objects.get(job=job).status == RunStatus.SUCCEEDED


def test_a_failing_signal_receiver_does_not_turn_success_into_failure():
    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a receiver's bug")

    signals.job_succeeded.connect(broken)
    signals.job_started.connect(broken)
    try:
        [job] = run_to_the_end(lambda: jobs.record.enqueue("once-only"))
    finally:
        signals.job_succeeded.disconnect(broken)
        signals.job_started.disconnect(broken)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert statuses(job) == [RunStatus.SUCCEEDED]
    assert Effect.objects.filter(key="once-only").count() == 1


def test_a_job_cancelled_while_running_is_not_retried_when_it_then_fails():
    [job] = run_to_the_end(lambda: jobs.fails_after_cancel.enqueue("cancel-then-fail"))
    assert job.status == JobStatus.CANCELLED
    assert Effect.objects.filter(key="cancel-then-fail").count() == 1
    assert statuses(job) == [RunStatus.FAILED]


def test_a_result_the_database_cannot_store_is_dead_at_once():
    [job] = run_to_the_end(jobs.returns_a_nul.enqueue)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)
    assert "NUL character" in job.error


def test_arguments_the_database_cannot_store_are_refused_at_enqueue():
    from django_bgjobs import PayloadError

    with pytest.raises(PayloadError, match="NUL character"):
        jobs.record.enqueue("a\x00b")
    with pytest.raises(PayloadError, match="lone surrogate"):
        jobs.record.enqueue("\ud800")
    assert not Job.objects.exists()


def test_system_exit_in_a_job_is_recorded_then_raised():
    with capture_jobs():
        job = jobs.exits.enqueue()
        with pytest.raises(SystemExit):
            run_attempt(str(job.pk), 1)
    job.refresh_from_db()
    assert job.status == JobStatus.RETRYING and job.error == "SystemExit: 3"
    assert statuses(job) == [RunStatus.FAILED]


def test_the_heartbeat_keeps_every_watched_attempt():
    from django_bgjobs.context import JobContext
    from django_bgjobs.execution import Heartbeat

    beat = Heartbeat()
    first, second = (
        JobContext(job_id=i, name="n", attempt=1, max_attempts=1, queue="q") for i in (1, 2)
    )
    beat._thread = __import__("threading").current_thread()  # no real thread for this check
    beat._pid = __import__("os").getpid()
    beat.watch(first)
    beat.watch(second)
    beat.unwatch(first)
    assert [ctx for ctx, _ in beat._watched.values()] == [second]


def test_async_jobs_report_progress_with_aprogress():
    [job] = run_to_the_end(lambda: jobs.async_with_progress.enqueue(3))
    assert (job.status, job.result, job.progress_done) == (JobStatus.SUCCEEDED, 3, 3)
