"""End to end against a real Celery worker process, on the configured database and broker."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from tests import jobs
from tests.conftest import REPO, wait_for
from tests.models import Effect

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def runs(job: Job) -> list[str]:
    return list(JobRun.objects.filter(job=job).order_by("attempt").values_list("status", flat=True))


def test_a_job_runs_on_the_worker_and_its_attempt_is_recorded(worker):
    job = jobs.add.enqueue(2, 3)
    assert job.status == JobStatus.QUEUED
    job.wait_until_finished()
    assert (job.status, job.result, job.attempts) == (JobStatus.SUCCEEDED, 5, 1)
    run = job.runs.get()
    assert run.status == RunStatus.SUCCEEDED
    assert run.worker.endswith(tuple(str(pid) for pid in worker.children()))
    assert run.duration_ms is not None and job.started_at <= job.finished_at


def test_failures_retry_with_backoff_until_success(worker):
    job = jobs.flaky.enqueue("flaky-1", 2).wait_until_finished()
    assert (job.status, job.result, job.attempts) == (JobStatus.SUCCEEDED, "ok after 3", 3)
    assert runs(job) == ["failed", "failed", "succeeded"]
    assert "attempt 1 failed on purpose" in job.runs.first().error
    assert "ConnectionError" in job.runs.first().traceback


def test_a_job_that_always_fails_is_dead_after_exactly_max_attempts(worker):
    job = jobs.always_fails.enqueue("doomed").wait_until_finished()
    assert job.status == JobStatus.DEAD
    assert Effect.objects.filter(key="doomed").count() == 3 == job.max_attempts
    assert runs(job) == ["failed"] * 3
    assert job.error == "ValueError: this job always fails"


def test_delayed_job_waits_in_the_database_and_runs_once(worker):
    job = jobs.record.using(delay=timedelta(seconds=1.5)).enqueue("later")
    assert job.status == JobStatus.SCHEDULED
    job.wait_until_finished()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.started_at - job.created_at) >= timedelta(seconds=1.5)
    assert Effect.objects.filter(key="later").count() == 1


def test_rolled_back_enqueue_never_runs_and_committed_one_does(worker):
    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.record.enqueue("rolled-back")
        raise RuntimeError("the view failed")
    with transaction.atomic():
        kept = jobs.record.enqueue("committed")
    kept.wait_until_finished()
    assert Effect.objects.filter(key="committed").count() == 1
    assert not Job.objects.filter(args=["rolled-back"]).exists()
    assert not Effect.objects.filter(key="rolled-back").exists()


def test_cancelling_a_running_job_stops_it_at_its_next_progress_report(worker):
    job = jobs.long_task.enqueue(200, 0.05)
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_done, message="progress reported")
    assert job.cancel() is True
    job.wait_until_finished()
    assert job.status == JobStatus.CANCELLED
    assert job.progress_done < 200
    assert runs(job) == ["cancelled"]


def test_unknown_job_name_goes_dead_and_the_worker_keeps_serving(worker):
    from django_bgjobs.celery.publisher import publish_on_commit

    ghost = Job.objects.create(
        name="shop.jobs.renamed_long_ago",
        queue="default",
        status=JobStatus.QUEUED,
        max_attempts=3,
        created_at=timezone.now(),
    )
    publish_on_commit([ghost])
    ghost.wait_until_finished()
    assert ghost.status == JobStatus.DEAD
    assert "unknown job 'shop.jobs.renamed_long_ago'" in ghost.error
    assert ghost.attempts == 1
    assert jobs.add.enqueue(1, 1).wait_until_finished().result == 2


def test_a_poison_job_that_kills_its_worker_ends_dead_after_max_attempts(worker):
    job = jobs.killer.enqueue("poison")
    job.wait_until_finished(timeout=60)
    assert job.status == JobStatus.DEAD
    assert Effect.objects.filter(key="poison").count() == job.max_attempts == 2
    assert runs(job) == ["lost", "lost"]
    assert "lost" in job.error
    assert worker.proc.poll() is None  # the worker itself lives on
    assert jobs.add.enqueue(2, 2).wait_until_finished().result == 4


def test_timeout_is_enforced_and_retried(worker):
    job = jobs.too_slow.enqueue().wait_until_finished(timeout=30)
    assert job.status == JobStatus.DEAD
    assert runs(job) == ["failed", "failed"]
    assert "timeout" in job.error


def _web_process(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a separate Django process on the test database."""
    from django.db import connection

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "BGJOBS_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
            "PYTHONPATH": str(REPO),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_broker_down_at_enqueue_the_call_succeeds_fast_and_the_job_runs_later(worker):
    # This web process's broker refuses connections; the worker's broker is fine.
    result = _web_process(
        "import time\n"
        "from tests.jobs import record\n"
        "started = time.perf_counter()\n"
        "job = record.enqueue('broker-was-down')\n"
        "print(job.pk, job.status, round(time.perf_counter() - started, 3))",
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
    )
    job_id, status, seconds = result.stdout.split()[-3:]
    assert status == "queued"
    assert float(seconds) < 1.0, "enqueue must not hang on a dead broker"
    assert "could not publish 1 job(s)" in result.stderr
    job = Job.objects.get(pk=job_id).wait_until_finished()
    assert job.status == JobStatus.SUCCEEDED
    assert Effect.objects.filter(key="broker-was-down").count() == 1


