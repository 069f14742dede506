"""The schedules admin: what each schedule shows (when, state, next run, last run, drift), no
query per row, run now / pause / resume with their permission and history; and the Job admin's
link from a job to the schedule that made it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from django_bgjobs import bgjob
from django_bgjobs.admin.widgets import slot_time
from django_bgjobs.decorators import JobFunction
from django_bgjobs.models import Job, JobSchedule, JobStatus, ScheduleSlot
from django_bgjobs.registry import registry
from django_bgjobs.schedules import Schedule
from django_bgjobs.scheduling.beat import fire
from django_bgjobs.scheduling.sync import sync
from django_bgjobs.testing import capture_jobs
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:django_bgjobs_jobschedule_changelist")
JOBS = reverse("admin:django_bgjobs_job_changelist")
REPORT, TICK = "tests.admin.report", "tests.admin.tick"


@pytest.fixture
def declare() -> Iterator[Callable[..., JobFunction[..., object]]]:
    """Declare a scheduled job for one test (and sync it), then forget it."""
    names: list[str] = []

    def make(name: str, **options: object) -> JobFunction[..., object]:
        def job(label: str = "") -> str:
            return label

        job.__name__ = job.__qualname__ = name.rsplit(".", 1)[-1]  # as if at a module's top
        job.__module__ = "tests.scheduled"
        function = bgjob(name=name, **options)(job)  # type: ignore[call-overload]
        names.append(name)
        sync()
        return function  # type: ignore[no-any-return]

    yield make
    for name in names:
        registry._specs.pop(name, None)
    sync()


@pytest.fixture
def fired(declare):  # type: ignore[no-untyped-def]
    """A daily report that ran (succeeded) and an hourly tick with its next slot claimed ahead."""
    declare(REPORT, schedules=[Schedule(cron="0 9 * * *", tz="Europe/Paris", args=("daily",))])
    declare(TICK, every=timedelta(hours=1))
    with capture_jobs() as captured:
        fire(REPORT, timezone.now())
        captured.run_all()
    with capture_jobs():  # stays queued (no worker), and its next slot scheduled
        fire(TICK, timezone.now())
    return {row.key: row for row in JobSchedule.objects.select_related("periodic_task")}


def row_html(html: str, key: str) -> str:
    """The changelist row of schedule ``key``."""
    for row in re.findall(r"<tr>.*?</tr>", html, re.S):
        if f">{key}</a>" in row:
            return row
    raise AssertionError(f"no row for {key}")


def cell(row: str, column: str) -> str:
    found = re.search(rf'<td class="field-{column}">(.*?)</td>', row, re.S)
    assert found, column
    return found.group(1)


def test_anonymous_users_are_sent_to_login(client, fired):
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response.url
    page = client.get(reverse("admin:django_bgjobs_jobschedule_change", args=[fired[REPORT].pk]))
    assert page.status_code == 302 and "/admin/login/" in page.url


def test_the_list_shows_when_state_next_run_last_run_and_drift(admin_client, fired):
    html = admin_client.get(CHANGELIST).content.decode()
    report, tick = row_html(html, REPORT), row_html(html, TICK)

    assert cell(report, "job_name") == REPORT
    assert cell(report, "when_display") == "cron 0 9 * * * (Europe/Paris)"
    assert "enabled" in cell(report, "state_display")
    upcoming = Schedule(cron="0 9 * * *", tz="Europe/Paris").next_slot(timezone.now())
    assert cell(report, "next_run_display").startswith(slot_time(upcoming))
    report_job = Job.objects.get(name=REPORT)
    last = cell(report, "last_run_display")
    assert "bgjobs-status-succeeded" in last
    assert reverse("admin:django_bgjobs_job_change", args=[report_job.pk]) in last
    assert cell(report, "drift_display") == "none"

    # The tick's next run is the job beat already claimed for its next slot.
    assert cell(tick, "when_display") == "every 1 h"
    ahead = ScheduleSlot.objects.filter(schedule__key=TICK).order_by("-slot_at").first()
    assert ahead is not None and ahead.job is not None
    assert ahead.job.status == JobStatus.SCHEDULED
    next_run = cell(tick, "next_run_display")
    assert next_run.startswith(slot_time(ahead.slot_at)) and "claimed" in next_run
    assert reverse("admin:django_bgjobs_job_change", args=[ahead.job.pk]) in next_run
    assert "bgjobs-status-queued" in cell(tick, "last_run_display")

    # The built-in prune schedule is listed like any other.
    assert "cron 17 * * * * (UTC)" in row_html(html, "django_bgjobs.prune")


def test_drift_skipped_slots_and_removed_schedules_are_shown(admin_client, fired):
    slot = ScheduleSlot.objects.get(schedule__key=REPORT)
    ScheduleSlot.objects.create(
        schedule=slot.schedule,
        slot_at=slot.slot_at + timedelta(days=-1),
        skipped="overlap='skip': the previous run is running",
        created_at=timezone.now(),
    )
    slot.delete()  # the skip is now the latest slot
    registry._specs.pop(TICK)  # the tick is gone from code: sync disables it
    sync()
    JobSchedule.objects.filter(key=REPORT).update(cron="0 10 * * *")  # edited behind its back

    html = admin_client.get(CHANGELIST).content.decode()
    report, tick = row_html(html, REPORT), row_html(html, TICK)
    assert "cron is &#x27;0 10 * * *&#x27; in the database, &#x27;0 9 * * *&#x27; in code" in cell(
        report, "drift_display"
    )
    assert "skipped: overlap=&#x27;skip&#x27;: the previous run is running" in cell(
        report, "last_run_display"
    )
    assert "removed from code" in cell(tick, "state_display")
    assert cell(tick, "next_run_display") == "-"

    removed = admin_client.get(CHANGELIST, {"state": "removed"}).content.decode()
    assert f">{TICK}</a>" in removed and f">{REPORT}</a>" not in removed


def test_the_list_makes_no_query_per_schedule(
    admin_client, fired, declare, django_assert_max_num_queries
):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(captured)

    queries()  # warm caches (content types, ...)
    few = queries()
    declare(
        "tests.admin.many",
        schedules=[Schedule(name=f"s{i}", every=timedelta(minutes=10 + i)) for i in range(8)],
    )
    with capture_jobs() as captured:
        for i in range(8):
            fire(f"tests.admin.many:s{i}", timezone.now())
        captured.run_all()
    assert JobSchedule.objects.count() >= 11
    assert queries() == few
    with django_assert_max_num_queries(8):
        admin_client.get(CHANGELIST)


def test_the_schedule_page_shows_its_recent_slots(admin_client, fired):
    row = fired[TICK]
    page = admin_client.get(reverse("admin:django_bgjobs_jobschedule_change", args=[row.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html  # the code owns the definition: nothing to edit
    assert "Recent slots" in html
    slots = re.findall(r'<tr class="bgjobs-slot">(.*?)</tr>', html, re.S)
    assert len(slots) == 2  # the slot fired and the one claimed ahead, newest first
    assert "bgjobs-status-scheduled" in slots[0] and "bgjobs-status-queued" in slots[1]
    for slot in ScheduleSlot.objects.filter(schedule=row).select_related("job"):
        assert slot.job is not None
        assert reverse("admin:django_bgjobs_job_change", args=[slot.job.pk]) in html
        assert slot_time(slot.slot_at) in html
    assert "bgjobs:tests.admin.tick" in html  # its django-celery-beat task
    assert "every 1 h" in html and "claimed" in html


def test_schedules_cannot_be_added_or_deleted(admin_client, fired):
    assert admin_client.get(reverse("admin:django_bgjobs_jobschedule_add")).status_code == 403
    delete = reverse("admin:django_bgjobs_jobschedule_delete", args=[fired[REPORT].pk])
    assert admin_client.get(delete).status_code == 403


def action(client, name: str, *rows: JobSchedule):  # type: ignore[no-untyped-def]
    return client.post(
        CHANGELIST, {"action": name, "_selected_action": [str(r.pk) for r in rows]}, follow=True
    )


def logged(row: JobSchedule) -> list[str]:
    return list(
        LogEntry.objects.filter(object_id=str(row.pk))
        .order_by("pk")
        .values_list("change_message", flat=True)
    )


def test_run_now_enqueues_one_job_with_the_schedules_arguments(admin_client, fired):
    row = fired[REPORT]
    before = set(Job.objects.values_list("pk", flat=True))
    with capture_jobs() as captured:
        html = action(admin_client, "run_now", row).content.decode()
    assert captured.names() == [REPORT]
    job = captured.jobs[0]
    assert set(Job.objects.values_list("pk", flat=True)) - before == {job.pk}
    assert (job.args, job.status) == (["daily"], JobStatus.QUEUED)
    assert not ScheduleSlot.objects.filter(job=job).exists()  # not tied to a slot
    assert re.search(
        rf"Run now: <a [^>]+>job …{str(job.pk)[-12:]}</a> enqueued for {REPORT}\.", html
    )
    assert reverse("admin:django_bgjobs_job_change", args=[job.pk]) in html
    assert logged(row) == [f"Run now: enqueued job {job.pk}."]


def test_pause_survives_a_sync_and_resume_enables_again(admin_client, fired):
    row = fired[TICK]
    ahead = Job.objects.get(name=TICK, status=JobStatus.SCHEDULED)
    html = action(admin_client, "pause", row).content.decode()
    assert "1 schedule(s) paused" in html
    assert not PeriodicTask.objects.get(name=f"bgjobs:{TICK}").enabled
    ahead.refresh_from_db()
    assert ahead.status == JobStatus.CANCELLED  # the job claimed ahead will not run
    tick = row_html(admin_client.get(CHANGELIST).content.decode(), TICK)
    assert "paused" in cell(tick, "state_display") and cell(tick, "next_run_display") == "paused"

    report = sync()  # a deploy: the code owns the definition, the admin owns enabled
    assert TICK in report.unchanged
    assert not PeriodicTask.objects.get(name=f"bgjobs:{TICK}").enabled
    assert "already paused" in action(admin_client, "pause", row).content.decode()

    html = action(admin_client, "resume", row).content.decode()
    assert "1 schedule(s) resumed" in html
    assert PeriodicTask.objects.get(name=f"bgjobs:{TICK}").enabled
    assert logged(row) == ["Paused; 1 job(s) claimed ahead cancelled.", "Resumed."]


def test_resume_is_refused_for_a_schedule_removed_from_code(admin_client, fired):
    row = fired[REPORT]
    registry._specs.pop(REPORT)
    sync()
    html = action(admin_client, "resume", row).content.decode()
    assert "0 schedule(s) resumed" in html and "removed from code" in html
    assert not PeriodicTask.objects.get(name=f"bgjobs:{REPORT}").enabled
    with capture_jobs() as captured:
        html = action(admin_client, "run_now", row).content.decode()
    assert captured.names() == [] and "no longer declared in code" in html
    assert logged(row) == []


def test_the_actions_need_the_run_schedule_permission(client, django_user_model, fired):
    staff = django_user_model.objects.create_user("viewer", password="p", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_jobschedule"))
    client.login(username="viewer", password="p")
    page = client.get(CHANGELIST).content.decode()
    assert f">{REPORT}</a>" in page
    assert 'value="run_now"' not in page and 'value="pause"' not in page
    jobs_before = Job.objects.count()
    with capture_jobs() as captured:
        action(client, "run_now", fired[REPORT])
        action(client, "pause", fired[TICK])
    assert captured.names() == [] and Job.objects.count() == jobs_before
    assert PeriodicTask.objects.get(name=f"bgjobs:{TICK}").enabled
    assert not LogEntry.objects.exists()

    staff.user_permissions.add(Permission.objects.get(codename="run_schedule"))
    page = client.get(CHANGELIST).content.decode()
    assert 'value="run_now"' in page and 'value="pause"' in page and 'value="resume"' in page


# --- the Job admin --------------------------------------------------------------------------


def test_jobs_link_to_their_schedule_and_one_off_jobs_show_when_they_run(admin_client, fired):
    later = timezone.now() + timedelta(days=2)
    one_off = jobs.noop.using(run_after=later).enqueue()
    html = admin_client.get(JOBS).content.decode()
    rows = re.findall(r"<tr>.*?</tr>", html, re.S)
    one_off_row = next(r for r in rows if f'value="{one_off.pk}"' in r)
    assert "bgjobs-status-scheduled" in one_off_row
    assert cell(one_off_row, "schedule_display") == "-"
    report_job = Job.objects.get(name=REPORT)
    report_row = next(r for r in rows if f'value="{report_job.pk}"' in r)
    link = reverse("admin:django_bgjobs_jobschedule_change", args=[fired[REPORT].pk])
    assert link in cell(report_row, "schedule_display")

    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[one_off.pk]))
    assert re.search(
        r"Run after.*?" + later.strftime("%Y-%m-%d %H:%M:%S"), page.content.decode(), re.S
    )
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[report_job.pk]))
    assert link in page.content.decode()


def test_the_job_list_makes_no_query_per_scheduled_job(admin_client, fired, declare):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(JOBS).status_code == 200
        return len(captured)

    queries()
    few = queries()
    declare(
        "tests.admin.many",
        schedules=[Schedule(name=f"s{i}", every=timedelta(minutes=10 + i)) for i in range(6)],
    )
    with capture_jobs():
        for i in range(6):
            fire(f"tests.admin.many:s{i}", timezone.now())
    assert ScheduleSlot.objects.filter(job__isnull=False).count() >= 15
    assert queries() == few
