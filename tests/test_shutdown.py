"""Graceful shutdown: SIGTERM lets running jobs finish within SHUTDOWN_GRACE, then the worker
releases the rest to the queue (attempt recorded as `released`) and exits.

Real worker processes with a short grace period; SIGTERM goes to the main process only, as
Kubernetes sends it (and systemd with KillMode=mixed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from django_bgjobs import states
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.worker.shutdown import STOP_WAIT
from tests import flow_jobs as fj
from tests import jobs
from tests.conftest import WorkerProcess, wait_for
from tests.models import Effect

GRACE = 2.0
# Long enough that only the release (never a lease expiry or a republish by a dispatcher) can
# have given a running job to another worker within these tests.
SLOW = {"BGJOBS_TEST_LEASE": "30", "BGJOBS_TEST_REPUBLISH_AFTER": "60"}


def runs(job: Job) -> list[tuple[int, str]]:
    return list(JobRun.objects.filter(job=job).order_by("attempt").values_list("attempt", "status"))


@pytest.fixture
def start_worker(
    django_db_setup: None, no_session_worker: None
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start dedicated workers on the test database (stopped at the end if still running)."""
    started: list[WorkerProcess] = []

    def start(name: str, grace: float = GRACE) -> WorkerProcess:
        log = Path(settings.STATE_DIR) / f"shutdown-{name}.log"
        log.unlink(missing_ok=True)  # the assertions read this run's log only
        worker = WorkerProcess(
            str(connection.settings_dict["NAME"]),
            log,
            env={**SLOW, "BGJOBS_TEST_SHUTDOWN_GRACE": str(grace)},
        )
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def sigterm_and_wait(worker: WorkerProcess, timeout: float) -> tuple[int, float]:
    """SIGTERM to the worker's main process only; returns (exit code, seconds to exit)."""
    assert worker.proc is not None
    started = time.monotonic()
    os.kill(worker.proc.pid, signal.SIGTERM)
    try:
        code = worker.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"worker still running {timeout}s after SIGTERM; see {worker.log_path}"
        ) from None
    return code, time.monotonic() - started


