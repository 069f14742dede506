"""manage.py bgjobs retry / status / dispatcher --once."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_bgjobs.models import Job, JobStatus
from django_bgjobs.testing import capture_jobs
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command("bgjobs", *args, stdout=out)
    return out.getvalue()


def test_retry_dead_jobs_by_name_and_age():
    with capture_jobs() as captured:
        recent = jobs.always_fails.enqueue("a")
        old = jobs.always_fails.enqueue("b")
        other = jobs.gives_up.enqueue()
        captured.run_all()
        Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=3))
        assert (
            run(
                "retry",
                "--status",
                "dead",
                "--name",
                "tests.jobs.always_fails",
                "--since",
                "1h",
                "--dry-run",
            )
            == "would retry 1 job(s)\n"
        )
        assert "retried 1 job(s)" in run(
            "retry", "--status", "dead", "--name", "tests.jobs.always_fails", "--since", "1h"
        )
    assert Job.objects.get(pk=recent.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=old.pk).status == JobStatus.DEAD
    assert Job.objects.get(pk=other.pk).status == JobStatus.DEAD


def test_retry_rejects_a_bad_duration():
    with pytest.raises(CommandError, match="like 45s, 30m, 1h or 2d"):
        run("retry", "--since", "yesterday")


def test_status_and_a_single_dispatcher_pass(no_session_worker):
    # The session worker's own dispatcher would promote the due job before this pass does.
    assert run("status") == "no jobs\n"
    with capture_jobs() as captured:
        jobs.noop.using(run_after=timezone.now() - timedelta(seconds=1)).enqueue()
        jobs.noop.using(delay=timedelta(milliseconds=1)).enqueue()
        assert "default              scheduled  1" in run("status")
        time.sleep(0.01)
        assert run("dispatcher", "--once").startswith("due 1,")
    assert len(captured.jobs) == 2
