"""The core's extension points (django_bgjobs.extensions), each seen doing its job, and a project
without django_bgjobs.delivery: it checks, migrates and runs jobs on a real worker, and the
delivery side's subcommands and key source say what to install."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from django_bgjobs import extensions
from django_bgjobs.checks import check_webhooks
from django_bgjobs.dispatcher import Dispatcher
from django_bgjobs.maintenance import prune
from django_bgjobs.models import Job, JobStatus
from django_bgjobs.testing import capture_jobs
from django_bgjobs.webhooks.endpoints import endpoint
from tests.jobs import add, noop

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def registered() -> Iterator[list[tuple[str, Any]]]:
    """Entries registered by a test, removed after it (the registries are module state)."""
    added: list[tuple[str, Any]] = []
    yield added
    for registry, name in added:
        getattr(extensions, registry).pop(name, None)


def test_a_registered_sweep_runs_in_every_dispatcher_pass_and_a_failing_one_stops_no_other(
    registered, caplog, db
):
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    extensions.register_sweep("test.broken", broken)
    extensions.register_sweep("test.counts", lambda: ran.append("counted"))
    registered += [("_sweeps", "test.broken"), ("_sweeps", "test.counts")]
    with caplog.at_level(logging.ERROR, logger="django_bgjobs.dispatcher"):
        Dispatcher().run_once()
        Dispatcher().run_once()
    assert ran == ["counted", "counted"]
    assert any("sweep 'test.broken' failed" in r.getMessage() for r in caplog.records)


def test_a_database_error_in_a_sweep_ends_the_pass_as_the_jobs_sweep_would(registered, db):
    def database_away() -> None:
        raise OperationalError("server closed the connection unexpectedly")

    extensions.register_sweep("test.db", database_away)
    registered.append(("_sweeps", "test.db"))
    with pytest.raises(OperationalError):
        Dispatcher().run_once()


def test_registering_again_under_a_name_replaces_the_entry(registered):
    extensions.register_sweep("test.once", lambda: 1)
    extensions.register_sweep("test.once", lambda: 2)
    registered.append(("_sweeps", "test.once"))
    assert [sweep() for name, sweep in extensions.sweeps() if name == "test.once"] == [2]


@pytest.mark.django_db(transaction=True)
def test_a_prune_hook_sees_the_pruned_jobs_before_they_go_then_runs_after(registered):
    seen: dict[str, Any] = {}

    class Hook:
        def on_jobs(self, ids: list[Any], using: str) -> None:
            # Still there: the hook deletes what points at them first.
            seen["present"] = Job.objects.filter(pk__in=ids).count()
            seen.setdefault("ids", []).extend(ids)

        def after(self, now: Any) -> None:
            seen["after"] = now

    extensions.register_prune_hook("test.hook", Hook())
    registered.append(("_prune_hooks", "test.hook"))
    with capture_jobs() as captured:
        old, new = add.enqueue(1, 2), add.enqueue(3, 4)
        captured.run_all()
    Job.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=400))
    now = timezone.now()
    assert prune(now=now)[JobStatus.SUCCEEDED] == 1
    assert seen == {"present": 1, "ids": [old.pk], "after": now}
    assert list(Job.objects.values_list("pk", flat=True)) == [new.pk]


def test_a_registered_subcommand_runs_under_manage_py_bgjobs(registered, capsys):
    def hello(command: Any, options: dict[str, Any]) -> None:
        command.stdout.write(f"hello {options['who']}")

    extensions.register_subcommand(
        extensions.Subcommand(
            "hello", "Say hello.", hello, lambda parser: parser.add_argument("who")
        )
    )
    registered.append(("_subcommands", "hello"))
    call_command("bgjobs", "hello", "world")
    assert "hello world" in capsys.readouterr().out


def test_a_key_source_is_asked_at_each_request_and_bound_to_its_scheme(registered):
    keys = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    extensions.register_key_source(
        extensions.KeySource("vault", "standard", lambda: list(keys), "keys kept in a vault")
    )
    registered.append(("_key_sources", "vault"))
    webhooks = {
        "std": {"scheme": "standard", "secrets": "vault"},
        "gh": {"scheme": "github", "secrets": "vault"},
        "nope": {"scheme": "standard", "secrets": "nowhere"},
    }
    with override_settings(BGJOBS={**settings.BGJOBS, "WEBHOOKS": webhooks}):
        found = endpoint("std")
        assert found is not None and found.secrets == () and found.keys() == tuple(keys)
        keys.append("whsec_rotated")
        assert found.keys() == (*keys,)  # read again, not remembered
        with pytest.raises(ImproperlyConfigured, match="goes with scheme 'standard'"):
            endpoint("gh")
        with pytest.raises(ImproperlyConfigured, match="register_key_source"):
            endpoint("nope")
        assert sorted(e.id for e in check_webhooks()) == ["django_bgjobs.E007"] * 2


@pytest.mark.django_db(transaction=True)
def test_a_job_link_shows_on_the_job_page_only_for_the_jobs_it_knows(registered, admin_client):
    def linked(job: Job) -> str | None:
        return format_html("<b>{}</b>", "linked-thing") if job.name == add.name else None

    extensions.register_job_link("test.link", "thing", linked)
    registered.append(("_job_links", "test.link"))
    with capture_jobs():
        job = add.enqueue(1, 1)
        other = noop.enqueue()
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[job.pk]))
    assert "thing: <b>linked-thing</b>" in page.content.decode()
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[other.pk]))
    assert "linked-thing" not in page.content.decode()


# --- a project without django_bgjobs.delivery ----------------------------------------------


def _manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


PROBE = """
import sys
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.test import Client, override_settings
from django.conf import settings
from django_bgjobs.models import Job