def running(job: Job) -> Job:
    return wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).first(),
        message="the job to start",
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_a_short_job_finish_and_the_worker_exits_cleanly(start_worker):
    # Celery's own warm shutdown takes seconds, even when idle (up to ~6 s on the filesystem
    # broker): the point is that the worker does not wait out the grace period.
    grace = 20.0
    worker = start_worker("short", grace=grace)
    job = jobs.naps.enqueue("short", 1.0)
    running(job)
    code, seconds = sigterm_and_wait(worker, timeout=grace + 10)
    print(f"exited {seconds:.2f}s after SIGTERM (grace {grace}s)")
    job.refresh_from_db()
    assert (job.status, job.result, job.attempts) == (JobStatus.SUCCEEDED, 1, 1)
    assert runs(job) == [(1, RunStatus.SUCCEEDED)]
    assert code == 0
    assert seconds < grace, "the worker exits when its jobs are done, not at the grace's end"
    assert "released" not in worker.log_text()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_job_outliving_the_grace_is_released_and_runs_again_elsewhere(start_worker):
    first = start_worker("long")
    job = jobs.naps.enqueue("long", 60.0)  # max_attempts=1: a release must not spend it
    started = running(job)
    code, seconds = sigterm_and_wait(first, timeout=GRACE + 15)
    print(f"released and exited {seconds:.2f}s after SIGTERM (grace {GRACE}s)")
    # Released at the end of the grace period, the attempt interrupted, the worker gone: in
    # seconds, where a lease expiry would have taken LEASE_SECONDS (30 here) after it died.
    assert GRACE <= seconds < GRACE + STOP_WAIT + 8, seconds
    assert code == 0
    job.refresh_from_db()
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.QUEUED, 1, 2)
    assert job.lease_expires_at is None and job.published_at is not None
    (run,) = JobRun.objects.filter(job=job)
    assert (run.attempt, run.status, run.worker) == (1, RunStatus.RELEASED, started.worker)
    assert "SHUTDOWN_GRACE" in run.error
    log = first.log_text()
    assert "released 1 running job(s)" in log
    # The old attempt was interrupted and its outcome rejected by the fence: its task ended
    # (acknowledged) rather than its process dying with it.
    assert "'superseded'" in log and "WorkerLostError" not in log

    # The released job's message is waiting at the broker: the next worker runs it at once
    # (REPUBLISH_AFTER is 60 s here, so no dispatcher republished it).
    second = start_worker("next")
    ready = time.monotonic()
    job.wait_until_finished(timeout=20)
    assert time.monotonic() - ready < 10
    assert (job.status, job.result, job.attempts) == (JobStatus.SUCCEEDED, 2, 2)
    assert runs(job) == [(1, RunStatus.RELEASED), (2, RunStatus.SUCCEEDED)]
    assert sorted(Effect.objects.filter(key="long").values_list("attempt", flat=True)) == [1, 2]
    assert job.worker.endswith(tuple(str(pid) for pid in second.children()))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_attempt_that_will_not_stop_has_its_process_killed(start_worker):
    worker = start_worker("stubborn")
    job = jobs.ignores_interruptions.enqueue("stubborn", 60.0)
    running(job)
    # A killed pool process costs Celery's synchronous pool (the filesystem broker) its
    # worker_lost_wait (10 s) before the worker exits.
    code, seconds = sigterm_and_wait(worker, timeout=GRACE + STOP_WAIT + 25)
    print(f"killed and exited {seconds:.2f}s after SIGTERM (grace {GRACE}s)")
    assert code == 0
    assert "did not end its released attempt; killing it" in worker.log_text()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert runs(job) == [(1, RunStatus.RELEASED)]
    pid = Effect.objects.get(key="stubborn").pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_job_run_within_another_jobs_message_is_released_and_stopped_too(start_worker):
    """Under a concurrency limit the process that frees a place runs the key's next job within
    the same message (on PostgreSQL): no request of the worker names that job, yet the release
    must find its process and stop it."""
    worker = start_worker("in-line")
    first = fj.naps_in_line.enqueue("in-line", 0.0)
    second = fj.naps_in_line.enqueue("in-line", 60.0)
    running(second)
    code, seconds = sigterm_and_wait(worker, timeout=GRACE + 15)
    print(f"released and exited {seconds:.2f}s after SIGTERM (grace {GRACE}s)")
    assert GRACE <= seconds < GRACE + STOP_WAIT + 8, seconds
    assert code == 0
    assert "did not end its released attempt" not in worker.log_text()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == JobStatus.SUCCEEDED
    assert (second.status, second.attempts) == (JobStatus.QUEUED, 1)
    assert runs(second) == [(1, RunStatus.RELEASED)]
    effects = Effect.objects.filter(key__startswith="in-line")
    pids = dict(effects.values_list("job_id", "pid"))
    messages = {
        job_id: key.split("message=")[1] for key, job_id in effects.values_list("key", "job_id")
    }
    if connection.vendor == "postgresql":  # the hand-off; elsewhere the admission publishes
        assert messages[str(second.pk)] == str(first.pk), "run within the first job's message"
    with pytest.raises(ProcessLookupError):  # stopped, not left to run on
        os.kill(pids[str(second.pk)], 0)


# --- states.release, without a worker ----------------------------------------------------------


@pytest.mark.django_db
def test_release_is_fenced_by_status_and_attempt():
    job = jobs.naps.enqueue("fence", 0.0)
    claim = states.claim(str(job.pk), 1, "host:1")
    assert claim is not None
    assert states.release(job.pk, 2, "stale") is None  # not the running attempt
    released = states.release(job.pk, 1, "shutting down")
    assert released is not None
    assert (released.status, released.attempts, released.max_attempts) == (JobStatus.QUEUED, 1, 2)
    assert states.release(job.pk, 1, "twice") is None  # no longer running: changes nothing
    assert runs(job) == [(1, RunStatus.RELEASED)]
    # The released attempt reports late: rejected by the finish fence; the record stays.
    assert states.succeed(claim, "late") is False
    assert runs(job) == [(1, RunStatus.RELEASED)]
    assert JobRun.objects.get(job=job).error == "shutting down"
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.QUEUED, None)
    # The next attempt claims it as attempt 2 and its outcome counts.
    again = states.claim(str(job.pk), 2, "host:2")
    assert again is not None and states.succeed(again, "ok")
    assert runs(job) == [(1, RunStatus.RELEASED), (2, RunStatus.SUCCEEDED)]


@pytest.mark.django_db
def test_a_job_cancelled_while_running_is_cancelled_not_queued_when_released():
    job = jobs.naps.enqueue("cancel", 0.0)
    assert states.claim(str(job.pk), 1, "host:1") is not None
    assert job.cancel() is True  # asks the running attempt to stop
    released = states.release(job.pk, 1, "shutting down")
    assert released is not None and released.status == JobStatus.CANCELLED
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert runs(job) == [(1, RunStatus.RELEASED)]
