"""enqueue(): bad payloads fail loudly, rows follow the caller's transaction, keys deduplicate."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from django_bgjobs import PayloadError, enqueue_many
from django_bgjobs.models import Job, JobStatus
from django_bgjobs.testing import capture_jobs
from tests import jobs

pytestmark = pytest.mark.django_db


def test_enqueue_returns_a_queued_handle_and_publishes_after_commit(
    django_capture_on_commit_callbacks,
):
    with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True):
        job = jobs.add.enqueue(1, 2)
        assert captured.jobs == []  # nothing is published inside the transaction
    assert (job.status, job.name, job.queue, job.args, job.priority) == (
        JobStatus.QUEUED,
        "tests.jobs.add",
        "emails",
        [1, 2],
        5,
    )
    assert captured.jobs == [job]
    assert Job.objects.get(pk=job.pk).max_attempts == 2


def test_rollback_leaves_no_row_and_publishes_nothing(django_capture_on_commit_callbacks):
    with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True) as cbs:
        with pytest.raises(RuntimeError), transaction.atomic():
            jobs.add.enqueue(1, 2)
            raise RuntimeError("the view failed")
    assert cbs == [] and captured.jobs == []
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((object(), 1), {}, "argument 'a' is a object, which is not JSON-serializable"),
        ((1, {"when": timezone.now()}), {}, r"argument 'b'\['when'\] is a datetime.*isoformat"),
        ((1, {3: "x"}), {}, "has the key 3; JSON object keys must be strings"),
        ((1, float("nan")), {}, "JSON cannot represent"),
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"c": 2}, "unexpected keyword argument 'c'"),
    ],
)
def test_bad_payload_raises_naming_the_argument_and_inserts_nothing(args, kwargs, message):
    with pytest.raises(PayloadError, match=message) as info:
        jobs.add.enqueue(*args, **kwargs)
    assert isinstance(info.value, TypeError)
    assert not Job.objects.exists()


def test_a_model_instance_gets_the_ids_hint(django_user_model):
    user = django_user_model.objects.create(username="ann")
    with pytest.raises(PayloadError, match=r"is a User.*Pass model ids \(obj.pk\)"):
        jobs.add.enqueue(user, 1)


def test_delay_and_run_after_make_a_scheduled_job_that_is_not_published(
    django_capture_on_commit_callbacks,
):
    with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True):
        later = jobs.noop.using(delay=timedelta(minutes=5)).enqueue()
        at = timezone.now() + timedelta(hours=1)
        exact = jobs.noop.using(run_after=at).enqueue()
        past = jobs.noop.using(run_after=timezone.now() - timedelta(seconds=1)).enqueue()
    assert later.status == exact.status == JobStatus.SCHEDULED
    assert exact.run_after == at and later.published_at is None
    assert past.status == JobStatus.QUEUED
    assert captured.jobs == [past]


def test_naive_run_after_is_refused():
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        jobs.noop.using(run_after=datetime(2030, 1, 1)).enqueue()


def test_enqueue_many_is_one_insert_and_one_publish_batch(
    django_assert_num_queries,
    django_capture_on_commit_callbacks,
):
    batches = []
    with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True):
        from django_bgjobs.celery import broker

        original = broker._interceptor
        broker._interceptor = lambda refs: (batches.append(len(refs)), original(refs))
        # One statement: a multi-row INSERT, or on PostgreSQL a COPY (which Django's query log
        # does not see).
        with django_assert_num_queries(0 if connection.vendor == "postgresql" else 1):
            created = enqueue_many(jobs.add.prepare(i, i) for i in range(100))
    assert len(created) == 100 and batches == [100]
    assert len(captured.jobs) == 100
    assert Job.objects.count() == 100


def test_many_jobs_copied_in_read_back_as_they_were_written(django_capture_on_commit_callbacks):
    """On PostgreSQL, COPY_FROM rows and more go in by COPY: every field as an INSERT writes it."""
    payloads = [
        {"n": i, "text": "zażółć ✓", "nested": [None, 1.5, {"ok": True}]} for i in range(60)
    ]
    with capture_jobs() as captured:
        with django_capture_on_commit_callbacks(execute=True):
            created = enqueue_many(
                jobs.record.using(priority=i % 10, queue="slow").prepare(f"copied {i}")
                for i in range(60)
            ) + enqueue_many(jobs.echo.prepare(p) for p in payloads)
        assert len(captured.jobs) == 120
        captured.run_all()
    stored = {job.pk: job for job in Job.objects.all()}
    for job in created:
        row = stored[job.pk]
        assert (row.name, row.queue, row.priority, row.args, row.kwargs) == (
            job.name,
            job.queue,
            job.priority,
            job.args,
            job.kwargs,
        )
        assert row.created_at == job.created_at and row.status == JobStatus.SUCCEEDED
    assert [stored[j.pk].result for j in created[60:]] == payloads


def test_a_copy_that_breaks_a_constraint_raises_djangos_integrity_error():
    from django.db import IntegrityError

    from django_bgjobs import _sql

    def rows(n: int) -> list[Job]:
        return [
            Job(name="tests.jobs.noop", queue="default", max_attempts=1, created_at=timezone.now())
            for _ in range(n)
        ]

    first = rows(60)
    _sql.insert_rows([first], "default")
    clash = rows(60)
    clash[30].pk = first[0].pk
    with pytest.raises(IntegrityError), transaction.atomic():
        _sql.insert_rows([clash], "default")
    assert Job.objects.count() == 60


def test_enqueue_many_validates_every_call_before_inserting_any():
    with pytest.raises(PayloadError):
        enqueue_many([jobs.add.prepare(1, 1), jobs.add.prepare(1, object())])
    assert not Job.objects.exists()


def test_idempotency_key_returns_the_existing_job_within_the_window():
    first = jobs.add.using(idempotency_key="welcome:42").enqueue(1, 1)
    second = jobs.add.using(idempotency_key="welcome:42").enqueue(1, 1)
    other_name = jobs.noop.using(idempotency_key="welcome:42").enqueue()
    assert second.pk == first.pk and other_name.pk != first.pk
    assert Job.objects.filter(name="tests.jobs.add").count() == 1


def test_idempotency_key_is_released_after_the_window():
    old = jobs.add.using(idempotency_key="k").enqueue(1, 1)
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    new = jobs.add.using(idempotency_key="k").enqueue(1, 1)
    assert new.pk != old.pk
    assert Job.objects.get(pk=new.pk).idempotency_key == "k"
    assert Job.objects.get(pk=old.pk).idempotency_key is None


def test_idempotency_key_inside_enqueue_many():
    created = enqueue_many(
        [
            jobs.add.using(idempotency_key="a").prepare(1, 1),
            jobs.add.using(idempotency_key="a").prepare(1, 1),
            jobs.add.prepare(2, 2),
        ]
    )
    assert created[0].pk == created[1].pk != created[2].pk
    assert Job.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_with_one_key_make_one_job():
    """Eight threads, each in its own transaction, race on one key: the constraint decides."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    barrier = threading.Barrier(8)
    results: list[str] = []

    def enqueue() -> None:
        try:
            with transaction.atomic():
                barrier.wait()
                job = jobs.add.using(idempotency_key="race").enqueue(1, 1)
                results.append(str(job.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    with capture_jobs():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert Job.objects.filter(idempotency_key="race").count() == 1


def test_ids_made_in_one_process_increase_even_within_a_millisecond():
    """Jobs of one key go by priority, then id: ids must follow the order of the enqueues,
    though many share a millisecond."""
    from django_bgjobs._ids import uuid7

    ids = [uuid7() for _ in range(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7} and {i.variant for i in ids} == {"specified in RFC 4122"}


@pytest.mark.django_db(transaction=True)
def test_jobs_of_a_key_enqueued_within_a_millisecond_go_in_enqueue_order():
    from tests import flow_jobs

    with capture_jobs() as captured:
        holder, *waiting = (flow_jobs.sync_customer.enqueue(41, n) for n in range(6))
        assert [job.pk for job in captured.jobs] == [holder.pk]
        captured.run_all()
    order = list(
        Job.objects.filter(pk__in=[holder.pk, *[j.pk for j in waiting]])
        .order_by("started_at")
        .values_list("pk", flat=True)
    )
    assert order == [holder.pk, *[j.pk for j in waiting]]
