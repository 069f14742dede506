"""Signup hooks: a new user enqueues the registered jobs, after commit, once, never on rollback."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings

from django_bgjobs import JobConfigurationError, on_signup
from django_bgjobs.hooks import _registered, enqueue_signup_jobs
from django_bgjobs.models import Job
from django_bgjobs.testing import capture_jobs
from tests import jobs

# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]

SIGNUP = {"ON_SIGNUP": ["tests.jobs.record"], "QUEUES": ["default", "emails", "slow"]}


@override_settings(BGJOBS=SIGNUP)
def test_a_new_user_enqueues_the_listed_jobs_after_commit():
    with capture_jobs() as captured:
        with transaction.atomic():
            user = get_user_model().objects.create_user("ann", password="x")
            assert captured.jobs == []  # written, not yet published
            assert Job.objects.filter(args=[user.pk]).count() == 1
        assert captured.names() == ["tests.jobs.record"]
        [job] = captured.run_all()
    assert job.args == [user.pk] and job.idempotency_key == f"signup:{user.pk}"


@override_settings(BGJOBS=SIGNUP)
def test_a_rolled_back_signup_enqueues_nothing():
    with capture_jobs() as captured:
        with pytest.raises(RuntimeError), transaction.atomic():
            get_user_model().objects.create_user("bob", password="x")
            raise RuntimeError("the signup view failed after creating the user")
    assert captured.jobs == [] and not Job.objects.exists()


@override_settings(BGJOBS=SIGNUP)
def test_updating_a_user_or_a_second_signal_for_the_same_signup_adds_nothing():
    with capture_jobs():
        user = get_user_model().objects.create_user("cat", password="x")
        user.first_name = "Cat"
        user.save()
        enqueue_signup_jobs(user)  # what allauth's user_signed_up does after post_save
    assert Job.objects.count() == 1


@override_settings(BGJOBS=SIGNUP)
def test_allauth_signup_enqueues_once_with_post_save():
    from allauth.account.signals import user_signed_up

    with capture_jobs() as captured:
        with transaction.atomic():  # what allauth's signup view does
            user = get_user_model().objects.create_user("eve", password="x")
            user_signed_up.send(sender=get_user_model(), request=None, user=user)
    assert captured.names() == ["tests.jobs.record"]
    assert Job.objects.count() == 1


@override_settings(BGJOBS=SIGNUP)
def test_allauth_signal_alone_enqueues():
    """A user made some other way (no post_save created=True), then signed up through allauth."""
    from allauth.account.signals import user_signed_up

    with capture_jobs() as captured:
        user = get_user_model().objects.create_user("fay", password="x")
        Job.objects.all().delete()
        user_signed_up.send(sender=get_user_model(), request=None, user=user)
    assert Job.objects.get().args == [user.pk]
    assert len(captured.jobs) == 1


def test_one_line_registration():
    on_signup(jobs.record)
    try:
        with capture_jobs() as captured:
            get_user_model().objects.create_user("dan", password="x")
        assert captured.names() == ["tests.jobs.record"]
    finally:
        _registered.clear()


def test_a_signup_job_must_take_the_user_id():
    with pytest.raises(JobConfigurationError, match="must accept the new user's primary key"):
        on_signup(jobs.add)
    with pytest.raises(JobConfigurationError, match="is not a @bgjob function"):
        on_signup(print)  # type: ignore[arg-type]
