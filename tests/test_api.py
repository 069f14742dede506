"""The job status API: owner recorded at enqueue, who may read a job, what it shows, the schema."""

from __future__ import annotations

import uuid
import warnings

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_bgjobs import enqueue_many
from django_bgjobs.models import Job, JobStatus
from django_bgjobs.testing import capture_jobs
from tests import jobs

pytestmark = pytest.mark.django_db


def url(job: Job | uuid.UUID) -> str:
    return reverse("bgjobs:job-status", args=[getattr(job, "pk", job)])


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("owner", password="x")


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user("other", password="x")


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    return user


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


# --- the owner, recorded at enqueue --------------------------------------------------------------


def test_using_owner_records_the_user_in_the_same_insert(owner):
    with CaptureQueriesContext(connection) as queries:
        job = jobs.add.using(owner=owner).enqueue(1, 2)
    assert len(queries) == 1 and queries[0]["sql"].startswith("INSERT")
    assert Job.objects.get(pk=job.pk).owner_id == owner.pk == job.owner_id


def test_owner_by_primary_key_and_in_enqueue_many(owner):
    first, second = enqueue_many(
        [
            jobs.add.using(owner=owner.pk).prepare(1, 2),
            jobs.add.prepare(3, 4),
        ]
    )
    assert dict(Job.objects.values_list("pk", "owner_id")) == {first.pk: owner.pk, second.pk: None}


def test_owner_with_an_idempotency_key(owner):
    job = jobs.add.using(owner=owner, idempotency_key="k").enqueue(1, 2)
    again = jobs.add.using(owner=owner, idempotency_key="k").enqueue(1, 2)
    assert again.pk == job.pk and Job.objects.get(pk=job.pk).owner_id == owner.pk


def test_an_anonymous_user_means_no_owner():
    job = jobs.add.using(owner=AnonymousUser()).enqueue(1, 2)
    assert Job.objects.get(pk=job.pk).owner_id is None


def test_bad_owners_are_refused(django_user_model):
    with pytest.raises(ValueError, match="unsaved user"):
        jobs.add.using(owner=django_user_model(username="nobody"))
    with pytest.raises(TypeError, match="owner must be a User"):
        jobs.add.using(owner=Permission.objects.first())
    with pytest.raises(TypeError, match="owner must be a user or a user's primary key"):
        jobs.add.using(owner=1.5)
    assert not Job.objects.exists()


def test_deleting_the_owner_keeps_the_job(owner):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    owner.delete()
    assert Job.objects.get(pk=job.pk).owner_id is None


# --- who may read a job --------------------------------------------------------------------------


def test_the_owner_reads_their_job(owner):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    response = client_for(owner).get(url(job))
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(job.pk) and response.json()["status"] == "queued"
    assert "no-store" in response["Cache-Control"]


def test_staff_who_may_view_jobs_read_any_job(owner, staff, django_user_model):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    unowned = jobs.add.enqueue(3, 4)
    assert client_for(staff).get(url(job)).status_code == 200
    assert client_for(staff).get(url(unowned)).status_code == 200
    superuser = django_user_model.objects.create_superuser("root", password="x")
    assert client_for(superuser).get(url(job)).status_code == 200


def test_another_user_gets_404_like_a_missing_job(owner, other):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    unowned = jobs.add.enqueue(3, 4)
    responses = [client_for(other).get(url(target)) for target in (job, unowned, uuid.uuid4())]
    assert [r.status_code for r in responses] == [404, 404, 404]
    # The same answer whether the job exists or not: ids cannot be probed.
    assert responses[0].json() == responses[2].json()


def test_staff_without_the_view_permission_see_only_their_own(owner, django_user_model):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    clerk = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    own = jobs.add.using(owner=clerk).enqueue(5, 6)
    assert client_for(clerk).get(url(job)).status_code == 404
    assert client_for(clerk).get(url(own)).status_code == 200


def test_anonymous_is_refused_by_drf_authentication(owner):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    assert client_for(None).get(url(job)).status_code in (401, 403)


