"""The Prometheus endpoint (who may scrape it, what it says, computed from the database) and the
structured logs (the docs' JSON configuration, as written)."""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.db import DatabaseError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_bgjobs import checks
from django_bgjobs.figures import stats
from django_bgjobs.figures.metrics import BgJobsCollector, token_matches
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.testing import capture_jobs
from tests import jobs

pytestmark = pytest.mark.django_db

TOKEN = settings.BGJOBS["METRICS_TOKEN"]
LOGGING_PAGE = Path(__file__).resolve().parent.parent / "docs" / "howto" / "logging.md"


def metrics_url() -> str:
    return reverse("bgjobs:metrics")


def scrape(client, **headers) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """GET the endpoint with the token; {sample name: {sorted labels: value}}."""
    response = client.get(metrics_url(), HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def make_job(
    name: str = "tests.jobs.add",
    status: str = JobStatus.SUCCEEDED,
    *,
    queue: str = "default",
    created: timedelta = timedelta(minutes=5),
    published: timedelta | None = None,
    **fields,
) -> Job:
    """A job row in a known state, ``created`` ago (published then, unless told)."""
    now = timezone.now()
    fields.setdefault("published_at", now - (created if published is None else published))
    return Job.objects.create(
        name=name, queue=queue, status=status, max_attempts=3, created_at=now - created, **fields
    )


def make_run(
    job: Job,
    *,
    ended: timedelta,
    duration_ms: int,
    attempt: int = 1,
    status: str = RunStatus.SUCCEEDED,
    worker: str = "host:1",
) -> JobRun:
    """An attempt that ended ``ended`` ago after ``duration_ms``; the job's latest."""
    finished = timezone.now() - ended
    started = finished - timedelta(milliseconds=duration_ms)
    Job.objects.filter(pk=job.pk).update(attempts=attempt, started_at=started)
    job.refresh_from_db()
    return JobRun.objects.create(
        job=job,
        attempt=attempt,
        status=status,
        worker=worker,
        started_at=started,
        finished_at=finished,
        duration_ms=duration_ms,
    )


# --- who may scrape ------------------------------------------------------------------------------


def test_the_token_in_the_authorization_header(client):
    response = client.get(metrics_url(), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-store" in response["Cache-Control"]
    assert b"# TYPE bgjobs_jobs gauge" in response.content


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token-wrong-token-wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        f"bearer  {TOKEN[:8]}",
    ],
)
def test_a_wrong_token_is_401(client, header):
    response = client.get(metrics_url(), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="bgjobs metrics", error="invalid_token"'
    assert b"bgjobs_jobs" not in response.content


def test_no_credentials_is_401_with_a_challenge(client):
    response = client.get(metrics_url())
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="bgjobs metrics"'


@pytest.mark.parametrize(
    "query", [f"token={TOKEN}", f"access_token={TOKEN}", f"x={TOKEN}", "token=whatever"]
)
def test_a_token_in_the_query_string_is_refused_even_the_right_one(client, query):
    response = client.get(f"{metrics_url()}?{query}", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 400
    assert b"Authorization: Bearer" in response.content and b"bgjobs_jobs" not in response.content


def test_a_staff_session(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("s", password="x", is_staff=True))
    assert client.get(metrics_url()).status_code == 200


def test_a_staff_session_with_another_authorization_scheme(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("s", password="x", is_staff=True))
    assert client.get(metrics_url(), HTTP_AUTHORIZATION="Basic dTpw").status_code == 200


def test_a_non_staff_session_is_403(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("u", password="x"))
    assert client.get(metrics_url()).status_code == 403


def test_an_inactive_staff_user_is_refused(client, django_user_model):
    user = django_user_model.objects.create_user("s", password="x", is_staff=True)
    client.force_login(user)
    django_user_model.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(metrics_url()).status_code in (401, 403)


def test_without_a_configured_token_no_bearer_token_is_accepted(client):
    with override_settings(BGJOBS={**settings.BGJOBS, "METRICS_TOKEN": None}):
        assert not token_matches("") and not token_matches("None")
        assert client.get(metrics_url(), HTTP_AUTHORIZATION="Bearer None").status_code == 401
        assert client.get(metrics_url(), HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_only_get_and_head(client):
    assert client.post(metrics_url(), HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    assert client.head(metrics_url(), HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_openmetrics_when_the_scraper_asks(client):
    response = client.get(
        metrics_url(),
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_ACCEPT="application/openmetrics-text; version=1.0.0",
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert text.endswith("# EOF\n") and "# TYPE bgjobs_run_duration_seconds gaugehistogram" in text


def test_the_database_unreadable_is_503(client):
    with mock.patch.object(stats, "job_counts", side_effect=DatabaseError("gone")):
        response = client.get(metrics_url(), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 503


def test_the_token_is_compared_in_constant_time():
    with mock.patch(
        "django_bgjobs.figures.metrics.hmac.compare_digest", return_value=True
    ) as compare:
        assert token_matches("anything")
    given, expected = compare.call_args.args
    assert len(given) == len(expected) == 32  # digests: the length of the guess says nothing


# --- the figures match the database --------------------------------------------------------------


def test_jobs_by_name_and_status_and_dead(client):
    for status, count in ((JobStatus.SUCCEEDED, 3), (JobStatus.DEAD, 2), (JobStatus.QUEUED, 1)):
        for _ in range(count):
            make_job("tests.jobs.add", status)
    make_job("tests.jobs.noop", JobStatus.DEAD)
    make_job("gone.from.code", JobStatus.CANCELLED)
    samples = scrape(client)
    jobs_gauge = samples["bgjobs_jobs"]
    assert jobs_gauge[(("name", "tests.jobs.add"), ("status", "succeeded"))] == 3
    assert jobs_gauge[(("name", "tests.jobs.add"), ("status", "dead"))] == 2
    assert jobs_gauge[(("name", "tests.jobs.add"), ("status", "queued"))] == 1
    assert jobs_gauge[(("name", "tests.jobs.add"), ("status", "running"))] == 0  # zero-filled
    assert jobs_gauge[(("name", "tests.jobs.noop"), ("status", "dead"))] == 1
    assert jobs_gauge[(("name", "gone.from.code"), ("status", "cancelled"))] == 1
    # A job defined in code with no rows yet is listed at zero.
    assert jobs_gauge[(("name", "tests.jobs.flaky"), ("status", "succeeded"))] == 0
    assert samples["bgjobs_dead_jobs"][()] == 3 == Job.objects.filter(status="dead").count()
    # Every row is counted once.
    assert sum(jobs_gauge.values()) == Job.objects.count()


def test_queue_depth_and_oldest_age(client):
    make_job(status=JobStatus.QUEUED, queue="emails", created=timedelta(minutes=10))
    make_job(status=JobStatus.QUEUED, queue="emails", created=timedelta(minutes=3))
    # Queued again by retry() a minute ago, created long before: waiting since its publication.
    make_job(
        status=JobStatus.QUEUED,
        queue="slow",
        created=timedelta(days=2),
        published=timedelta(minutes=1),
    )
    # Publishing failed (the dispatcher will publish it): waiting since it became due.
    make_job(
        status=JobStatus.QUEUED,
        queue="slow",
        created=timedelta(minutes=30),
        published_at=None,
        run_after=timezone.now() - timedelta(minutes=2),
    )
    make_job(status=JobStatus.RUNNING, queue="default")
    make_job(status=JobStatus.SCHEDULED, queue="default", published_at=None)
    samples = scrape(client)
    depth, oldest = samples["bgjobs_queue_depth"], samples["bgjobs_queue_oldest_age_seconds"]
    assert depth == {(("queue", "default"),): 0, (("queue", "emails"),): 2, (("queue", "slow"),): 2}
    assert 600 <= oldest[(("queue", "emails"),)] < 660
    assert 120 <= oldest[(("queue", "slow"),)] < 180
    assert oldest[(("queue", "default"),)] == 0


def test_run_duration_histogram_counts_the_window_only(client):
    # Out of the window (METRICS_WINDOW is an hour). Attempts are recorded as they end, so
    # the older ones come first.
    make_run(make_job("tests.jobs.add"), ended=timedelta(hours=2), duration_ms=1)
    job_a = make_job("tests.jobs.add")
    make_run(job_a, ended=timedelta(minutes=10), duration_ms=5)  # le 0.005: bounds inclusive
    for duration_ms in (6, 40, 2000):
        make_run(make_job("tests.jobs.add"), ended=timedelta(minutes=1), duration_ms=duration_ms)
    failed = make_job("tests.jobs.add", JobStatus.DEAD)
    make_run(failed, ended=timedelta(minutes=2), duration_ms=7_200_000, status=RunStatus.FAILED)
    # Not timed: lost (timed until the lease expired), released, superseded.
    for status in (RunStatus.LOST, RunStatus.RELEASED, RunStatus.SUPERSEDED):
        make_run(
            make_job("tests.jobs.add"),
            ended=timedelta(minutes=1),
            duration_ms=30_000,
            status=status,
        )
    make_run(make_job("tests.jobs.noop"), ended=timedelta(seconds=30), duration_ms=100)

    samples = scrape(client)
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples["bgjobs_run_duration_seconds_bucket"].items()
        if dict(labels)["name"] == "tests.jobs.add"
    }
    assert buckets["0.005"] == 1
    assert buckets["0.01"] == 2
    assert buckets["0.05"] == 3
    assert buckets["2.5"] == 4
    assert buckets["3600.0"] == 4
    assert buckets["+Inf"] == 5  # the two-hour failed attempt
    add = (("name", "tests.jobs.add"),)
    assert samples["bgjobs_run_duration_seconds_gcount"][add] == 5
    assert samples["bgjobs_run_duration_seconds_gsum"][add] == pytest.approx(
        (5 + 6 + 40 + 2000 + 7_200_000) / 1000
    )
    assert samples["bgjobs_run_duration_seconds_gcount"][(("name", "tests.jobs.noop"),)] == 1
    assert samples["bgjobs_metrics_window_seconds"][()] == 3600


def test_histogram_buckets_are_sane(client):
    for index, duration_ms in enumerate((1, 3, 8, 70, 400, 900, 15_000, 100_000)):
        job = make_job(
            "tests.jobs.add", created=timedelta(minutes=5), published=timedelta(minutes=5)
        )
        make_run(job, ended=timedelta(seconds=10 + index), duration_ms=duration_ms)
    samples = scrape(client)
    for metric in ("bgjobs_run_duration_seconds", "bgjobs_wait_seconds"):
        series = sorted(
            (
                (float(dict(labels)["le"]), value)
                for labels, value in samples[f"{metric}_bucket"].items()
            ),
        )
        bounds = [bound for bound, _ in series]
        counts = [count for _, count in series]
        assert bounds == sorted(set(bounds)) and bounds[-1] == float("inf")
        assert bounds[:-1] == list(stats.RUN_BUCKETS)
        assert counts == sorted(counts), "cumulative buckets never decrease"
        assert counts[-1] == samples[f"{metric}_gcount"][(("name", "tests.jobs.add"),)] == 8


def test_wait_from_publication_to_start(client):
    # Enqueued (published) 90 s before its attempt started, which took 1 s.
    job = make_job("tests.jobs.add", created=timedelta(seconds=120))
    make_run(job, ended=timedelta(seconds=29), duration_ms=1000)
    # A delayed job: created a day ago, published by the dispatcher 3 s before it started.
    delayed = make_job("tests.jobs.add", created=timedelta(days=1), published=timedelta(seconds=33))
    make_run(delayed, ended=timedelta(seconds=29), duration_ms=1000)
    # Published again after this attempt (its retry is queued): that attempt's wait is unknown.
    retried = make_job(
        "tests.jobs.add",
        JobStatus.QUEUED,
        created=timedelta(minutes=5),
        published=timedelta(seconds=1),
    )
    make_run(retried, ended=timedelta(seconds=20), duration_ms=10, status=RunStatus.FAILED)
    samples = scrape(client)
    add = (("name", "tests.jobs.add"),)
    assert samples["bgjobs_wait_seconds_gcount"][add] == 2
    # Each row is placed relative to its own timezone.now(): a loaded machine drifts by ms.
    assert samples["bgjobs_wait_seconds_gsum"][add] == pytest.approx(90 + 3, abs=0.25)
    waits = {
        dict(labels)["le"]: value for labels, value in samples["bgjobs_wait_seconds_bucket"].items()
    }
    assert (waits["2.5"], waits["5.0"], waits["60.0"], waits["120.0"]) == (0, 1, 1, 2)
    assert samples["bgjobs_run_duration_seconds_gcount"][add] == 3  # the failed attempt ran


def test_workers_seen(client):
    make_run(make_job(), ended=timedelta(minutes=30), duration_ms=5, worker="old:1")
    make_run(make_job(), ended=timedelta(minutes=3), duration_ms=5, worker="a:2")
    make_run(make_job(), ended=timedelta(minutes=2), duration_ms=5, worker="a:1")
    make_run(make_job(), ended=timedelta(minutes=1), duration_ms=5, worker="a:1")
    now = timezone.now()
    make_job(status=JobStatus.RUNNING, worker="b:1", lease_expires_at=now + timedelta(seconds=20))
    make_job(status=JobStatus.RUNNING, worker="a:2", lease_expires_at=now + timedelta(seconds=20))
    make_job(status=JobStatus.RUNNING, worker="dead:1", lease_expires_at=now - timedelta(seconds=5))
    assert scrape(client)["bgjobs_workers_seen"][()] == 3  # a:1, a:2, b:1


def test_jobs_run_through_the_real_path_are_measured(client, django_capture_on_commit_callbacks):
    with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            jobs.add.enqueue(n, n)
        jobs.gives_up.enqueue()
    captured.run_all()
    samples = scrape(client)
    add, gives_up = (("name", "tests.jobs.add"),), (("name", "tests.jobs.gives_up"),)
    assert samples["bgjobs_run_duration_seconds_gcount"][add] == 3
    assert samples["bgjobs_run_duration_seconds_gcount"][gives_up] == 1
    assert samples["bgjobs_wait_seconds_gcount"][add] == 3
    assert samples["bgjobs_wait_seconds_gsum"][add] >= 0
    assert samples["bgjobs_dead_jobs"][()] == 1
    assert samples["bgjobs_workers_seen"][()] == 1  # this process ran them
    assert samples["bgjobs_metrics_collect_seconds"][()] > 0


def test_the_snapshot_matches_the_orm():
    for status in JobStatus.values:
        make_job("tests.jobs.add", status)
        make_job("tests.jobs.noop", status, queue="emails")
    snap = stats.snapshot()
    for (name, status), count in snap.jobs.items():
        assert Job.objects.filter(name=name, status=status).count() == count
    assert (
        snap.queues["emails"].depth
        == Job.objects.filter(queue="emails", status=JobStatus.QUEUED).count()
        == 1
    )


def test_the_collector_registers_without_querying(django_assert_num_queries):
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=True)
    with django_assert_num_queries(0):
        registry.register(BgJobsCollector())
    names = {metric.name for metric in registry.collect()}
    assert {
        "bgjobs_jobs",
        "bgjobs_queue_depth",
        "bgjobs_queue_oldest_age_seconds",
        "bgjobs_dead_jobs",
        "bgjobs_run_duration_seconds",
        "bgjobs_wait_seconds",
        "bgjobs_workers_seen",
    } <= names


def test_a_few_statements_per_scrape_whatever_the_number_of_jobs(
    client, django_assert_max_num_queries
):
    for n in range(30):
        make_run(make_job(f"tests.jobs.j{n % 5}"), ended=timedelta(minutes=1), duration_ms=n)
    with django_assert_max_num_queries(4):
        scrape(client)


# --- settings checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fails"),
    [
        ({"METRICS_TOKEN": None}, False),
        ({"METRICS_TOKEN": "x" * 16}, False),
        ({"METRICS_TOKEN": "short"}, True),
        ({"METRICS_TOKEN": "with a space in the middle"}, True),
        ({"METRICS_TOKEN": 1234567890123456789}, True),
        ({"METRICS_WINDOW": 0}, True),
        ({"METRICS_WORKERS_WINDOW": timedelta(minutes=-1)}, True),
        ({"METRICS_WINDOW": 300}, False),
    ],
)
def test_metrics_settings_are_checked(changes, fails):
    with override_settings(BGJOBS={**settings.BGJOBS, **changes}):
        found = [m.id for m in checks.check_metrics()]
    assert found == (["django_bgjobs.E008"] if fails else [])


# --- structured logs -----------------------------------------------------------------------------


def test_log_records_carry_the_job_fields(caplog):
    with caplog.at_level(logging.INFO, logger="django_bgjobs.jobs"):
        job = jobs.add.enqueue(1, 2)
    record = next(r for r in caplog.records if r.name == "django_bgjobs.jobs")
    assert (record.job_id, record.job_name, record.status, record.queue, record.attempt) == (
        str(job.pk),
        "tests.jobs.add",
        "queued",
        "emails",
        0,
    )


def readme_logging_config() -> dict:
    """The LOGGING dict of the docs' "Logging and signals" page, as printed there."""
    text = LOGGING_PAGE.read_text()
    block = re.search(r"```python\n(LOGGING = \{.*?pythonjsonlogger.*?\n\})\n```", text, re.S)
    assert block, "the docs' JSON logging example is gone"
    namespace: dict = {}
    exec(block.group(1), namespace)  # noqa: S102 - our own docs
    return namespace["LOGGING"]


def test_the_readme_json_logging_configuration_works(capsys, django_capture_on_commit_callbacks):
    config = readme_logging_config()
    assert config.get("disable_existing_loggers") is False  # or Django's own loggers go quiet
    try:
        logging.config.dictConfig(config)
        with capture_jobs() as captured, django_capture_on_commit_callbacks(execute=True):
            job = jobs.add.enqueue(20, 22)
        captured.run_all()
        lines = [
            json.loads(line)
            for line in capsys.readouterr().err.splitlines()
            if line.startswith("{")
        ]
    finally:
        logging.config.dictConfig(settings.LOGGING)  # the test settings' logging again
    by_status = {line["status"]: line for line in lines if line.get("job_id") == str(job.pk)}
    assert set(by_status) >= {"queued", "running", "succeeded"}
    succeeded = by_status["succeeded"]
    assert succeeded["job_name"] == "tests.jobs.add" and succeeded["attempt"] == 1
    assert succeeded["levelname"] == "INFO" and "duration_ms" in succeeded
    assert succeeded["message"].startswith(f"job {job.pk} succeeded")
