"""The jobs admin in a real browser: Debian's chromium driven by Playwright against a live server.

What tests/test_admin.py checks in HTML, checked here as a person sees it: log in through the
form, click the status filter, open a job, expand a traceback, run the retry and cancel actions,
be refused as a non-staff user, run a schedule now from the schedules list, and read and replay
a webhook receipt. Each scenario
asserts on the page and on the database, and saves screenshots to test-artifacts/ (git-ignored)
to look at.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install chromium``; scripts/test installs
it when run as root) and the ``playwright`` package, never ``playwright install``: the browser is
the system's. BGJOBS_SKIP_BROWSER=1 skips this module; otherwise a missing browser fails.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_bgjobs import Schedule, bgjob
from django_bgjobs.admin.widgets import STATUS_COLOURS, slot_time
from django_bgjobs.models import InboundWebhook, Job, JobStatus
from django_bgjobs.registry import registry
from django_bgjobs.scheduling.beat import fire
from django_bgjobs.scheduling.sync import sync
from django_bgjobs.testing import capture_jobs
from django_bgjobs.webhooks.sign import standard_signature
from tests import jobs

if os.environ.get("BGJOBS_SKIP_BROWSER") == "1":
    pytest.skip("BGJOBS_SKIP_BROWSER=1: admin browser tests skipped", allow_module_level=True)

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # reported by the fixture below as a failure, not a skip
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.django_db(transaction=True)  # live_server needs committed data

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHANGELIST = reverse("admin:django_bgjobs_job_changelist")
RETRY_ACTION = "Retry selected dead or cancelled jobs"
CANCEL_ACTION = "Cancel selected jobs"
SCHEDULES = reverse("admin:django_bgjobs_jobschedule_changelist")
RUN_NOW_ACTION = "Run now (not tied to a slot)"
REPORT = "tests.browser.nightly_report"
RECEIPTS = reverse("admin:django_bgjobs_inboundwebhook_changelist")


@pytest.fixture
def browser(live_server) -> Iterator[Browser]:  # type: ignore[no-untyped-def]
    if sync_playwright is None:
        pytest.fail(
            "the admin browser tests need Playwright for Python: pip install playwright "
            "(no `playwright install`: they use Debian's chromium), or set "
            "BGJOBS_SKIP_BROWSER=1 to skip them"
        )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the admin browser tests need Debian's chromium at {CHROMIUM}: install it "
            "with `apt-get install chromium` (as root; scripts/test does it), or set "
            "BGJOBS_SKIP_BROWSER=1 to skip them"
        )
    # Playwright's sync API keeps an asyncio event loop running in this thread (parked in a
    # greenlet) from start to stop, so every ORM call the test makes meanwhile (creating jobs,
    # asserting on rows, run_all) looks to Django like a call from async code and raises
    # SynchronousOnlyOperation. No coroutine of ours touches the database, so the check guards
    # nothing here: DJANGO_ALLOW_ASYNC_UNSAFE turns it off, but only while this fixture is active,
    # not for the whole pytest session as setting os.environ at import would. pytest-django's
    # database fixtures are set up before this one, so they are torn down after it: the flush
    # that ends each transactional test runs once Playwright has stopped, in plain sync Django.
    with mock.patch.dict(os.environ, {"DJANGO_ALLOW_ASYNC_UNSAFE": "true"}):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
                # With a loop running, asgiref keeps Django's connections per async context, so
                # the test's ORM calls went through a connection of their own. Close it while that
                # context is still current, or PostgreSQL refuses to drop the test database at
                # the end ("being accessed by other users").
                connections.close_all()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def all_kinds(no_session_worker, admin_user):  # type: ignore[no-untyped-def]
    """One job of each kind the list shows: dead, succeeded, queued, scheduled. No session
    worker: its dispatcher would publish the queued one again after REPUBLISH_AFTER."""
    with capture_jobs() as captured:
        dead = jobs.always_fails.enqueue("dead-one")
        succeeded = jobs.add.enqueue(1, 2)
        captured.run_all()
    with capture_jobs():  # published to nowhere: stays queued, as if no worker took it yet
        queued = jobs.record.enqueue("waiting")
    scheduled = jobs.noop.using(delay=timedelta(hours=1)).enqueue()
    kinds = {"dead": dead, "succeeded": succeeded, "queued": queued, "scheduled": scheduled}
    for status, job in kinds.items():
        job.refresh_from_db()
        assert job.status == status, (status, job.status)
    return kinds


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{connection.vendor}-{name}.png"), full_page=True)


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + reverse("admin:login") + "?next=" + CHANGELIST)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form input[type=submit]")


def row(page: Page, job: Job):  # type: ignore[no-untyped-def]
    """The changelist row of ``job``, found by its action checkbox."""
    return page.locator("#result_list tbody tr").filter(
        has=page.locator(f'input[name="_selected_action"][value="{job.pk}"]')
    )


def expect_badge(page: Page, job: Job, status: str, label: str) -> None:
    badge = row(page, job).locator(f".bgjobs-status-{status}")
    expect(badge).to_have_text(label)
    expect(badge).to_have_css("background-color", rgb(STATUS_COLOURS[status]))


def run_action(page: Page, job: Job, action_label: str) -> None:
    row(page, job).locator('input[name="_selected_action"]').check()
    page.select_option('select[name="action"]', label=action_label)
    page.click('#changelist-form button[name="index"]')  # Django 6 labels it "Run", not "Go"


def test_staff_user_browses_jobs_filters_dead_ones_and_reads_the_attempts(
    page: Page,
    live_server,
    all_kinds,  # type: ignore[no-untyped-def]
):
    log_in(page, live_server.url, "admin", "password")  # pytest-django's admin_user
    expect(page).to_have_url(re.compile(re.escape(CHANGELIST) + r"$"))
    expect(page.locator("#user-tools")).to_contain_text("admin")
    assert Session.objects.count() == 1  # logged in for real: a session row in the database

    expect(page.locator("#result_list tbody tr")).to_have_count(4)
    expect_badge(page, all_kinds["dead"], "dead", "Dead")
    expect_badge(page, all_kinds["succeeded"], "succeeded", "Succeeded")
    expect_badge(page, all_kinds["queued"], "queued", "Queued")
    expect_badge(page, all_kinds["scheduled"], "scheduled", "Scheduled")
    expect(row(page, all_kinds["dead"]).locator("td.field-attempts_display")).to_have_text("3/3")
    expect(row(page, all_kinds["dead"]).locator("td.field-error_excerpt")).to_have_text(
        "ValueError: this job always fails"
    )
    options = page.locator('select[name="action"] option').all_inner_texts()
    assert RETRY_ACTION in options and CANCEL_ACTION in options, options
    shot(page, "01-jobs-list")
    page.set_viewport_size({"width": 1920, "height": 900})  # every column, for whoever looks
    shot(page, "01-jobs-list-wide")
    page.set_viewport_size({"width": 1400, "height": 900})

    status_filter = page.locator('#changelist-filter details[data-filter-title="status"]')
    status_filter.get_by_role("link", name="Dead", exact=True).click()
    expect(page).to_have_url(re.compile(r"status__exact=dead"))
    expect(status_filter.locator("li.selected")).to_have_text("Dead")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect_badge(page, all_kinds["dead"], "dead", "Dead")
    assert list(Job.objects.filter(status=JobStatus.DEAD)) == [all_kinds["dead"]]
    shot(page, "02-filtered-dead")

    row(page, all_kinds["dead"]).locator("th.field-short_id a").click()
    expect(page.locator("div.field-name .readonly")).to_have_text("tests.jobs.always_fails")
    attempts = page.locator("#bgjobs-timeline li.bgjobs-event-attempt")
    expect(attempts).to_have_count(3)
    dead = Job.objects.get(pk=all_kinds["dead"].pk)
    runs = list(dead.runs.order_by("attempt"))
    assert [r.attempt for r in runs] == [1, 2, 3] and {r.status for r in runs} == {"failed"}
    for index, run in enumerate(runs):
        attempt = attempts.nth(index)
        expect(attempt.locator(".bgjobs-event-title")).to_have_text(f"Attempt {run.attempt}")
        expect(attempt.locator(".bgjobs-status-failed")).to_have_text("Failed")
        expect(attempt.locator(".bgjobs-error")).to_have_text(run.error)
        expect(attempt.locator(".bgjobs-facts")).to_contain_text(run.worker)
        assert run.error == "ValueError: this job always fails"
    expect(
        page.locator("#bgjobs-timeline li.bgjobs-event-finished .bgjobs-status-dead")
    ).to_have_text("Dead")
    shot(page, "03-dead-job")

    first = attempts.nth(0).locator("details")
    traceback = first.locator("pre")
    expect(traceback).to_be_hidden()
    first.locator("summary").click()
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("ValueError: this job always fails")
    assert "always_fails" in runs[0].traceback
    expect(attempts.nth(1).locator("details pre")).to_be_hidden()
    shot(page, "04-dead-job-traceback-open")


def test_retry_action_queues_a_dead_job_again(page: Page, live_server, all_kinds):  # type: ignore[no-untyped-def]
    dead = all_kinds["dead"]
    log_in(page, live_server.url, "admin", "password")
    expect_badge(page, dead, "dead", "Dead")

    # The live server is a thread of this process, so capture_jobs() (which swaps the broker
    # hook in-process) sees the retry's publish, made after the admin action commits.
    with capture_jobs() as captured:
        run_action(page, dead, RETRY_ACTION)
        expect(page.locator("ul.messagelist li.success")).to_have_text("1 job(s) queued again.")
        expect_badge(page, dead, "queued", "Queued")
        expect(row(page, dead).locator("td.field-attempts_display")).to_have_text("3/6")
        shot(page, "05-retried")
        dead.refresh_from_db()
        assert dead.status == JobStatus.QUEUED
        assert (dead.attempts, dead.max_attempts) == (3, 6)  # a fresh budget of 3 attempts
        assert dead.error == "" and dead.finished_at is None
        assert captured.names() == ["tests.jobs.always_fails"]
        captured.run_all()

    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.runs.count()) == (JobStatus.DEAD, 6, 6)
    page.reload()
    expect_badge(page, dead, "dead", "Dead")
    expect(row(page, dead).locator("td.field-attempts_display")).to_have_text("6/6")
    shot(page, "06-retried-and-dead-again")


def test_cancel_action_cancels_a_scheduled_job(page: Page, live_server, all_kinds):  # type: ignore[no-untyped-def]
    scheduled = all_kinds["scheduled"]
    log_in(page, live_server.url, "admin", "password")
    expect_badge(page, scheduled, "scheduled", "Scheduled")

    with capture_jobs() as captured:  # nothing may be published by a cancel
        run_action(page, scheduled, CANCEL_ACTION)
        expect(page.locator("ul.messagelist li.success")).to_have_text(
            "1 job(s) cancelled (running ones stop at their next check)."
        )
    assert captured.names() == []
    expect_badge(page, scheduled, "cancelled", "Cancelled")
    expect_badge(page, all_kinds["dead"], "dead", "Dead")  # the others are untouched
    shot(page, "07-cancelled")
    scheduled.refresh_from_db()
    assert scheduled.status == JobStatus.CANCELLED
    assert scheduled.finished_at is not None and scheduled.run_after is None
    assert Job.objects.filter(status=JobStatus.CANCELLED).count() == 1


def test_non_staff_user_is_refused_the_admin(page: Page, live_server, django_user_model):  # type: ignore[no-untyped-def]
    user = django_user_model.objects.create_user("visitor", password="secret-pw")
    log_in(page, live_server.url, "visitor", "secret-pw")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page).to_have_url(re.compile(re.escape(reverse("admin:login"))))
    expect(page.locator(".errornote")).to_contain_text(
        "Please enter the correct username and password for a staff account."
    )
    shot(page, "08-non-staff-refused")

    page.goto(live_server.url + CHANGELIST)  # and a direct visit is sent back to log in
    expect(page).to_have_url(re.compile(re.escape(reverse("admin:login")) + r"\?next="))
    expect(page.locator("#result_list")).to_have_count(0)
    user.refresh_from_db()
    assert not user.is_staff and user.last_login is None  # never logged in
    assert not [
        s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk)
    ]


def nightly_report(label: str) -> str:
    return label


@pytest.fixture
def report_schedule(admin_user) -> Iterator[Schedule]:  # type: ignore[no-untyped-def]
    """A daily schedule declared for this test, synced, whose last slot ran and succeeded.
    Requested before ``page``: its ORM work happens before Playwright starts and after it stops."""
    schedule = Schedule(cron="30 6 * * *", tz="Europe/Paris", args=("nightly",))
    bgjob(name=REPORT, schedules=[schedule])(nightly_report)
    sync()
    with capture_jobs() as captured:
        fire(REPORT, timezone.now())
        captured.run_all()
    yield schedule
    registry._specs.pop(REPORT, None)
    sync()


def test_staff_user_sees_a_schedules_next_and_last_run_and_runs_it_now(  # type: ignore[no-untyped-def]
    report_schedule, page: Page, live_server
):
    log_in(page, live_server.url, "admin", "password")
    expect(page.locator("#user-tools")).to_contain_text("admin")
    page.goto(live_server.url + SCHEDULES)
    report = page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name=REPORT, exact=True)
    )
    expect(report).to_have_count(1)
    expect(report.locator("td.field-when_display")).to_have_text("cron 30 6 * * * (Europe/Paris)")
    expect(report.locator("td.field-state_display .bgjobs-status-enabled")).to_have_text("enabled")
    upcoming = report_schedule.next_slot(timezone.now())
    expect(report.locator("td.field-next_run_display")).to_contain_text(slot_time(upcoming))
    last = report.locator("td.field-last_run_display .bgjobs-status-succeeded")
    expect(last).to_have_text("Succeeded")
    expect(last).to_have_css("background-color", rgb(STATUS_COLOURS["succeeded"]))
    expect(report.locator("td.field-drift_display")).to_have_text("none")
    page.set_viewport_size({"width": 1920, "height": 900})  # every column, for whoever looks
    shot(page, "09-schedules-list")

    with capture_jobs() as captured:
        report.locator('input[name="_selected_action"]').check()
        page.select_option('select[name="action"]', label=RUN_NOW_ACTION)
        page.click('#changelist-form button[name="index"]')
        message = page.locator("ul.messagelist li.success")
        expect(message).to_contain_text(f"enqueued for {REPORT}.")
        assert captured.names() == [REPORT]
        job = captured.jobs[0]
        assert (job.args, job.status) == (["nightly"], JobStatus.QUEUED)
        expect(message.get_by_role("link")).to_have_text(f"job …{str(job.pk)[-12:]}")
        shot(page, "10-schedule-run-now")
        captured.run_all()
    assert Job.objects.filter(name=REPORT).count() == 2  # the slot's job and the one run now

    message.get_by_role("link").click()  # to the job just run, then to its schedule's page
    expect(page.locator("div.field-status_display .bgjobs-status-succeeded")).to_be_visible()
    page.goto(live_server.url + SCHEDULES)
    page.get_by_role("link", name=REPORT, exact=True).click()
    slots = page.locator("#bgjobs-recent-slots tr.bgjobs-slot")
    expect(slots).to_have_count(1)  # run now is not a slot
    expect(slots.locator(".bgjobs-status-succeeded")).to_have_text("Succeeded")
    shot(page, "11-schedule-page")

    page.goto(live_server.url + CHANGELIST)  # the jobs list links the slot's job to its schedule
    slot_job = Job.objects.get(name=REPORT, schedule_slot__isnull=False)
    expect(row(page, slot_job).locator("td.field-schedule_display a")).to_have_text(REPORT)
    expect(row(page, job).locator("td.field-schedule_display")).to_have_text("-")
    shot(page, "12-jobs-list-with-schedule")


@pytest.fixture
def delivered(admin_user) -> InboundWebhook:  # type: ignore[no-untyped-def]
    """A Clerk event signed and POSTed to the generic receiver, its handler job run. Requested
    before ``page``, like ``report_schedule``."""
    body = json.dumps(
        {"type": "user.created", "data": {"id": "user_42", "note": "<b>not bold</b>"}}
    ).encode()
    stamp = int(time.time())
    with capture_jobs() as captured:
        response = Client().post(
            "/webhooks/clerk/",
            body,
            content_type="application/json",
            headers={
                "svix-id": "msg_browser",
                "svix-timestamp": str(stamp),
                "svix-signature": standard_signature(
                    body, "msg_browser", stamp, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                ),
            },
        )
        assert response.status_code == 202, response.content
        captured.run_all()
    return InboundWebhook.objects.get(pk=response.json()["receipt"])


def test_staff_user_reads_a_webhook_receipt_and_replays_it(  # type: ignore[no-untyped-def]
    delivered, page: Page, live_server
):
    first_job = delivered.job
    assert first_job is not None
    log_in(page, live_server.url, "admin", "password")
    expect(page.locator("#user-tools")).to_contain_text("admin")
    page.goto(live_server.url + RECEIPTS)
    receipt_row = page.locator("#result_list tbody tr").filter(
        has=page.locator(f'input[name="_selected_action"][value="{delivered.pk}"]')
    )
    expect(receipt_row.locator("td.field-endpoint")).to_have_text("clerk")
    expect(receipt_row.locator("td.field-message_id_display")).to_have_text("msg_browser")
    accepted = receipt_row.locator("td.field-outcome_display .bgjobs-status-accepted")
    expect(accepted).to_have_text("accepted")
    expect(accepted).to_have_css("background-color", rgb("#146c43"))
    expect(receipt_row.locator("td.field-job_display .bgjobs-status-succeeded")).to_have_text(
        "Succeeded"
    )
    shot(page, "13-webhook-receipts")

    receipt_row.locator("th.field-received a").click()
    body = page.locator("#bgjobs-body pre")
    expect(body).to_contain_text('"note": "<b>not bold</b>"')  # the tag shown, not applied
    expect(body.locator("b")).to_have_count(0)
    expect(
        page.locator("#bgjobs-headers tr.bgjobs-header").filter(has_text="svix-id")
    ).to_contain_text("msg_browser")
    shot(page, "14-webhook-receipt")

    with capture_jobs() as captured:
        page.locator("button.bgjobs-replay").click()
        message = page.locator("ul.messagelist li.success")
        expect(message).to_contain_text("1 receipt(s) replayed")
        assert captured.names() == ["tests.jobs.handle_webhook"]
        job = captured.jobs[0]
        assert job.pk != first_job.pk and job.args == [delivered.pk]
        expect(message.get_by_role("link")).to_have_text(f"job …{str(job.pk)[-12:]}")
        # Back on the receipt's page, which now points at the new job.
        expect(page.locator("div.field-job_display .bgjobs-status-queued")).to_have_text("Queued")
        shot(page, "15-webhook-replayed")
        captured.run_all()
    delivered.refresh_from_db()
    assert delivered.job_id == job.pk
    assert list(LogEntry.objects.values_list("object_id", flat=True)) == [str(delivered.pk)]

    message.get_by_role("link").click()  # to the replayed job, which links back to the receipt
    expect(page.locator("div.field-status_display .bgjobs-status-succeeded")).to_be_visible()
    expect(page.locator("div.field-webhook_display a")).to_have_text(str(delivered))
    shot(page, "16-replayed-job")


# --- the dashboard, and the job page's buttons (issue 6) ------------------------------------------

DASHBOARD = reverse("admin:django_bgjobs_job_dashboard")


def tile(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#bgjobs-tile-{name} .bgjobs-value")


@pytest.fixture
def busy(all_kinds):  # type: ignore[no-untyped-def]
    """all_kinds, plus a job running on a worker (its lease alive, its progress reported) and
    a second queued one in "emails". Requested before ``page``, like the fixtures above."""
    now = timezone.now()
    running = Job.objects.create(
        name="tests.jobs.long_task",
        queue="slow",
        status=JobStatus.RUNNING,
        args=[10, 1.0],
        max_attempts=3,
        attempts=1,
        created_at=now - timedelta(seconds=40),
        published_at=now - timedelta(seconds=40),
        started_at=now - timedelta(seconds=30),
        lease_expires_at=now + timedelta(minutes=5),
        worker="browser-host:4242",
        progress_done=3,
        progress_total=10,
        progress_message="step 3",
    )
    with capture_jobs():
        emails = jobs.add.enqueue(5, 8)
    return {**all_kinds, "running": running, "emails": emails}


def test_staff_user_opens_the_dashboard_and_its_numbers_match_the_database(  # type: ignore[no-untyped-def]
    no_session_worker, busy, page: Page, live_server
):
    from django_bgjobs.models import JobRun

    log_in(page, live_server.url, "admin", "password")
    expect(page.locator("#user-tools")).to_contain_text("admin")
    page.goto(live_server.url + reverse("admin:index"))
    page.locator("#content-main").get_by_role("link", name="Dashboard", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(DASHBOARD) + r"$"))
    expect(page.locator("h1")).to_have_text("Background jobs dashboard")

    def count(**filters: object) -> str:
        return str(Job.objects.filter(**filters).count())

    expect(tile(page, "queued")).to_have_text(count(status="queued"))
    expect(tile(page, "running")).to_have_text(count(status="running"))
    expect(tile(page, "dead")).to_have_text(count(status="dead"))
    assert (count(status="queued"), count(status="running"), count(status="dead")) == (
        "2",
        "1",
        "1",
    )
    ended = JobRun.objects.filter(finished_at__gte=timezone.now() - timedelta(minutes=59))
    expect(tile(page, "hour")).to_have_text(str(ended.count()))  # 3 failed + 1 succeeded
    expect(tile(page, "success")).to_have_text(
        f"{100 * ended.filter(status='succeeded').count() / ended.count():.1f}%"
    )  # 25.0%
    for queue in ("default", "emails", "slow"):
        queue_row = page.locator(f'#bgjobs-queues tr[data-queue="{queue}"]')
        expect(queue_row.locator("td.bgjobs-queued")).to_have_text(
            count(status="queued", queue=queue)
        )
        expect(queue_row.locator("td.bgjobs-running")).to_have_text(
            count(status="running", queue=queue)
        )
    failing = page.locator('#bgjobs-names tr[data-name="tests.jobs.always_fails"]')
    expect(failing.locator("td.bgjobs-failed")).to_have_text("3")
    expect(failing.locator("td.bgjobs-dead")).to_have_text("1")
    failures = page.locator("#bgjobs-failures tr.bgjobs-failure")
    expect(failures).to_have_count(3)
    expect(failures.first).to_contain_text("ValueError: this job always fails")
    expect(
        page.locator('#bgjobs-workers tr[data-worker="browser-host:4242"] td.bgjobs-running')
    ).to_have_text("1")
    expect(page.locator("svg.bgjobs-chart")).to_have_count(2)
    expect(page.locator("#bgjobs-per-minute g.bgjobs-bar")).to_have_count(60)
    shot(page, "17-dashboard")

    # It refreshes itself, but not while the tab is hidden.
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})"
    )
    with capture_jobs():
        jobs.record.enqueue("arrived while hidden")
    page.wait_for_timeout(11_500)
    expect(tile(page, "queued")).to_have_text("2")
    page.evaluate(
        "Object.defineProperty(document, 'hidden', "
        "{configurable: true, get: () => false}); "
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(tile(page, "queued")).to_have_text("3", timeout=3_000)  # at once, not in 10 s
    assert count(status="queued") == "3"
    shot(page, "18-dashboard-refreshed")

    tile(page, "dead").click()  # the dead letters, in the list
    expect(page).to_have_url(re.compile(r"status__exact=dead"))
    expect(page.locator("#result_list tbody tr")).to_have_count(1)


def test_staff_user_cancels_a_queued_job_from_its_page(  # type: ignore[no-untyped-def]
    no_session_worker, all_kinds, page: Page, live_server
):
    queued = all_kinds["queued"]
    log_in(page, live_server.url, "admin", "password")
    row(page, queued).locator("th.field-short_id a").click()
    expect(
        page.locator("#bgjobs-timeline li.bgjobs-event-queued .bgjobs-event-title")
    ).to_have_text("Queued: attempt 1")
    expect(page.locator("form.bgjobs-action-retry")).to_have_count(0)  # not dead
    shot(page, "19-queued-job")

    with capture_jobs() as captured:  # a cancel publishes nothing
        page.locator("form.bgjobs-action-cancel button").click()
        expect(page.locator("ul.messagelist li.success")).to_have_text("Job cancelled.")
    assert captured.names() == []
    expect(page.locator("div.field-status_display .bgjobs-status-cancelled")).to_have_text(
        "Cancelled"
    )
    expect(page.locator("#bgjobs-timeline li.bgjobs-event-finished")).to_contain_text("Cancelled")
    expect(page.locator("form.bgjobs-action-cancel")).to_have_count(0)
    expect(page.locator("form.bgjobs-action-retry")).to_have_count(1)  # it can be retried now
    shot(page, "20-queued-job-cancelled")
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED and not queued.runs.exists()
    assert [(e.object_id, e.change_message) for e in LogEntry.objects.all()] == [
        (str(queued.pk), "Cancelled.")
    ]


@pytest.fixture
def dead_flaky(admin_user) -> Job:  # type: ignore[no-untyped-def]
    """A job that failed its 5 attempts (it fails while its attempt number is <= 5): dead. Run
    again, its 6th attempt succeeds."""
    with capture_jobs() as captured:
        job = jobs.flaky.enqueue("browser-retry", 5)
        captured.run_all()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.DEAD, 5)
    return job


def test_staff_user_retries_a_dead_job_and_watches_it_succeed(  # type: ignore[no-untyped-def]
    dead_flaky, worker, page: Page, live_server
):
    log_in(page, live_server.url, "admin", "password")
    page.goto(live_server.url + reverse("admin:django_bgjobs_job_change", args=[dead_flaky.pk]))
    expect(page.locator("div.field-status_display .bgjobs-status-dead")).to_have_text("Dead")
    expect(page.locator("#bgjobs-timeline li.bgjobs-event-attempt")).to_have_count(5)
    shot(page, "21-dead-job-with-buttons")

    # No capture_jobs(): the retry is published to the real broker and the session's worker
    # runs it. The page refreshes itself while the job is unfinished: no reload below.
    page.locator("form.bgjobs-action-retry button").click()
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        "Job queued again with a fresh budget of attempts."
    )
    expect(page.locator("div.field-status_display .bgjobs-status-succeeded")).to_be_visible(
        timeout=30_000
    )
    attempts = page.locator("#bgjobs-timeline li.bgjobs-event-attempt")
    expect(attempts).to_have_count(6)
    expect(attempts.last.locator(".bgjobs-event-title")).to_have_text("Attempt 6")
    expect(attempts.last.locator(".bgjobs-status-succeeded")).to_have_text("Succeeded")
    expect(page.locator("div.field-result_display")).to_contain_text('"ok after 6"')
    expect(page.locator("form.bgjobs-action-retry")).to_have_count(0)
    shot(page, "22-retried-and-succeeded")

    dead_flaky.refresh_from_db()
    assert (dead_flaky.status, dead_flaky.result, dead_flaky.attempts) == (
        JobStatus.SUCCEEDED,
        "ok after 6",
        6,
    )
    last = dead_flaky.runs.get(attempt=6)
    assert last.status == "succeeded"
    assert last.worker.endswith(tuple(str(pid) for pid in worker.children()))
    assert [(e.object_id, e.change_message) for e in LogEntry.objects.all()] == [
        (str(dead_flaky.pk), "Retried: queued again with a fresh budget.")
    ]


@pytest.fixture
def function_runs(no_session_worker, admin_user):  # type: ignore[no-untyped-def]
    """Two durable-function runs, executed in this process by the worker's code: an onboarding
    run that went through all its steps (a step that failed twice, a sleep, a wait that timed
    out, an event sent), and a run whose second step declined for good. No session worker: its
    dispatcher would publish a captured replay again after REPUBLISH_AFTER, and run it."""
    from tests import functions

    with capture_jobs() as captured:
        functions.SignedUp(user_id=41).send()
        declined = functions.gives_up_at_once.enqueue()
        captured.run_all()
    onboarding = Job.objects.get(name=functions.onboarding.name)
    return {"onboarding": onboarding, "declined": Job.objects.get(pk=declined.pk)}


def test_staff_user_reads_a_runs_steps_and_replays_it_from_one(  # type: ignore[no-untyped-def]
    function_runs, page: Page, live_server
):
    from django_bgjobs.models import Step

    run = function_runs["onboarding"]
    log_in(page, live_server.url, "admin", "password")
    page.goto(live_server.url + reverse("admin:django_bgjobs_job_change", args=[run.pk]))
    steps = page.locator("#bgjobs-steps tr.bgjobs-step")
    names = ["create-workspace", "flaky-api", "nap", "first-login", "after-login", "crm"]
    expect(steps).to_have_count(len(names))
    for index, name in enumerate(names):
        expect(steps.nth(index)).to_have_attribute("data-step", name)
        expect(steps.nth(index).locator(".bgjobs-status-succeeded")).to_have_text("Succeeded")
    flaky = page.locator('tr[data-step="flaky-api"] td')
    expect(flaky.nth(4)).to_have_text("3")  # two failures, then the success
    expect(flaky.nth(7)).to_have_text("3")  # its result: the call that worked
    expect(page.locator('tr[data-step="first-login"] td').nth(7)).to_have_text(
        re.compile(r"test/logged_in user_id=41: timed out")
    )
    crm = Step.objects.get(job=run, name="crm")
    expect(page.locator('tr[data-step="crm"] td').nth(7)).to_have_text(json.dumps(crm.result))
    shot(page, "31-run-steps")

    with capture_jobs():  # the replay's run is captured, not run: its page shows the kept steps
        page.locator('tr[data-step="after-login"] button.bgjobs-replay-from').click()
        expect(page.locator("ul.messagelist li.success")).to_have_text(
            "A new run started from step 5; the steps before it were kept."
        )
    copy = Job.objects.exclude(pk=run.pk).get(name=run.name)
    expect(page).to_have_url(re.compile(str(copy.pk)))
    kept = page.locator("#bgjobs-steps tr.bgjobs-step")
    expect(kept).to_have_count(4)
    expect(kept.nth(3)).to_have_attribute("data-step", "first-login")
    assert list(Step.objects.filter(job=copy).values_list("name", flat=True)) == names[:4]
    assert LogEntry.objects.filter(object_id=str(copy.pk)).exists()
    shot(page, "32-run-replayed")

    declined = function_runs["declined"]
    page.goto(live_server.url + reverse("admin:django_bgjobs_job_change", args=[declined.pk]))
    failed = page.locator('tr[data-step="declined"]')
    expect(failed.locator(".bgjobs-status-failed")).to_have_text("Failed")
    expect(failed.locator(".bgjobs-error")).to_have_text("NonRetriable: the card was declined")
    # Only the step after succeeded ones can be replayed from: "declined" can, nothing after.
    expect(page.locator("button.bgjobs-replay-from")).to_have_count(2)
    shot(page, "33-run-declined")


@pytest.fixture
def stuck_key(no_session_worker, admin_user):  # type: ignore[no-untyped-def]
    """A key whose one place is held by a queued job no worker takes, and two jobs blocked
    behind it. Requested before ``page``, like the fixtures above. No session worker: its
    dispatcher would publish the holder again after REPUBLISH_AFTER, and run it."""
    from tests import flow_jobs

    with capture_jobs():  # published to nowhere: the holder stays queued
        jobs = [flow_jobs.sync_customer.enqueue(31, n) for n in range(3)]
    return jobs


def test_staff_user_sees_why_a_job_waits_and_releases_its_key(  # type: ignore[no-untyped-def]
    stuck_key, page: Page, live_server
):
    holder, blocked, last = stuck_key
    log_in(page, live_server.url, "admin", "password")
    page.goto(live_server.url + reverse("admin:django_bgjobs_job_change", args=[blocked.pk]))
    expect(page.locator("div.field-status_display .bgjobs-status-blocked")).to_have_text("Blocked")
    flow_line = page.locator("div.field-flow_display .readonly")
    expect(flow_line).to_contain_text("tests.flow_jobs.sync_customer customer_id=31")
    expect(flow_line).to_contain_text("waits for a place, 1 of 1 held")
    shot(page, "41-blocked-job")

    flow_line.get_by_role("link").click()  # the key's jobs in the job list
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    shot(page, "42-jobs-of-a-key")

    page.goto(live_server.url + reverse("admin:django_bgjobs_flowkey_changelist"))
    key_row = page.locator("#result_list tbody tr", has_text="customer_id=31")
    expect(key_row.locator("td.field-holding")).to_have_text("1")
    expect(key_row.locator("td.field-blocked")).to_have_text("2")
    key_row.locator('input[name="_selected_action"]').check()
    with capture_jobs() as captured:
        page.select_option(
            'select[name="action"]',
            label="Release: the jobs holding these keys' places stop counting",
        )
        page.click('#changelist-form button[name="index"]')
        expect(page.locator("ul.messagelist li.success")).to_contain_text(
            "1 job(s) no longer hold a place"
        )
    expect(key_row.locator("td.field-blocked")).to_have_text("1")
    shot(page, "43-key-released")
    assert [job.pk for job in captured.jobs] == [blocked.pk]
    assert Job.objects.get(pk=last.pk).status == JobStatus.BLOCKED
    assert LogEntry.objects.get(object_id=holder.flow_key).change_message.startswith("Released")
