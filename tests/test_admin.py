"""The admin: staff only; lists, filters and searches jobs; shows attempts; retry and cancel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_bgjobs.admin.widgets import RUN_STATUS_COLOURS, STATUS_COLOURS
from django_bgjobs.models import Job, JobStatus, RunStatus
from django_bgjobs.testing import capture_jobs
from tests import jobs

# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]

CHANGELIST = reverse("admin:django_bgjobs_job_changelist")


@pytest.fixture
def finished_jobs():  # type: ignore[no-untyped-def]
    with capture_jobs() as captured:
        jobs.add.enqueue(1, 2)
        jobs.always_fails.enqueue("dead-one")
        captured.run_all()
    jobs.noop.using(delay=timedelta(hours=1), idempotency_key="later:1").enqueue()
    return {job.name: job for job in Job.objects.all()}


def test_every_status_has_a_colour():
    assert set(STATUS_COLOURS) == set(JobStatus)
    assert set(RUN_STATUS_COLOURS) == set(RunStatus)


def test_anonymous_and_non_staff_users_are_sent_to_login(client, django_user_model):
    assert client.get(CHANGELIST).status_code == 302
    django_user_model.objects.create_user("u", password="p")
    client.login(username="u", password="p")
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response.url


def listed(client, **params) -> set[str]:  # type: ignore[no-untyped-def]
    """The job names in the changelist's result rows (not in the filter sidebar)."""
    html = client.get(CHANGELIST, params).content.decode()
    return set(re.findall(r'<td class="field-name">([^<]+)</td>', html))


def test_list_filters_and_search(admin_client, finished_jobs):
    assert listed(admin_client) == {"tests.jobs.add", "tests.jobs.always_fails", "tests.jobs.noop"}
    assert listed(admin_client, status__exact="dead") == {"tests.jobs.always_fails"}
    assert listed(admin_client, queue="emails") == {"tests.jobs.add"}
    assert listed(admin_client, name="tests.jobs.noop") == {"tests.jobs.noop"}
    assert listed(admin_client, q="later:1") == {"tests.jobs.noop"}
    dead_job = finished_jobs["tests.jobs.always_fails"]
    assert listed(admin_client, q=str(dead_job.pk)) == {"tests.jobs.always_fails"}


def test_job_page_shows_every_attempt_with_its_error_and_traceback(admin_client, finished_jobs):
    job = finished_jobs["tests.jobs.always_fails"]
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[job.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("ValueError: this job always fails") >= 3
    assert "Traceback (most recent call last)" in html
    assert "3/3" in html or ">3<" in html


def test_retry_and_cancel_actions(admin_client, finished_jobs):
    dead = finished_jobs["tests.jobs.always_fails"]
    waiting = finished_jobs["tests.jobs.noop"]
    with capture_jobs() as captured:
        response = admin_client.post(
            CHANGELIST, {"action": "retry_jobs", "_selected_action": [str(dead.pk)]}, follow=True
        )
        assert "1 job(s) queued again" in response.content.decode()
        assert captured.names() == ["tests.jobs.always_fails"]
    response = admin_client.post(
        CHANGELIST, {"action": "cancel_jobs", "_selected_action": [str(waiting.pk)]}, follow=True
    )
    html = response.content.decode()
    assert "1 job(s) cancelled" in html
    assert Job.objects.get(pk=dead.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=waiting.pk).status == JobStatus.CANCELLED
    from django.contrib.admin.models import LogEntry

    logged = {(e.object_id, e.change_message) for e in LogEntry.objects.all()}
    assert logged == {
        (str(dead.pk), "Retried: queued again with a fresh budget."),
        (str(waiting.pk), "Cancelled."),
    }


def test_actions_need_their_permissions(client, django_user_model, finished_jobs):
    staff = django_user_model.objects.create_user("viewer", password="p", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.login(username="viewer", password="p")
    page = client.get(CHANGELIST).content.decode()
    assert listed(client) == {"tests.jobs.add", "tests.jobs.always_fails", "tests.jobs.noop"}
    assert "retry_jobs" not in page and "cancel_jobs" not in page
    staff.user_permissions.add(Permission.objects.get(codename="retry_job"))
    page = client.get(CHANGELIST).content.decode()
    assert "retry_jobs" in page and "cancel_jobs" not in page


def test_jobs_cannot_be_added_edited_or_deleted(admin_client, finished_jobs):
    assert admin_client.get(reverse("admin:django_bgjobs_job_add")).status_code == 403
    job = finished_jobs["tests.jobs.add"]
    assert (
        admin_client.get(reverse("admin:django_bgjobs_job_delete", args=[job.pk])).status_code
        == 403
    )
    job = finished_jobs["tests.jobs.add"]
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[job.pk]))
    assert 'name="_save"' not in page.content.decode()
