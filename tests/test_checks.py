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
        self.broker_transport = None
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
    conf = FakeConf(
        broker_url="filesystem://localhost//",
        broker_transport="django_bgjobs.celery.filesystem_broker:Transport",
        broker_transport_options={
            "data_folder_in": str(tmp_path),
            "data_folder_out": str(tmp_path),
            "control_folder": str(tmp_path / "missing"),
        },
    )
    monkeypatch.setattr(checks, "_celery_conf", lambda: conf)
    [message] = checks.check_celery()
    assert message.id == "django_bgjobs.E004" and f"mkdir -p {tmp_path / 'missing'}" in message.hint


@override_settings(BGJOBS={"MAX_ATEMPTS": 3})
def test_unknown_setting_is_an_error():
    [message] = checks.check_settings()
    assert message.id == "django_bgjobs.E001" and "MAX_ATEMPTS" in message.msg


@override_settings(
    BGJOBS={"ON_SIGNUP": ["tests.jobs.nope"], "QUEUES": ["default", "emails", "slow"]}
)
def test_bad_signup_job():
    [message] = checks.check_settings()
    assert message.id == "django_bgjobs.E002" and "'tests.jobs.nope'" in message.msg


@pytest.mark.django_db
def test_jobs_whose_code_is_gone():
    assert checks.check_orphaned_jobs(databases=["default"]) == []
    Job.objects.create(
        name="old.module.job",
        queue="default",
        status=JobStatus.QUEUED,
        max_attempts=1,
        created_at=timezone.now(),
    )
    assert checks.check_orphaned_jobs() == []  # only with check --database
    [message] = checks.check_orphaned_jobs(databases=["default"])
    assert message.id == "django_bgjobs.W004" and "old.module.job" in message.msg


@override_settings(USE_TZ=False)
def test_time_zones_are_required():
    assert "django_bgjobs.E005" in ids(checks.check_settings())


def test_the_filesystem_broker_without_whole_message_writes_is_warned_about(monkeypatch, tmp_path):
    from django_bgjobs.celery import filesystem_broker

    def celery_messages(conf):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(checks, "_celery_conf", lambda: conf)
        return checks.check_celery()

    folders = {
        key: str(tmp_path) for key in ("data_folder_in", "data_folder_out", "control_folder")
    }
    kombus = FakeConf(
        broker_url="filesystem://localhost//",
        broker_transport=None,
        broker_transport_options=folders,
    )
    ours = FakeConf(
        broker_url="filesystem://localhost//",
        broker_transport=filesystem_broker.PATH,
        broker_transport_options=folders,
    )
    assert "django_bgjobs.W005" in ids(celery_messages(kombus))
    assert "django_bgjobs.W005" not in ids(celery_messages(ours))


def test_a_message_file_is_never_seen_half_written(tmp_path):
    """The reader takes any *.<queue>.msg file in the folder: ours appear only whole."""
    import os
    import threading

    from kombu import Connection

    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path),
    }
    seen_partial = []

    def watch(stop: threading.Event) -> None:
        while not stop.is_set():
            for name in os.listdir(tmp_path):
                try:
                    if name.endswith(".msg") and os.path.getsize(tmp_path / name) == 0:
                        seen_partial.append(name)
                except FileNotFoundError:  # taken by the reader meanwhile
                    pass

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    watcher.start()
    with Connection(
        "filesystem://localhost//",
        transport_options=options,
        transport="django_bgjobs.celery.filesystem_broker:Transport",
    ) as conn:
        queue = conn.SimpleQueue("whole")
        for n in range(300):
            queue.put({"n": n, "pad": "x" * 5000})
        got = [queue.get(timeout=1).payload["n"] for _ in range(300)]
        queue.close()
    stop.set()
    watcher.join()
    # Within one millisecond kombu's names order randomly: all of them, each once, whole.
    assert seen_partial == [] and sorted(got) == list(range(300))
