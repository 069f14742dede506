"""Django's tasks API (``django.tasks``; the django-tasks package on Django 5.2) on the
django-bgjobs backend: tasks written for Django, enqueued, run by a real worker, read back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from django_bgjobs.models import Job, JobStatus
from django_bgjobs.tasks import Backend, specs
from django_bgjobs.tasks.api import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
)
from django_bgjobs.tasks.results import exception_class_path
from tests import jobs, task_defs
from tests.conftest import wait_for
from tests.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)


def finished(result):  # type: ignore[no-untyped-def]
    """Refresh ``result`` until it has finished."""

    def done() -> bool:
        result.refresh()
        return result.is_finished

    wait_for(done, timeout=30, message=f"task {result.id} to finish")
    return result


@contextmanager
def enqueued_signals() -> Iterator[list[str]]:
    """The result ids Django's task_enqueued signal carries while inside."""
    sent: list[str] = []

    def listen(sender, task_result, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(task_result.id)

    task_enqueued.connect(listen)
    try:
        yield sent
    finally:
        task_enqueued.disconnect(listen)


def test_the_backend_says_what_it_supports():
    backend = task_backends["default"]
    assert isinstance(backend, Backend)
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority


def test_enqueue_writes_a_job_and_returns_a_ready_result():
    with enqueued_signals() as sent:
        result = task_defs.send_welcome.enqueue(7)
    job = Job.objects.get(pk=result.id)
    assert (job.name, job.queue, job.args) == ("tests.task_defs.send_welcome", "emails", [7])
    assert job.priority == specs.priority(50) == 7
    assert job.max_attempts == 2  # the backend's OPTIONS
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert (result.args, result.kwargs, result.backend) == ([7], {}, "default")
    assert result.enqueued_at == job.created_at and result.worker_ids == []
    assert sent == [result.id]
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_priorities_keep_their_order_over_bgjobs_ten():
    mapped = [specs.priority(p) for p in range(-100, 101)]
    assert mapped[0] == 0 and mapped[100] == 4 and mapped[-1] == 9
    assert mapped == sorted(mapped) and set(mapped) == set(range(10))


def test_an_enqueue_rolled_back_leaves_no_job_and_no_signal():
    with enqueued_signals() as sent:
        with pytest.raises(RuntimeError), transaction.atomic():
            result = task_defs.add.enqueue(1, 2)
            raise RuntimeError("the view failed")
        with transaction.atomic():
            kept = task_defs.add.enqueue(2, 2)
            assert sent == []  # not before the commit
    assert not Job.objects.filter(pk=result.id).exists()
    assert sent == [kept.id]


def test_invalid_tasks_and_options_are_refused_with_a_reason():
    with pytest.raises(InvalidTask, match="Queue 'nowhere' is not valid"):
        task_defs.add.using(queue_name="nowhere")
    with pytest.raises(InvalidTask, match=r"'outside' is not in BGJOBS\['QUEUES'\]"):
        task_defs.add.using(queue_name="outside")
    with pytest.raises(ImproperlyConfigured, match=r"BACKOFF'\] must be a dict"):
        Backend("other", {"OPTIONS": {"BACKOFF": "fast"}})
    with pytest.raises(ImproperlyConfigured, match="'RETRIES'.*knows BACKOFF, MAX_ATTEMPTS"):
        Backend("other", {"OPTIONS": {"RETRIES": 3}})
    with pytest.raises(InvalidTask, match="need the django-bgjobs backend"):
        from django_bgjobs.tasks import task

        task(backend="immediate", max_attempts=3)(task_defs.add.func)


def test_results_that_do_not_exist_say_so():
    backend = task_backends["default"]
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("not-a-uuid")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("0190d1c4-0000-7000-8000-000000000000")
    plain_job = jobs.noop.enqueue()  # a @bgjob job is not a django.tasks result
    with pytest.raises(TaskResultDoesNotExist, match="not a django.tasks task"):
        backend.get_result(str(plain_job.pk))


def test_threads_asking_for_a_task_not_imported_yet_all_find_it():
    """The registry imports the module of a task it does not know, by the job's name; a second
    thread asking meanwhile waits for that import instead of taking the job for unknown."""
    import sys
    import threading

    from django_bgjobs.registry import registry

    name = "tests.task_defs_late.late"
    assert "tests.task_defs_late" not in sys.modules
    found = []
    threads = [threading.Thread(target=lambda: found.append(registry.get(name))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and all(spec is not None and spec.name == name for spec in found)
    assert registry.get("tests.task_defs_late.nothing_here") is None


def test_a_long_traceback_keeps_its_last_line():
    from django_bgjobs.states.base import cut

    trace = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "tests.E: the end\n"
    kept = cut(trace)
    assert (
        len(kept) <= 10_000 and kept.startswith("Traceback") and kept.endswith("tests.E: the end\n")
    )
    assert exception_class_path(kept) == "builtins.Exception"  # tests.E does not exist
    assert "(truncated)" in kept


def test_exception_class_paths_are_read_from_the_traceback():
    trace = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        "tests.task_defs.Declined: declined x\nnote: a hint, not the exception\n"
    )
    assert exception_class_path(trace) == "tests.task_defs.Declined"
    assert exception_class_path("ValueError: bad") == "builtins.ValueError"
    assert exception_class_path("") == "builtins.Exception"


@pytest.mark.worker
def test_a_task_runs_on_the_worker_and_its_result_reads_back(worker):
    result = finished(task_defs.add.enqueue(2, 3))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5 and result.errors == []
    assert result.attempts == 1 and result.worker_ids[0].split(":")[-1].isdigit()
    assert result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert task_defs.add.get_result(result.id).return_value == 5


@pytest.mark.worker
def test_django_signals_are_sent_by_the_worker(worker):
    result = finished(task_defs.send_welcome.enqueue(11))
    assert result.return_value == {"sent_to": 11}
    wait_for(lambda: Effect.objects.filter(key=f"finished:{result.id}:SUCCESSFUL").exists())
    assert Effect.objects.filter(key=f"started:{result.id}:RUNNING").exists()


@pytest.mark.worker
def test_a_task_that_takes_context_gets_its_result_and_attempt(worker):
    result = finished(task_defs.remembers.enqueue("ctx-1"))
    assert result.return_value == {"id": result.id, "attempt": 1}
    effect = Effect.objects.get(key="ctx-1")
    assert (effect.job_id, effect.attempt) == (result.id, 1)


@pytest.mark.worker
def test_an_async_task_runs(worker):
    result = finished(task_defs.sleeps_async.enqueue(0.01))
    assert result.return_value == "awake"


@pytest.mark.worker
def test_a_deferred_task_waits_for_its_time(worker):
    due = timezone.now() + timedelta(seconds=1.5)
    result = task_defs.add.using(run_after=due).enqueue(1, 1)
    assert Job.objects.get(pk=result.id).status == JobStatus.SCHEDULED
    assert task_defs.add.get_result(result.id).status == TaskResultStatus.READY
    finished(result)
    assert result.started_at >= due and result.return_value == 2


@pytest.mark.worker
def test_a_failing_task_is_retried_then_failed_with_every_error(worker):
    result = finished(task_defs.always_declines.enqueue("declines-1"))
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3 == Effect.objects.filter(key="declines-1").count()
    assert [error.exception_class for error in result.errors] == [task_defs.Declined] * 3
    assert "declined declines-1" in result.errors[-1].traceback
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value
    wait_for(lambda: Effect.objects.filter(key=f"finished:{result.id}:FAILED").exists())


@pytest.mark.worker
def test_the_backoff_function_decides_whether_and_when_to_retry(worker):
    result = finished(task_defs.declines_once.enqueue("once-1"))
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    # It saw this attempt's error, and the result as failed.
    assert Effect.objects.filter(key="backoff:Declined:1:FAILED").exists()
    again = finished(task_defs.succeeds_on_third.enqueue("third-1"))
    assert (again.status, again.return_value, again.attempts) == ("SUCCESSFUL", 3, 3)
    assert len(again.errors) == 2


@pytest.mark.worker
def test_a_backoff_function_that_fails_or_returns_a_timedelta_still_retries(worker):
    broken = finished(task_defs.fails_with_a_broken_backoff.enqueue("broken-1"))
    assert (broken.status, broken.attempts) == (TaskResultStatus.FAILED, 2)  # default backoff
    timed = finished(task_defs.retried_after_a_timedelta.enqueue("timed-1"))
    assert (timed.status, timed.attempts) == (TaskResultStatus.FAILED, 2)
    assert Effect.objects.filter(key="timed-1").count() == 2
