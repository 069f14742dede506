"""The admin dashboard, the job page's buttons and timeline, the bulk actions by filter: the
figures match the database for jobs made in known states; every page needs the permission to
view jobs (anonymous -> login, staff without it -> 403); every change is a POST, CSRF-checked,
needs its own permission and is written to the admin's history."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_bgjobs.admin import widgets as bgjobs_admin
from django_bgjobs.figures import dashboard
from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus
from django_bgjobs.testing import capture_jobs
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module", autouse=True)
def no_worker_in_this_module() -> None:
    """These tests make queued and dead rows and look at them: a session worker started by an
    earlier test (and its dispatcher) would run them meanwhile. Stopped once for the module;
    the next test that asks for ``worker`` starts it again."""
    from tests.conftest import _session_workers

    for running in _session_workers:
        if running.proc is not None and running.proc.poll() is None:
            running.stop()


DASHBOARD = reverse("admin:django_bgjobs_job_dashboard")
BULK = reverse("admin:django_bgjobs_job_bulk")
CHANGELIST = reverse("admin:django_bgjobs_job_changelist")
ADD, FAILS = "tests.jobs.add", "tests.jobs.always_fails"


def job_page(job: Job) -> str:
    return reverse("admin:django_bgjobs_job_change", args=[job.pk])


def button(job: Job, action: str) -> str:
    return reverse(f"admin:django_bgjobs_job_{action}", args=[job.pk])


# --- jobs in known states, written as the workers would ------------------------------------------


@dataclass
class World:
    """What the test wrote: the expected figures are computed from it, independently of
    dashboard.py."""

    now: datetime
    jobs: dict[str, Job] = field(default_factory=dict)
    runs: list[JobRun] = field(default_factory=list)


def make_job(name: str, status: str, created: datetime, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "queue": "default",
        "max_attempts": 3,
        "args": [1, 2],
        "kwargs": {},
        **fields,
    }
    return Job.objects.create(name=name, status=status, created_at=created, **values)


@pytest.fixture
def world() -> World:
    """Jobs and attempts around ``now`` (the middle of a minute, 30 to 90 s ago: the pages,
    which read the clock, see the same buckets), with the attempts inserted in the order they
    ended, as workers insert them."""
    now = (timezone.now() - timedelta(minutes=1)).replace(second=30, microsecond=0)
    w = World(now)

    def ago(**delta: float) -> datetime:
        return now - timedelta(**delta)

    # Queued: three in "default" (published 120, 60 and 10 s ago), one in "emails" never
    # published (its wait counts from its creation).
    for seconds in (120, 60, 10):
        w.jobs[f"queued-{seconds}"] = make_job(
            ADD, JobStatus.QUEUED, ago(seconds=seconds + 1), published_at=ago(seconds=seconds)
        )
    w.jobs["queued-emails"] = make_job(ADD, JobStatus.QUEUED, ago(seconds=45), queue="emails")
    # Running: two in "slow" on worker w1 (leases alive), one in "default" on w2 whose lease
    # expired (its worker stopped heartbeating).
    for index in range(2):
        w.jobs[f"running-{index}"] = make_job(
            FAILS,
            JobStatus.RUNNING,
            ago(minutes=3),
            queue="slow",
            attempts=1,
            published_at=ago(minutes=3),
            started_at=ago(minutes=2),
            worker="w1:101",
            lease_expires_at=now + timedelta(seconds=1),
        )
    w.jobs["running-stale"] = make_job(
        ADD,
        JobStatus.RUNNING,
        ago(minutes=4),
        attempts=1,
        published_at=ago(minutes=4),
        started_at=ago(minutes=4),
        worker="w2:202",
        lease_expires_at=ago(seconds=20),
    )
    # Waiting: scheduled (default), retrying (emails).
    w.jobs["scheduled"] = make_job(
        ADD, JobStatus.SCHEDULED, ago(minutes=1), run_after=now + timedelta(hours=1)
    )
    w.jobs["retrying"] = make_job(
        ADD,
        JobStatus.RETRYING,
        ago(minutes=9),
        queue="emails",
        attempts=1,
        run_after=now + timedelta(seconds=30),
    )
    # Dead: two always_fails, one add.
    for index, name in enumerate((FAILS, FAILS, ADD)):
        w.jobs[f"dead-{index}"] = make_job(
            name,
            JobStatus.DEAD,
            ago(hours=2),
            attempts=3,
            finished_at=ago(hours=1, minutes=index),
            error="ValueError: this job always fails",
        )

    # Attempts that ended, oldest first: (ended ago, name, status, duration ms, wait s, worker)
    ended: list[tuple[timedelta, str, str, int, float, str]] = [
        (timedelta(hours=30), ADD, RunStatus.SUCCEEDED, 5, 0.5, "w0:1"),  # older than a day
        (timedelta(hours=30), ADD, RunStatus.SUCCEEDED, 5, 0.5, "w0:1"),
        (timedelta(hours=5, minutes=10), ADD, RunStatus.SUCCEEDED, 7, 0.2, "w0:1"),
        (timedelta(hours=5, minutes=5), ADD, RunStatus.SUCCEEDED, 9, 0.3, "w0:1"),
        (timedelta(hours=3), FAILS, RunStatus.FAILED, 11, 0.4, "w0:1"),
        (timedelta(hours=3), FAILS, RunStatus.FAILED, 13, 0.6, "w0:1"),
        (timedelta(minutes=50), ADD, RunStatus.SUCCEEDED, 10, 0.010, "w1:101"),
        (timedelta(minutes=40), ADD, RunStatus.SUCCEEDED, 20, 0.020, "w1:101"),
        (timedelta(minutes=30), ADD, RunStatus.SUCCEEDED, 30, 0.030, "w1:101"),
        (timedelta(minutes=20), FAILS, RunStatus.FAILED, 400, 0.100, "w1:101"),
        (timedelta(minutes=12), FAILS, RunStatus.LOST, 9000, 0.200, "w3:303"),
        (timedelta(minutes=8), ADD, RunStatus.CANCELLED, 50, 0.050, "w3:303"),
        (timedelta(minutes=6), ADD, RunStatus.SUCCEEDED, 40, 0.040, "w1:101"),
        (timedelta(minutes=2, seconds=10), ADD, RunStatus.SUCCEEDED, 1000, 1.500, "w2:202"),
        (timedelta(seconds=20), FAILS, RunStatus.FAILED, 60, 2.0, "w2:202"),
    ]
    for index, (before, name, status, ms, wait, worker) in enumerate(ended):
        finished = now - before
        started = finished - timedelta(milliseconds=ms)
        published = started - timedelta(seconds=wait)
        job_status = {
            RunStatus.SUCCEEDED: JobStatus.SUCCEEDED,
            RunStatus.CANCELLED: JobStatus.CANCELLED,
        }.get(status, JobStatus.DEAD)
        job = make_job(
            name,
            job_status,
            published,
            attempts=1,
            published_at=published,
            started_at=started,
            finished_at=finished,
            worker=worker,
            error="ValueError: this job always fails" if status == RunStatus.FAILED else "",
        )
        w.jobs[f"ended-{index}"] = job
        w.runs.append(
            JobRun.objects.create(
                job=job,
                attempt=1,
                status=status,
                worker=worker,
                started_at=started,
                finished_at=finished,
                duration_ms=ms,
                error={
                    RunStatus.FAILED: f"ValueError: failure {index}",
                    RunStatus.LOST: "lost: the worker stopped heartbeating",
                }.get(status, ""),
            )
        )
    return w


def percentiles(values: list[float]) -> tuple[float, ...] | None:
    """p50, p95, p99 by linear interpolation between closest ranks (R-7, as percentile_cont),
    computed by the standard library."""
    if not values:
        return None
    if len(values) == 1:
        return (values[0],) * 3
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def close(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


# --- the figures ---------------------------------------------------------------------------------


def test_the_dashboards_figures_match_the_database(world: World) -> None:
    now = world.now
    data = dashboard.build(now=now)

    # Queues: depth, oldest wait, running, waiting; every configured queue listed.
    queues = {q.name: q for q in data.queues}
    assert list(queues) == ["default", "emails", "slow"]
    assert (queues["default"].queued, queues["default"].oldest_age) == (3, 120.0)
    assert (queues["emails"].queued, queues["emails"].oldest_age) == (1, 45.0)  # since created
    assert (queues["slow"].queued, queues["slow"].oldest_age) == (0, None)
    assert {q: queues[q].running for q in queues} == {"default": 1, "emails": 0, "slow": 2}
    assert {q: queues[q].waiting for q in queues} == {"default": 1, "emails": 1, "slow": 0}
    for queue in queues:
        assert queues[queue].queued == Job.objects.filter(status="queued", queue=queue).count()
        assert queues[queue].running == Job.objects.filter(status="running", queue=queue).count()
    assert (data.queued, data.running, data.waiting, data.oldest_age) == (4, 3, 2, 120.0)

    # Dead letters, by name.
    assert data.dead == Job.objects.filter(status="dead").count()
    dead_by_name = {n.name: n.dead for n in data.names if n.dead}
    for name in (ADD, FAILS):
        assert dead_by_name[name] == Job.objects.filter(status="dead", name=name).count()

    # Throughput: per minute over the last hour, per hour over the last day, by outcome.
    assert len(data.minutes) == 60 and len(data.hours) == 24
    assert data.minutes[-1].start == now.replace(second=0)
    for bucket in data.minutes:
        end = bucket.start + timedelta(minutes=1)
        inside = [r for r in world.runs if bucket.start <= r.finished_at < end]
        assert bucket.outcomes.succeeded == sum(r.status == "succeeded" for r in inside)
        assert bucket.outcomes.failed == sum(r.status in ("failed", "lost") for r in inside)
        assert bucket.outcomes.other == sum(r.status == "cancelled" for r in inside)
    for bucket in data.hours:
        end = bucket.start + timedelta(hours=1)
        inside = [r for r in world.runs if bucket.start <= r.finished_at < end]
        assert bucket.outcomes.ended == len(inside), bucket.start
    assert (
        sum(b.outcomes.ended for b in data.hours)
        == JobRun.objects.filter(finished_at__gte=data.hours[0].start).count()
        == 13
    )
    assert data.hours[-1].start == timezone.localtime(now).replace(minute=0, second=0)

    # Rates over the last hour (the minute chart's 60 minutes) and the day.
    hour = data.last_hour
    assert (hour.succeeded, hour.failed, hour.other) == (5, 3, 1)
    assert hour.success_rate == pytest.approx(5 / 8)
    assert hour.failure_rate == pytest.approx(3 / 8)
    day = data.last_day
    assert (day.succeeded, day.failed, day.other) == (7, 5, 1)

    # Per name over the last hour: outcomes and percentiles of run time and wait.
    since = data.minutes[0].start
    by_name = {n.name: n for n in data.names}
    for name in (ADD, FAILS):
        recent = [r for r in world.runs if r.finished_at >= since and r.job.name == name]
        row = by_name[name]
        assert row.outcomes.ended == len(recent)
        timed = [
            float(r.duration_ms) for r in recent if r.status in ("succeeded", "failed", "cancelled")
        ]
        assert close(row.run_ms, percentiles(timed)), (name, row.run_ms, timed)
        waits = [(r.started_at - r.job.published_at).total_seconds() for r in recent]
        assert close(row.wait_s, percentiles(waits)), (name, row.wait_s, waits)
    # Exact values for one name, computed by hand: run times 10, 20, 30, 50, 40, 1000 ms.
    assert close(by_name[ADD].run_ms, (35.0, 762.5, 952.5))

    # Recent failures (failed and lost attempts of the last day), newest first.
    failures = [
        r
        for r in reversed(world.runs)
        if r.status in ("failed", "lost") and r.finished_at >= data.hours[0].start
    ]
    assert [f.run_id for f in data.failures] == [r.pk for r in failures]
    assert data.failures[0].error == "ValueError: failure 14"
    assert data.failures[0].job_name == FAILS

    # Workers: those that ended an attempt in the last 10 minutes or hold a running job.
    workers = {w.worker: w for w in data.workers}
    assert set(workers) == {"w1:101", "w2:202", "w3:303"}  # w0 only long ago
    assert (workers["w1:101"].running, workers["w1:101"].ended) == (2, 1)
    assert (workers["w2:202"].running, workers["w2:202"].ended, workers["w2:202"].stale_leases) == (
        1,
        2,
        1,
    )
    assert (workers["w3:303"].running, workers["w3:303"].ended) == (0, 1)
    assert workers["w2:202"].last_seen == now - timedelta(seconds=20)


def test_percentiles_interpolate_as_postgresql_does() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 50.0, 1000.0]
    assert dashboard.percentiles(values) == pytest.approx(percentiles(values))
    assert dashboard.percentiles([7.0]) == (7.0, 7.0, 7.0)
    assert dashboard.percentiles([]) is None


def test_an_empty_database_shows_zeros(admin_client: Client) -> None:
    data = dashboard.build()
    assert (data.queued, data.running, data.dead, data.last_hour.ended) == (0, 0, 0, 0)
    assert data.last_hour.success_rate is None and data.failures == [] and data.workers == []
    html = admin_client.get(DASHBOARD).content.decode()
    assert "No attempt failed in the last 24 hours." in html


def value(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}".*?data-value="([^"]*)"', html, re.S)
    assert found, element_id
    return found.group(1)


def test_the_dashboard_page_shows_the_figures(admin_client: Client, world: World) -> None:
    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")  # never cached (admin_view)
    html = response.content.decode()
    assert value(html, "bgjobs-tile-queued") == str(Job.objects.filter(status="queued").count())
    assert value(html, "bgjobs-tile-running") == str(Job.objects.filter(status="running").count())
    assert value(html, "bgjobs-tile-dead") == str(Job.objects.filter(status="dead").count())
    assert float(value(html, "bgjobs-tile-oldest")) >= 120.0
    row = re.search(r'<tr class="bgjobs-queue" data-queue="default">(.*?)</tr>', html, re.S)
    assert row and 'class="bgjobs-num bgjobs-queued" data-value="3"' in row.group(1)
    # The charts: inline SVG, one bar per minute and per hour, with their counts.
    assert html.count('<g class="bgjobs-bar"') == 60 + 24
    assert "<script src=" not in html.split("<body")[1].split("</header>")[0]
    bars = re.findall(
        r'<g class="bgjobs-bar" data-start="[^"]+" data-succeeded="(\d+)" '
        r'data-failed="(\d+)" data-other="(\d+)"',
        html,
    )
    assert sum(int(s) + int(f) + int(o) for s, f, o in bars[:60]) >= 8  # the last hour's
    assert "ValueError: failure 14" in html
    assert job_page(world.jobs["ended-14"]) in html  # a failure links to its job
    assert 'data-worker="w2:202"' in html and "lease expired" in html
    # It refreshes itself: a script re-fetching the page, paused while the tab is hidden.
    assert "visibilitychange" in html and "document.hidden" in html
    assert '<meta http-equiv="refresh" content="10">' in html  # inside <noscript>
    assert reverse("admin:django_bgjobs_job_bulk") in html


def test_the_dashboard_makes_the_same_statements_however_many_jobs(
    admin_client: Client, world: World
) -> None:
    def statements() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(DASHBOARD).status_code == 200
        return len(captured)

    before = statements()
    now = timezone.now()
    for index in range(30):
        job = make_job(
            f"tests.jobs.name{index % 7}",
            JobStatus.DEAD,
            now,
            attempts=1,
            finished_at=now,
            worker=f"w{index}:1",
        )
        JobRun.objects.create(
            job=job,
            attempt=1,
            status=RunStatus.FAILED,
            worker=f"w{index}:1",
            started_at=now,
            finished_at=now,
            duration_ms=1,
            error="boom",
        )
    assert statements() == before


def test_the_index_and_the_job_list_link_to_the_dashboard(admin_client: Client) -> None:
    index = admin_client.get(reverse("admin:index")).content.decode()
    entry = reverse("admin:django_bgjobs_jobdashboard_changelist")
    assert entry in index and ">Dashboard<" in index
    response = admin_client.get(entry)
    assert (response.status_code, response["Location"]) == (302, DASHBOARD)
    assert DASHBOARD in admin_client.get(CHANGELIST).content.decode()


# --- permissions ---------------------------------------------------------------------------------


def staff(django_user_model: Any, client: Client, *codenames: str) -> Any:
    user = django_user_model.objects.create_user("staffer", password="p", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.login(username="staffer", password="p")
    return user


def test_anonymous_users_are_sent_to_log_in(client: Client, world: World) -> None:
    dead = world.jobs["dead-0"]
    for url in (DASHBOARD, BULK, reverse("admin:django_bgjobs_jobdashboard_changelist")):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    for action in ("retry", "cancel", "replay"):
        response = client.post(button(dead, action))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Job.objects.get(pk=dead.pk).status == JobStatus.DEAD
    assert not LogEntry.objects.exists()


def test_non_staff_users_get_403(client: Client, django_user_model: Any) -> None:
    django_user_model.objects.create_user("u", password="p")
    client.login(username="u", password="p")
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(BULK).status_code == 403


def test_staff_without_the_view_permission_get_403(
    client: Client, django_user_model: Any, world: World
) -> None:
    staff(django_user_model, client, "retry_job", "cancel_job", "replay_job")
    dead = world.jobs["dead-0"]
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(BULK).status_code == 403
    assert client.get(reverse("admin:django_bgjobs_jobdashboard_changelist")).status_code == 403
    for action in ("retry", "cancel", "replay"):
        assert client.post(button(dead, action)).status_code == 403
    assert client.post(BULK, {"bulk": "cancel", "cancel-queue": "default"}).status_code == 403
    assert Job.objects.get(pk=dead.pk).status == JobStatus.DEAD
    assert Job.objects.filter(status="queued").count() == 4
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_bgjobs_jobdashboard_changelist") not in index


def test_viewers_see_everything_and_can_change_nothing(
    client: Client, django_user_model: Any, world: World
) -> None:
    staff(django_user_model, client, "view_job")
    assert client.get(DASHBOARD).status_code == 200
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_bgjobs_jobdashboard_changelist") in index
    dead = world.jobs["dead-0"]
    page = client.get(job_page(dead)).content.decode()
    assert 'id="bgjobs-job-actions"' not in page  # no button without its permission
    for action in ("retry", "cancel", "replay"):
        assert client.post(button(dead, action)).status_code == 403
    bulk = client.get(BULK).content.decode()
    assert "You do not have the permission to retry jobs." in bulk
    assert (
        client.post(
            BULK, {"bulk": "retry", "retry-name": FAILS, "retry-since": "2000-01-01T00:00:00"}
        ).status_code
        == 403
    )
    assert client.post(BULK, {"bulk": "cancel", "cancel-queue": "default"}).status_code == 403
    assert Job.objects.get(pk=dead.pk).status == JobStatus.DEAD
    assert not LogEntry.objects.exists()


def test_each_button_needs_its_own_permission(
    client: Client, django_user_model: Any, world: World
) -> None:
    user = staff(django_user_model, client, "view_job", "retry_job")
    dead, queued = world.jobs["dead-0"], world.jobs["queued-10"]
    page = client.get(job_page(dead)).content.decode()
    assert button(dead, "retry") in page and button(dead, "replay") not in page
    assert client.post(button(queued, "cancel")).status_code == 403
    assert client.post(button(dead, "replay")).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="replay_job"))
    page = client.get(job_page(dead)).content.decode()
    assert button(dead, "replay") in page


def test_a_button_of_a_job_that_does_not_exist_is_404(admin_client: Client) -> None:
    missing = reverse(
        "admin:django_bgjobs_job_retry", args=["01a20000-0000-7000-8000-000000000000"]
    )
    assert admin_client.post(missing).status_code == 404
    assert (
        admin_client.post(reverse("admin:django_bgjobs_job_retry", args=["not-a-uuid"])).status_code
        == 404
    )


def test_the_buttons_are_posts_with_csrf(django_user_model: Any, world: World) -> None:
    django_user_model.objects.create_superuser("root", password="p")
    client = Client(enforce_csrf_checks=True)
    client.login(username="root", password="p")
    dead = world.jobs["dead-0"]
    assert client.get(button(dead, "retry")).status_code == 405
    assert client.post(button(dead, "retry")).status_code == 403  # no CSRF token
    assert client.post(BULK, {"bulk": "cancel", "cancel-queue": "default"}).status_code == 403
    assert Job.objects.get(pk=dead.pk).status == JobStatus.DEAD
    page = client.get(job_page(dead)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    with capture_jobs():
        response = client.post(button(dead, "retry"), {"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302
    assert Job.objects.get(pk=dead.pk).status == JobStatus.QUEUED


# --- the job page's buttons ----------------------------------------------------------------------


def history(job: Job) -> list[tuple[int, str]]:
    return [
        (e.action_flag, e.change_message)
        for e in LogEntry.objects.filter(object_id=str(job.pk)).order_by("pk")
    ]


def test_retry_now_queues_a_dead_job_again_and_logs_it(admin_client: Client) -> None:
    with capture_jobs() as captured:
        dead = jobs.always_fails.enqueue("retry-button")
        captured.run_all()
    dead.refresh_from_db()
    assert dead.status == JobStatus.DEAD
    with capture_jobs() as captured:
        response = admin_client.post(button(dead, "retry"), follow=True)
    assert response.redirect_chain == [(job_page(dead), 302)]
    assert "Job queued again with a fresh budget of attempts." in response.content.decode()
    assert captured.names() == [FAILS]
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.max_attempts) == (JobStatus.QUEUED, 3, 6)
    assert history(dead) == [(CHANGE, "Retried: queued again with a fresh budget.")]
    # Not dead any more: a second press changes nothing, logs nothing.
    response = admin_client.post(button(dead, "retry"), follow=True)
    assert "Not retried" in response.content.decode()
    assert len(history(dead)) == 1


def test_cancel_cancels_a_queued_job_and_asks_a_running_one_to_stop(
    admin_client: Client, world: World
) -> None:
    queued, running = world.jobs["queued-10"], world.jobs["running-0"]
    response = admin_client.post(button(queued, "cancel"), follow=True)
    assert "Job cancelled." in response.content.decode()
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED and queued.finished_at is not None
    response = admin_client.post(button(running, "cancel"), follow=True)
    assert "Cancel requested" in response.content.decode()
    running.refresh_from_db()
    assert (running.status, running.cancel_requested) == (JobStatus.RUNNING, True)
    assert history(queued) == history(running) == [(CHANGE, "Cancelled.")]
    response = admin_client.post(button(queued, "cancel"), follow=True)  # finished already
    assert "Not cancelled" in response.content.decode() and len(history(queued)) == 1


def test_replay_enqueues_a_copy_with_the_same_payload(admin_client: Client) -> None:
    with capture_jobs() as captured:
        original = jobs.add.using(priority=7).enqueue(2, 3)
        captured.run_all()
    with capture_jobs() as captured:
        response = admin_client.post(button(original, "replay"))
    [copy] = captured.jobs
    assert (response.status_code, response["Location"]) == (302, job_page(copy))
    assert copy.pk != original.pk
    assert (copy.name, copy.args, copy.kwargs, copy.queue, copy.priority, copy.status) == (
        ADD,
        [2, 3],
        {},
        "emails",
        7,
        JobStatus.QUEUED,
    )
    assert history(original) == [
        (CHANGE, f"Replayed: enqueued job {copy.pk} with the same arguments.")
    ]
    assert history(copy) == [(ADDITION, f"Replay of job {original.pk}.")]
    original.refresh_from_db()
    assert original.status == JobStatus.SUCCEEDED  # left as it was


def test_replay_of_a_job_no_code_defines_is_refused(admin_client: Client) -> None:
    gone = make_job("tests.jobs.removed_long_ago", JobStatus.DEAD, timezone.now())
    page = admin_client.get(job_page(gone)).content.decode()
    assert button(gone, "replay") not in page
    response = admin_client.post(button(gone, "replay"), follow=True)
    assert "Not replayed: no code defines" in response.content.decode()
    assert Job.objects.count() == 1 and not LogEntry.objects.exists()


def test_a_redacted_argument_stays_hidden_and_is_replayed_as_it_was(admin_client: Client) -> None:
    secret = "sk_live_dashboard_7c1e"
    with capture_jobs() as captured:
        original = jobs.uses_a_secret.enqueue("ann@example.com", token=secret)
        captured.run_all()
    with capture_jobs() as captured:
        admin_client.post(button(original, "replay"))
    [copy] = captured.jobs
    assert copy.kwargs == {"token": secret}  # the worker needs it
    for job in (original, copy):
        html = admin_client.get(job_page(job)).content.decode()
        assert secret not in html and "[redacted]" in html and "ann@example.com" in html


# --- the job page --------------------------------------------------------------------------------


def test_the_timeline_shows_every_attempt(admin_client: Client) -> None:
    with capture_jobs() as captured:
        dead = jobs.always_fails.enqueue("timeline")
        captured.run_all()
    html = admin_client.get(job_page(dead)).content.decode()
    events = re.findall(r'<li class="bgjobs-event bgjobs-event-(\w+)"', html)
    assert events == ["enqueued", "attempt", "attempt", "attempt", "finished"]
    for run in dead.runs.all():
        block = html.split(f'id="attempt-{run.attempt}"')[1].split("</li>")[0]
        assert "Failed" in block and run.worker in block
        assert "ValueError: this job always fails" in block
        assert f'id="attempt-{run.attempt}-traceback"' in block
        assert "Traceback (most recent call last)" in block
        assert bgjobs_admin.precise_time(run.started_at) in block
    assert 'data-bgjobs-live="0"' in html  # finished: the page does not refresh itself


def test_a_running_job_shows_its_progress_and_refreshes_itself(
    admin_client: Client, world: World
) -> None:
    running = world.jobs["running-0"]
    Job.objects.filter(pk=running.pk).update(
        progress_done=30, progress_total=120, progress_message="rows <imported>"
    )
    html = admin_client.get(job_page(running)).content.decode()
    assert 'aria-valuenow="25"' in html and "25% · 30 of 120 · rows &lt;imported&gt;" in html
    assert 'data-bgjobs-live="1"' in html and "visibilitychange" in html
    assert "bgjobs-event-running" in html
    assert button(running, "cancel") in html and button(running, "retry") not in html


# --- bulk actions --------------------------------------------------------------------------------


@pytest.fixture
def dead_jobs() -> Iterator[dict[str, Job]]:
    now = timezone.now()
    made = {
        "fails-recent": make_job(
            FAILS, JobStatus.DEAD, now, attempts=3, finished_at=now - timedelta(hours=1)
        ),
        "fails-recent-2": make_job(
            FAILS, JobStatus.DEAD, now, attempts=3, finished_at=now - timedelta(minutes=5)
        ),
        "fails-old": make_job(
            FAILS, JobStatus.DEAD, now, attempts=3, finished_at=now - timedelta(days=3)
        ),
        "add-recent": make_job(
            ADD, JobStatus.DEAD, now, attempts=2, finished_at=now - timedelta(minutes=5)
        ),
    }
    yield made


def test_bulk_retry_counts_then_retries_the_dead_jobs_of_a_name_since_a_time(
    admin_client: Client, dead_jobs: dict[str, Job]
) -> None:
    since = timezone.localtime(timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    query = {"bulk": "retry", "retry-name": FAILS, "retry-since": since}
    html = admin_client.get(BULK, query).content.decode()
    assert 'data-count="2"' in html and f"dead jobs of {FAILS} that died since" in html
    assert 'id="bgjobs-confirm"' in html
    with capture_jobs() as captured:
        response = admin_client.post(BULK, query, follow=True)
    assert f"2 job(s) queued again: dead jobs of {FAILS}" in response.content.decode()
    assert sorted(captured.names()) == [FAILS, FAILS]
    status = {key: Job.objects.get(pk=job.pk).status for key, job in dead_jobs.items()}
    assert status == {
        "fails-recent": "queued",
        "fails-recent-2": "queued",
        "fails-old": "dead",
        "add-recent": "dead",
    }
    # One history entry per job retried, naming the bulk action.
    entries = LogEntry.objects.order_by("object_id")
    assert sorted(e.object_id for e in entries) == sorted(
        str(dead_jobs[k].pk) for k in ("fails-recent", "fails-recent-2")
    )
    assert all(
        e.action_flag == CHANGE
        and e.change_message.startswith(
            "Retried: queued again with a fresh budget (bulk: dead jobs of tests.jobs.always_fails"
        )
        for e in entries
    )
    # The budget is the job's own: always_fails allows 3 attempts.
    assert Job.objects.get(pk=dead_jobs["fails-recent"].pk).max_attempts == 6


def test_bulk_retry_works_in_batches(admin_client: Client, dead_jobs: dict[str, Job]) -> None:
    with mock.patch("django_bgjobs.admin.bulk.BULK_BATCH", 1), capture_jobs():
        admin_client.post(
            BULK, {"bulk": "retry", "retry-name": FAILS, "retry-since": "2000-01-01T00:00:00"}
        )
    assert Job.objects.filter(name=FAILS, status="queued").count() == 3
    assert LogEntry.objects.count() == 3


def test_bulk_cancel_cancels_the_queued_jobs_of_a_queue(admin_client: Client, world: World) -> None:
    query = {"bulk": "cancel", "cancel-queue": "default"}
    html = admin_client.get(BULK, query).content.decode()
    assert 'data-count="3"' in html and "queued jobs of queue default" in html
    with capture_jobs() as captured:
        response = admin_client.post(BULK, query, follow=True)
    assert captured.names() == []  # a cancel publishes nothing
    assert "3 job(s) cancelled: queued jobs of queue default." in response.content.decode()
    assert Job.objects.filter(status="queued", queue="default").count() == 0
    assert Job.objects.filter(status="queued", queue="emails").count() == 1  # other queue
    assert Job.objects.get(pk=world.jobs["running-stale"].pk).status == "running"  # not queued
    assert Job.objects.get(pk=world.jobs["scheduled"].pk).status == "scheduled"
    assert (
        LogEntry.objects.filter(
            change_message__startswith="Cancelled (bulk: queued jobs of queue default)"
        ).count()
        == 3
    )


def test_a_bulk_form_with_bad_input_changes_nothing(
    admin_client: Client, dead_jobs: dict[str, Job]
) -> None:
    response = admin_client.post(
        BULK, {"bulk": "retry", "retry-name": FAILS, "retry-since": "yesterday"}
    )
    assert response.status_code == 200 and "Enter a valid date/time." in response.content.decode()
    response = admin_client.post(BULK, {"bulk": "cancel", "cancel-queue": "nope"})
    assert response.status_code == 200 and "Select a valid choice." in response.content.decode()
    assert not LogEntry.objects.exists()
    assert Job.objects.filter(status="dead").count() == 4


# --- the job list at scale -----------------------------------------------------------------------


def test_the_job_list_never_counts_or_lists_every_distinct_value(
    admin_client: Client, world: World
) -> None:
    with CaptureQueriesContext(connection) as captured:
        html = admin_client.get(CHANGELIST).content.decode()
    sqls = [q["sql"] for q in captured.captured_queries]
    assert not [s for s in sqls if "DISTINCT" in s.upper()]  # filters from code and settings
    assert [s for s in sqls if "COUNT(*)" in s.upper() and "LIMIT 10001" in s.upper()]
    assert ">tests.jobs.always_fails<" in html  # the name filter lists the code's names
    assert "Show counts" not in html  # facets: a count of every job per filter choice
    assert "Bulk actions" in html and DASHBOARD in html


def test_past_the_count_cap_the_list_says_more_than(admin_client: Client, world: World) -> None:
    with mock.patch.object(bgjobs_admin, "COUNT_CAP", 5):
        html = admin_client.get(CHANGELIST, {"status__exact": "succeeded"}).content.decode()
    assert "More than 5 jobs" in html and "more than 5 results" in html
    assert 'class="question' not in html  # no "select all N": not on a huge filter from here
    html = admin_client.get(CHANGELIST, {"status__exact": "dead"}).content.decode()
    dead = Job.objects.filter(status="dead").count()
    assert f"{dead} jobs" in html and "More than" not in html


def test_a_filter_nothing_matches_reads_the_table_once(admin_client: Client, world: World) -> None:
    with CaptureQueriesContext(connection) as captured:
        html = admin_client.get(
            CHANGELIST, {"name": "tests.jobs.nothing_of_this_name"}
        ).content.decode()
    job_table = Job._meta.db_table
    assert len([q for q in captured.captured_queries if job_table in q["sql"]]) == 1
    assert "0 jobs" in html


def test_bucket_starts_are_utc_minutes_and_local_hours() -> None:
    moment = datetime(2026, 3, 29, 1, 30, 30, tzinfo=UTC)  # Europe/Paris: DST starts at 01:00
    with timezone.override("Asia/Kolkata"):  # +05:30: local hours start at :30 UTC
        data = dashboard.build(now=moment)
    assert data.hours[-1].start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert data.minutes[-1].start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    with timezone.override("Europe/Paris"):
        data = dashboard.build(now=moment)
    starts = [b.start for b in data.hours]
    assert all(b - a == timedelta(hours=1) for a, b in zip(starts, starts[1:], strict=False))
