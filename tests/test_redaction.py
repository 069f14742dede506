"""@bgjob(redact=...): the values never show in the admin, in error text or in logs."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from django_bgjobs import JobConfigurationError, bgjob
from django_bgjobs.models import JobRun
from django_bgjobs.testing import capture_jobs
from tests import jobs

# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]

SECRET = "sk_live_canary_5f3a9c"


def test_a_redacted_argument_is_kept_out_of_errors_logs_and_the_admin(admin_client, caplog):
    with caplog.at_level(logging.DEBUG), capture_jobs() as captured:
        jobs.uses_a_secret.enqueue("ann@example.com", token=SECRET)
        [job] = captured.run_all()
    assert job.status == "dead"
    assert job.kwargs == {"token": SECRET}  # stored: the worker needs it
    run = JobRun.objects.get(job=job)
    assert "ann@example.com" in job.error and "[redacted]" in job.error
    for text in (job.error, run.error, run.traceback, caplog.text):
        assert SECRET not in text
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[job.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "ann@example.com" in html
    assert SECRET not in html and "[redacted]" in html


def test_redact_must_name_parameters():
    def job(email: str, token: str) -> None: ...

    job.__qualname__ = "module_level_job"
    with pytest.raises(JobConfigurationError, match="redact names 'tokn', which is not a param"):
        bgjob(redact=("tokn",))(job)
    with pytest.raises(JobConfigurationError, match="redact must be a tuple of argument names"):
        bgjob(redact="token")(job)  # type: ignore[arg-type]
