"""Failure paths against a real worker: a paused (zombie) worker, a pickle message, several
dispatchers at once."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone
from kombu import Queue

from django_bgjobs import states
from django_bgjobs.celery.app import get_celery_app
from django_bgjobs.dispatcher import Dispatcher
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from tests import jobs
from tests.conftest import wait_for
from tests.models import Effect

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_paused_worker_cannot_overwrite_the_attempt_that_replaced_it(worker):
    job = jobs.long_task.enqueue(30, 0.1)
    job = wait_for(
        lambda: Job.objects.filter(pk=job.pk, progress_done__gte=3).first(),
        message="the first attempt to make progress",
    )
    zombie = int(job.worker.rsplit(":", 1)[1])
    os.kill(zombie, signal.SIGSTOP)
    try:
        wait_for(
            lambda: Job.objects.get(pk=job.pk).attempts == 2,
            timeout=30,
            message="the lease to expire and attempt 2 to start elsewhere",
        )
    finally:
        os.kill(zombie, signal.SIGCONT)
    job.wait_until_finished(timeout=30)
    assert (job.status, job.result, job.attempts) == (JobStatus.SUCCEEDED, 30, 2)
    runs = wait_for(
        lambda: (
            list(
                JobRun.objects.filter(job=job).order_by("attempt").values_list("attempt", "status")
            )
            if JobRun.objects.filter(job=job, status=RunStatus.SUPERSEDED).exists()
            else None
        ),
        message="the zombie to report in",
    )
    assert runs == [(1, RunStatus.SUPERSEDED), (2, RunStatus.SUCCEEDED)]


def test_a_pickle_message_is_refused_and_never_executed(worker, tmp_path):
    canary = Path(tmp_path) / "pickle-was-executed"
    app = get_celery_app()
    with app.producer_or_acquire() as producer:
        producer.publish(
            {"payload": jobs.Canary(str(canary))},
            serializer="pickle",
            routing_key="default",
            exchange="",
            declare=[],
            headers={
                "task": "django_bgjobs.execute",
                "id": str(uuid.uuid4()),
                "lang": "py",
                "argsrepr": "",
                "kwargsrepr": "",
            },
        )
    wait_for(
        lambda: "Refusing to deserialize untrusted content of type pickle" in worker.log_text(),
        message="the refusal in the worker log",
    )
    assert not canary.exists()
    assert jobs.add.enqueue(3, 4).wait_until_finished().result == 7  # still serving


def test_concurrent_dispatchers_promote_each_due_job_once():
    """Four dispatcher passes at once over the same due jobs: SKIP LOCKED gives each row to one.

    The jobs are due in the far future and the passes look that far ahead, so the session
    worker's own dispatcher (which looks at now) stays out of it.
    """
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED splits the work on PostgreSQL; SQLite has one writer")
    far = timezone.now() + timezone.timedelta(days=3650)
    for _ in range(300):
        jobs.noop.using(run_after=far).enqueue()
    promoted: list[object] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def dispatch() -> None:
        try:
            barrier.wait()
            while batch := states.promote_due(timezone.now(), 20, due_by=far):
                with lock:
                    promoted.extend(job.pk for job in batch)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=dispatch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(promoted) == 300 == len(set(promoted))
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.QUEUED}


def test_a_backlog_is_not_republished_but_a_lost_message_is(worker):
    """Jobs on a queue nobody consumes wait in the broker: the dispatcher must not add a copy
    of each every REPUBLISH_AFTER. Once the broker has lost them (purged), it publishes again."""
    from datetime import timedelta

    from django_bgjobs.celery.broker import publish, queue_depth

    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    waiting = [
        Job.objects.create(
            name="tests.jobs.noop",
            queue=queue,
            status=JobStatus.QUEUED,
            max_attempts=1,
            created_at=timezone.now(),
            # As enqueue() does: a row never published is the session dispatcher's to publish.
            published_at=timezone.now(),
        )
        for _ in range(3)
    ]
    publish([(job.pk, 1, queue, 0, job.name) for job in waiting])
    assert queue_depth(queue) == 3
    old = timezone.now() - timedelta(hours=1)
    Job.objects.filter(queue=queue).update(published_at=old)
    states_now = Dispatcher().run_once()
    assert states_now.republished == 3 and queue_depth(queue) == 3  # checked, not copied
    app = get_celery_app()
    with app.connection_for_write() as conn:
        Queue(queue, channel=conn.default_channel).purge()  # the broker forgets them
    Job.objects.filter(queue=queue).update(published_at=old)
    Dispatcher().run_once()
    assert queue_depth(queue) == 3  # published again


def test_a_queue_that_lost_part_of_its_messages_gets_that_many_back(worker):
    """Three of five messages lost (the broker restarted with an old snapshot, a crash between
    commit and publish): the dispatcher publishes three again, not five, not none."""
    from datetime import timedelta

    from django_bgjobs.celery.broker import publish, queue_depth

    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    waiting = [
        Job.objects.create(
            name="tests.jobs.noop",
            queue=queue,
            status=JobStatus.QUEUED,
            max_attempts=1,
            created_at=timezone.now(),
            # As enqueue() does: a row never published is the session dispatcher's to publish.
            published_at=timezone.now(),
        )
        for _ in range(5)
    ]
    publish([(job.pk, 1, queue, 0, job.name) for job in waiting[3:]])  # 2 of 5 made it
    Job.objects.filter(queue=queue).update(published_at=timezone.now() - timedelta(hours=1))
    Dispatcher().run_once()
    assert queue_depth(queue) == 5


def test_jobs_survive_the_broker_being_wiped(worker):
    """Redis FLUSHDB (or a restart without persistence) while jobs are queued and running:
    every job still completes, once; the dispatcher republishes what the broker forgot."""
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("wipes a Redis database")
    import redis

    waiting = [jobs.long_task.enqueue(4, 0.1) for _ in range(12)]
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.RUNNING).exists(),
        message="the first jobs to start",
    )
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    for job in waiting:
        job.wait_until_finished(timeout=60)
        assert (job.status, job.result) == (JobStatus.SUCCEEDED, 4)
        assert JobRun.objects.filter(job=job, status=RunStatus.SUCCEEDED).count() == 1
    assert jobs.add.enqueue(1, 2).wait_until_finished().result == 3  # publishing works again


def test_database_connections_cut_repeatedly_lose_nothing(worker):
    """Every worker connection to PostgreSQL is terminated every 0.2 s for 4 s, while jobs run:
    afterwards every job has succeeded, none is stuck, and the worker is still serving."""
    if connection.vendor != "postgresql":
        pytest.skip("terminates PostgreSQL backends")
    import psycopg

    keys = [f"cut-{i}" for i in range(20)]
    waiting = [jobs.record.enqueue(key) for key in keys]
    waiting += [jobs.long_task.enqueue(8, 0.25) for _ in range(2)]
    mine = connection.connection.info.backend_pid
    admin = psycopg.connect(
        host=connection.settings_dict["HOST"] or "127.0.0.1",
        port=connection.settings_dict["PORT"] or 5432,
        user=connection.settings_dict["USER"],
        dbname="postgres",
        autocommit=True,
    )
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> %s AND pid <> pg_backend_pid()",
                (connection.settings_dict["NAME"], mine),
            )
            time.sleep(0.2)
    finally:
        admin.close()
    for job in waiting:
        job.wait_until_finished(timeout=90)
        assert job.status == JobStatus.SUCCEEDED, (job.name, job.status, job.error)
    for key in keys:
        assert Effect.objects.filter(key=key).count() >= 1  # at least once
    assert worker.proc.poll() is None
    assert jobs.add.enqueue(2, 5).wait_until_finished().result == 7


def test_no_broker_eta_or_countdown_is_ever_used(monkeypatch):
    """Delays and retry backoff live in the database; on Redis a broker ETA longer than the
    visibility timeout is redelivered and runs twice (kombu#337). Guard: never pass one."""
    from datetime import timedelta

    from celery.app.task import Task

    from django_bgjobs.celery.broker import publish
    from django_bgjobs.dispatcher import Dispatcher

    seen: list[dict[str, object]] = []
    real = Task.apply_async

    def spy(self, args=None, kwargs=None, **options):  # type: ignore[no-untyped-def]
        seen.append(options)
        return real(self, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", spy)
    job = jobs.record.using(delay=timedelta(milliseconds=1)).enqueue("eta-guard")
    jobs.flaky.using(priority=9).enqueue("eta-guard-2", 1)
    Job.objects.filter(pk=job.pk).update(run_after=timezone.now() - timedelta(seconds=1))
    Dispatcher().run_once()
    publish([(job.pk, 1, job.queue, 0, job.name)])
    assert seen and all("eta" not in o and "countdown" not in o for o in seen)


def test_a_dispatcher_on_a_database_missing_tables_says_to_migrate(monkeypatch, caplog):
    import threading

    from django.db import ProgrammingError

    dispatcher = Dispatcher()
    passes = threading.Event()

    def missing_table() -> None:
        passes.set()
        raise ProgrammingError('relation "django_bgjobs_message" does not exist')

    monkeypatch.setattr(dispatcher, "run_once", missing_table)
    with caplog.at_level("ERROR", logger="django_bgjobs.dispatcher"):
        dispatcher.start_thread()
        assert passes.wait(5)
        dispatcher.stop()
    assert any("manage.py migrate" in r.getMessage() for r in caplog.records)


def test_between_whole_passes_the_dispatcher_only_publishes_what_became_due(monkeypatch, settings):
    """A job due before the next whole pass gets a short pass of its own (promote and publish);
    republishing, leases and the other sweeps still run once per DISPATCH_INTERVAL."""
    from django_bgjobs.dispatcher import Sweep

    settings.BGJOBS = {**settings.BGJOBS, "DISPATCH_INTERVAL": 30}
    dispatcher = Dispatcher()
    passes: list[str] = []
    monkeypatch.setattr(dispatcher, "run_once", lambda: passes.append("whole") or Sweep(0, 0, 0))
    monkeypatch.setattr(dispatcher, "run_due", lambda: passes.append("due") or Sweep(0, 0, 0))
    monkeypatch.setattr(states, "next_due", timezone.now)  # something is always due
    dispatcher.start_thread()
    time.sleep(0.6)
    dispatcher.stop()
    assert passes[0] == "whole" and passes.count("whole") == 1
    assert passes.count("due") >= 5
