"""System checks: each id fires on its bad setting, with a hint."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.utils import timezone

from django_bgjobs import checks
from django_bgjobs.models import Job, JobStatus


class FakeConf:
    def __init__(self, **values):  # type: ignore[no-untyped-def]
        self.accept_content = ["json"]
        self.task_serializer = "json"
        self.broker_url = "redis://x"
        self.worker_prefetch_multiplier = 1
        self.task_always_eager = False
        self.__dict__.update(values)


def ids(messages):  # type: ignore[no-untyped-def]
    return [m.id for m in messages]


def test_the_test_settings_pass():
    assert checks.check_settings() == [] and checks.check_celery() == []


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"accept_content": ["json", "pickle"]}, "django_bgjobs.E003"),
        ({"task_serializer": "pickle"}, "django_bgjobs.E003"),
        ({"worker_prefetch_multiplier": 4}, "django_bgjobs.W002"),
        ({"task_always_eager": True}, "django_bgjobs.W003"),
    ],
)
def test_unsafe_celery_settings(monkeypatch, conf, expected):
    monkeypatch.setattr(checks, "_celery_conf", lambda: FakeConf(**conf))
    messages = checks.check_celery()
    assert ids(messages) == [expected] and messages[0].hint


@override_settings(CELERY_BROKER_URL=None)
def test_missing_broker(monkeypatch):
    monkeypatch.setattr(checks, "_celery_conf", lambda: FakeConf(broker_url=None))
    assert ids(checks.check_celery()) == ["django_bgjobs.W001"]


@override_settings(BGJOBS={"QUEUES": ["a"], "DEFAULT_QUEUE": "b"})
def test_default_queue_must_exist():
    assert ids(checks.check_settings()) == ["django_bgjobs.E001"]


@pytest.mark.parametrize("queues", ["default,emails", [], ["default", 3]])
def test_queues_must_be_a_list_of_names(queues):
    with override_settings(BGJOBS={"QUEUES": queues}):
        [message] = checks.check_settings()
    assert message.id == "django_bgjobs.E001" and "must be a non-empty list" in message.msg


def test_missing_filesystem_broker_folders(monkeypatch, tmp_path):
    conf = FakeConf(broker_url="filesystem://localhost//", broker_transport_options={
        "data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "missing")})
    monkeypatch.setattr(checks, "_celery_conf", lambda: conf)
    [message] = checks.check_celery()
    assert message.id == "django_bgjobs.E004" and f"mkdir -p {tmp_path / 'missing'}" in message.hint


@override_settings(BGJOBS={"MAX_ATEMPTS": 3})
def test_unknown_setting_is_an_error():
    [message] = checks.check_settings()
    assert message.id == "django_bgjobs.E001" and "MAX_ATEMPTS" in message.msg


@override_settings(BGJOBS={"ON_SIGNUP": ["tests.jobs.nope"], "QUEUES": ["default", "emails",
                                                                        "slow"]})
def test_bad_signup_job():
    assert ids(checks.check_settings()) == ["django_bgjobs.E002"]


@pytest.mark.django_db
def test_jobs_whose_code_is_gone():
    assert checks.check_orphaned_jobs(databases=["default"]) == []
    Job.objects.create(name="old.module.job", queue="default", status=JobStatus.QUEUED,
                       max_attempts=1, created_at=timezone.now())
    assert checks.check_orphaned_jobs() == []  # only with check --database
    [message] = checks.check_orphaned_jobs(databases=["default"])
    assert message.id == "django_bgjobs.W004" and "old.module.job" in message.msg


@override_settings(USE_TZ=False)
def test_time_zones_are_required():
    assert "django_bgjobs.E005" in ids(checks.check_settings())