def test_a_session_login_works(client, owner):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    client.force_login(owner)
    assert client.get(url(job)).json()["status"] == "queued"


def test_one_query_per_request(owner, django_assert_num_queries):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    api = client_for(owner)
    with django_assert_num_queries(1):
        assert api.get(url(job)).status_code == 200


def test_only_get(owner):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    api = client_for(owner)
    assert api.post(url(job), {}).status_code == 405
    assert api.delete(url(job)).status_code == 405
    assert Job.objects.filter(pk=job.pk).exists()


# --- what it shows -------------------------------------------------------------------------------


def test_a_succeeded_job_shows_its_result_and_times(owner, django_capture_on_commit_callbacks):
    with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True):
        job = jobs.add.using(owner=owner).enqueue(20, 22)
    captured.run_all()
    body = client_for(owner).get(url(job)).json()
    assert body["status"] == "succeeded" and body["finished"] is True
    assert body["result"] == 42 and body["error"] == ""
    assert body["attempts"] == 1 and body["max_attempts"] == 2
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]
    assert "args" not in body and "kwargs" not in body  # arguments may hold redacted values


def test_a_dead_job_shows_its_error_and_no_result(owner, django_capture_on_commit_callbacks):
    with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True):
        job = jobs.gives_up.using(owner=owner).enqueue()
    captured.run_all()
    body = client_for(owner).get(url(job)).json()
    assert body["status"] == "dead" and body["finished"] is True
    assert "the card was declined" in body["error"] and body["result"] is None


def test_the_result_is_shown_only_once_succeeded(owner):
    job = jobs.add.using(owner=owner).enqueue(1, 2)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, result={"partial": True})
    assert client_for(owner).get(url(job)).json()["result"] is None


def test_progress(owner):
    job = jobs.long_task.using(owner=owner).enqueue(3, 0)
    api = client_for(owner)
    body = api.get(url(job)).json()
    assert body["progress"] is None and body["finished"] is False
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=timezone.now(),
        progress_done=2,
        progress_total=3,
        progress_message="step 2",
    )
    body = api.get(url(job)).json()
    assert body["progress"] == {"done": 2, "total": 3, "message": "step 2"}
    assert body["status"] == "running" and body["started_at"] is not None


def test_a_scheduled_job_shows_when_it_runs(owner):
    job = jobs.add.using(owner=owner, delay=600).enqueue(1, 2)
    body = client_for(owner).get(url(job)).json()
    assert body["status"] == "scheduled" and body["run_after"] is not None
    assert set(body) == {
        "id",
        "name",
        "queue",
        "status",
        "finished",
        "attempts",
        "max_attempts",
        "progress",
        "result",
        "error",
        "created_at",
        "run_after",
        "started_at",
        "finished_at",
    }


# --- the OpenAPI schema --------------------------------------------------------------------------


def test_the_schema_view_serves_our_api_where_it_is_mounted(client):
    response = client.get(reverse("bgjobs:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert list(schema["paths"]) == ["/bgjobs/jobs/{job_id}/"]
    operation = schema["paths"]["/bgjobs/jobs/{job_id}/"]["get"]
    assert operation["operationId"] == "bgjobs_job_status"
    assert operation["parameters"][0]["schema"] == {"type": "string", "format": "uuid"}
    assert set(operation["responses"]) == {"200", "404"}
    status = schema["components"]["schemas"]["JobStatus"]
    assert {"status", "progress", "result", "error", "finished"} <= set(status["properties"])
    assert set(status["required"]) >= {"id", "status", "progress", "result"}


def test_the_schema_generates_without_warnings_for_our_views():
    from django.urls import include, path
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("bgjobs/", include("django_bgjobs.api.urls"))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema = generator.get_schema(request=None, public=True)
    assert not GENERATOR_STATS, f"drf-spectacular warned or erred: {GENERATOR_STATS}"
    validate_schema(schema)  # a valid OpenAPI 3 document
    assert "/bgjobs/jobs/{job_id}/" in schema["paths"]