assert not [m for m in sys.modules if m.startswith("django_bgjobs.delivery")], "delivery loaded"
job = Job.objects.get()
user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
client = Client()
client.force_login(user)
for url in ("/admin/", "/admin/django_bgjobs/job/", f"/admin/django_bgjobs/job/{job.pk}/change/"):
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
webhooks = {"own": {"scheme": "qstash", "url": "https://x.example/q", "secrets": "bgjobs"}}
with override_settings(BGJOBS={**settings.BGJOBS, "WEBHOOKS": webhooks}):
    errors = [e for e in run_checks() if e.id == "django_bgjobs.E007"]
    assert errors and "add 'django_bgjobs.delivery' to INSTALLED_APPS" in errors[0].msg, errors
print("probe ok")
"""


def test_a_project_without_delivery_checks_migrates_and_runs_jobs_on_a_worker(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "BGJOBS_TEST_DB_NAME")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings_core_only",
        BGJOBS_TEST_STATE=str(tmp_path),  # its own SQLite file and filesystem broker
        PYTHONUNBUFFERED="1",
    )
    migrated = _manage(env, "migrate", "--verbosity", "1")
    assert migrated.returncode == 0, migrated.stderr
    assert "bgjobs_delivery" not in migrated.stdout
    checked = _manage(env, "check")
    assert checked.returncode == 0, checked.stderr
    keys = _manage(env, "bgjobs", "keys")
    assert keys.returncode != 0 and "invalid choice: 'keys'" in keys.stderr

    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "bgjobs", "worker", "--concurrency", "1"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ran = _manage(
            env,
            "shell",
            "--verbosity",
            "0",
            "-c",
            "from tests.jobs import add; "
            "job = add.enqueue(2, 3).wait_until_finished(timeout=60); "
            "print(job.status, job.result)",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    assert ran.returncode == 0, ran.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    assert ran.stdout.split() == ["succeeded", "5"]

    probed = _manage(env, "shell", "--verbosity", "0", "-c", PROBE)
    assert probed.returncode == 0, probed.stderr
    assert "probe ok" in probed.stdout