def test_a_process_that_enqueues_and_exits_at_once_has_published(no_session_worker):
    """The message is sent by the process's publisher thread, beside the call: a script that
    exits right after enqueueing still sends it (the thread is flushed at exit), so the job
    does not wait for a dispatcher's REPUBLISH_AFTER."""
    from django_bgjobs.celery.broker import queue_depth

    before = queue_depth("default")
    assert before is not None
    result = _web_process(
        "from tests.jobs import record\n"
        "from django_bgjobs.celery import publisher\n"
        "job = record.enqueue('published-at-exit')\n"
        "print(job.pk, publisher._publisher._unsent)\n"
    )
    job_id, unsent_at_return = result.stdout.split()[-2:]
    print(f"messages not yet sent when enqueue() returned: {unsent_at_return}")
    assert queue_depth("default") == before + 1
    assert Job.objects.get(pk=job_id).status == JobStatus.QUEUED


def test_a_forked_child_publishes_through_a_thread_of_its_own(no_session_worker):
    """A pre-forking server (gunicorn --preload) forks after the parent has published: the
    child starts its own publisher thread, and its messages are sent before it exits."""
    from django_bgjobs.celery.broker import queue_depth

    before = queue_depth("default")
    assert before is not None
    result = _web_process(
        "import os, sys\n"
        "from django.db import connections\n"
        "from tests.jobs import record\n"
        "from django_bgjobs.celery import publisher\n"
        "record.enqueue('before the fork')\n"
        "assert publisher.flush()\n"
        "connections.close_all()  # as a pre-forking server does: no shared connection\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    record.enqueue('in the child')\n"
        "    sys.exit(0)  # exit handlers run: the child's thread is flushed\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child exit', os.waitstatus_to_exitcode(status))\n"
    )
    assert "child exit 0" in result.stdout
    assert queue_depth("default") == before + 2


def test_publish_in_background_off_sends_the_message_inside_the_call(no_session_worker):
    from django.test import override_settings

    from django_bgjobs.celery.broker import queue_depth

    before = queue_depth("default")
    assert before is not None
    with override_settings(BGJOBS={**settings.BGJOBS, "PUBLISH_IN_BACKGROUND": False}):
        jobs.record.enqueue("inline")
        assert queue_depth("default") == before + 1  # no flush needed: sent in the call


def test_a_crash_between_commit_and_publish_loses_nothing(worker):
    out = _web_process(
        "import os\n"
        "from django.db import transaction\n"
        "from tests.jobs import record\n"
        "with transaction.atomic():\n"
        "    transaction.on_commit(lambda: os._exit(0))  # dies right after COMMIT\n"
        "    job = record.enqueue('crash-after-commit')\n"
        "    print(job.pk, flush=True)\n"
    )
    job = Job.objects.get(pk=out.stdout.split()[-1]).wait_until_finished(timeout=30)
    assert job.status == JobStatus.SUCCEEDED
    assert Effect.objects.filter(key="crash-after-commit").count() == 1


def test_a_duplicated_message_runs_the_job_once(worker):
    from django_bgjobs.celery.broker import publish

    stale_before = worker.log_text().count("'stale'")
    job = jobs.record.enqueue("dup")
    ref = (job.pk, 1, job.queue, job.priority, job.name)
    publish([ref, ref, ref])
    job.wait_until_finished()
    wait_for(
        lambda: worker.log_text().count("'stale'") >= stale_before + 3,
        message="the three duplicates to be dropped",
    )
    assert Effect.objects.filter(key="dup").count() == 1
    assert runs(job) == ["succeeded"]


def test_workers_keep_their_database_connections_between_jobs(worker):
    """Celery's Django fix-up would reconnect for every task; bgjobs keeps connections."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("backend pids are a PostgreSQL notion")
    done = [jobs.database_backend_pid.enqueue().wait_until_finished() for _ in range(10)]
    assert all(job.status == JobStatus.SUCCEEDED for job in done)
    assert len({job.result for job in done}) <= worker.concurrency


def test_the_projects_own_celery_worker_runs_jobs_without_listing_queues(worker):
    """`celery -A proj worker`, no -Q: Celery alone would consume only its "celery" queue."""
    import sys
    from pathlib import Path

    from tests.conftest import WorkerProcess

    worker.stop()  # so that only the project's worker can take the job
    project = WorkerProcess(
        worker.db_name,
        Path(worker.log_path).with_name("project-worker.log"),
        command=[
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.project_celery",
            "worker",
            "--concurrency",
            "1",
            "--loglevel",
            "info",
            "--hostname",
            "project@%h",
        ],
    )
    project.start()
    try:
        job = jobs.add.enqueue(20, 22).wait_until_finished()
        assert (job.status, job.result) == (JobStatus.SUCCEEDED, 42)
        assert job.worker.endswith(tuple(str(pid) for pid in project.children()))
    finally:
        project.stop()
        worker.start()
