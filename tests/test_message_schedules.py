"""QStash schedules (delivery/message_schedules.py): create and upsert, the cron and its
CRON_TZ, pause / resume / delete, and the fire: one message per slot, however often beat fires
it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from django_bgjobs.celery.app import get_celery_app
from django_bgjobs.delivery import message_schedules
from django_bgjobs.delivery.message_schedules import (
    FIRE_TASK,
    PREFIX,
    create,
    delete,
    fire,
    next_run,
    parse_cron,
    pause,
    resume,
)
from django_bgjobs.delivery.models import Message, MessageSchedule, Topic, TopicEndpoint
from django_bgjobs.delivery.publish import Callback, Publish
from django_bgjobs.testing import capture_jobs

# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]

URL = "https://hooks.example.com/report"
TEMPLATE = Publish(
    destination=URL,
    body=b'{"report": "daily"}',
    retries=5,
    headers={"Content-Type": "application/json", "X-Token": "t"},
    callback=Callback("https://hooks.example.com/cb"),
    label="reports",
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def task_of(row: MessageSchedule) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(name=PREFIX + row.pk)


def test_create_makes_the_row_and_its_beat_task():
    row = create(URL, "*/5 * * * *", TEMPLATE)
    assert row.id.startswith("scd_") and len(row.id) == 32
    assert (row.destination, row.cron, row.queue) == (URL, "*/5 * * * *", "")
    assert not row.paused and row.last_fired_at is None

    task = task_of(row)
    assert row.periodic_task_id == task.pk
    assert task.task == FIRE_TASK and task.enabled
    assert json.loads(task.kwargs) == {"schedule_id": row.id}
    assert task.queue == "default"  # BGJOBS["DELIVERY_JOB_QUEUE"]
    c = task.crontab
    assert (c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week) == (
        "*/5",
        "*",
        "*",
        "*",
        "*",
    )
    assert str(c.timezone) == "UTC"

    stored = Publish.from_json(row.template)
    assert stored.body == TEMPLATE.body and stored.retries == 5
    assert stored.callback == TEMPLATE.callback and stored.schedule_id == row.id
    assert FIRE_TASK in get_celery_app().tasks  # registered by AppConfig.ready()


def test_cron_tz_sets_the_crontab_zone_and_the_slots():
    row = create(URL, "CRON_TZ=Europe/Paris 0 9 * * 1-5", TEMPLATE)
    assert row.cron == "CRON_TZ=Europe/Paris 0 9 * * 1-5"
    assert str(task_of(row).crontab.timezone) == "Europe/Paris"
    # Friday 2026-03-27 10:00 UTC (11:00 in Paris): next is Monday 09:00 Paris, 07:00 UTC
    # (summer time started on the Sunday in between).
    upcoming = next_run(row, at("2026-03-27T10:00:00"))
    assert upcoming == at("2026-03-30T07:00:00")
    assert upcoming.astimezone(ZoneInfo("Europe/Paris")).hour == 9


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("", "empty"),
        ("* * * *", "give five fields"),
        ("* * * * * *", "give five fields"),
        ("61 * * * *", "Bad minute"),
        ("CRON_TZ=Mars/Olympus 0 9 * * *", "CRON_TZ=Mars/Olympus is not a time zone"),
        ("CRON_TZ=Europe/Paris", "give five fields"),
        ("0 0 L * *", "celery beat cannot run"),
        ("0 0 * * 7", "Sunday is 0"),
    ],
)
def test_a_bad_cron_is_refused_with_a_reason(cron, says):
    with pytest.raises(ValueError, match=says):
        create(URL, cron, TEMPLATE)
    assert (
        not MessageSchedule.objects.exists()
        and not PeriodicTask.objects.filter(name__startswith=PREFIX).exists()
    )


@pytest.mark.parametrize(
    ("destination", "template", "says"),
    [
        ("", TEMPLATE, "destination is empty"),
        ("ftp://example.com/x", TEMPLATE, "http"),
        (URL, Publish(URL, retries=-1), "retries"),
        (URL, Publish(URL, retry_delay="pow(2, retried"), "retry delay"),
        (URL, Publish(URL, not_before=timezone.now()), "not_before"),
    ],
)
def test_a_bad_template_is_refused(destination, template, says):
    with pytest.raises(ValueError, match=says):
        create(destination, "* * * * *", template)
    assert not MessageSchedule.objects.exists()


@pytest.mark.parametrize("bad", ["", "a/b", "has space", "x" * 65])
def test_a_bad_schedule_id_is_refused(bad):
    with pytest.raises(ValueError, match="schedule id"):
        create(URL, "* * * * *", TEMPLATE, schedule_id=bad)


def test_a_given_id_upserts_and_keeps_the_pause():
    first = create(URL, "0 * * * *", TEMPLATE, schedule_id="nightly-report")
    assert first.id == "nightly-report"
    assert pause("nightly-report")
    again = create(
        "https://hooks.example.com/v2",
        "CRON_TZ=Asia/Tokyo 30 2 * * *",
        Publish("ignored", body=b"v2", queue="reports"),
        schedule_id="nightly-report",
    )
    assert MessageSchedule.objects.count() == 1
    assert PeriodicTask.objects.filter(name__startswith=PREFIX).count() == 1
    again.refresh_from_db()
    assert again.created_at == first.created_at
    assert (again.destination, again.cron, again.queue) == (
        "https://hooks.example.com/v2",
        "CRON_TZ=Asia/Tokyo 30 2 * * *",
        "reports",
    )
    template = Publish.from_json(again.template)
    assert template.destination == "https://hooks.example.com/v2" and template.body == b"v2"
    task = task_of(again)
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        "30",
        "2",
        "Asia/Tokyo",
    )
    assert not task.enabled and again.paused  # paused stays paused, as in the jobs admin
    assert next_run(again) is None


def test_pause_resume_and_delete():
    row = create(URL, "*/5 * * * *", TEMPLATE)
    assert pause(row.id) and not task_of(row).enabled
    assert pause(row.id)  # already paused: still there
    assert resume(row.id) and task_of(row).enabled
    assert delete(row.id)
    assert not MessageSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(name=PREFIX + row.id).exists()
    assert CrontabSchedule.objects.exists()  # shared rows stay
    for action in (pause, resume, delete):
        assert action(row.id) is False


def test_resume_rebuilds_a_beat_task_deleted_by_hand():
    row = create(URL, "*/5 * * * *", TEMPLATE)
    task_of(row).delete()
    row.refresh_from_db()
    assert row.periodic_task is None and row.paused
    assert resume(row.id)
    row.refresh_from_db()
    assert row.periodic_task is not None and row.periodic_task.enabled


def test_each_slot_is_published_once_however_often_it_is_fired():
    row = create(URL, "*/5 * * * *", TEMPLATE)
    with capture_jobs() as captured:
        first = fire(row.id, at("2026-05-04T12:03:10"))
        twice = fire(row.id, at("2026-05-04T12:04:57"))  # the same slot, 12:00
        early = fire(row.id, at("2026-05-04T12:04:59"))  # a second early counts for 12:05
        later = fire(row.id, at("2026-05-04T12:06:00"))  # 12:05 again
    assert first.slot == at("2026-05-04T12:00:00") and len(first.published) == 1
    assert twice.skipped == "slot already published" and not twice.published
    assert early.slot == at("2026-05-04T12:05:00") and len(early.published) == 1
    assert later.skipped == "slot already published"

    messages = list(Message.objects.order_by("created_at"))
    assert [m.pk for m in messages] == [
        first.published[0].message_id,
        early.published[0].message_id,
    ]
    assert len(captured.jobs) == 2  # their delivery jobs
    message = messages[0]
    assert message.url == URL and bytes(message.body) == b'{"report": "daily"}'
    assert message.schedule_id == row.id and message.retries == 5 and message.label == "reports"
    assert message.headers["Upstash-Schedule-Id"] == row.id
    assert message.headers["X-Token"] == "t"
    assert message.callback is not None and message.callback["url"].endswith("/cb")
    row.refresh_from_db()
    assert row.last_fired_at == at("2026-05-04T12:05:00")
    assert row.last_message_id == messages[1].pk


def test_a_concurrent_fire_of_the_same_slot_is_deduplicated():
    """Two fires that both read the schedule before either recorded its slot (two beats):
    the deduplication id ``<id>:<slot>`` makes the second one a duplicate."""
    row = create(URL, "0 * * * *", TEMPLATE)
    with capture_jobs():
        first = fire(row.id, at("2026-05-04T12:00:01"))
        MessageSchedule.objects.filter(pk=row.id).update(last_fired_at=None)  # not seen yet
        second = fire(row.id, at("2026-05-04T12:00:02"))
    assert second.skipped == "slot already published (deduplicated)"
    assert second.published[0].message_id == first.published[0].message_id
    assert Message.objects.count() == 1


def test_a_schedule_to_a_url_group_publishes_to_each_endpoint():
    now = timezone.now()
    topic = Topic.objects.create(name="billing", created_at=now, updated_at=now)
    for n in (1, 2):
        TopicEndpoint.objects.create(topic=topic, url=f"https://e{n}.example.com/", name=f"e{n}")
    row = create("billing", "* * * * *", Publish("billing", body=b"tick"))
    with capture_jobs():
        fired = fire(row.id, timezone.now())
    assert sorted(p.url for p in fired.published) == [
        "https://e1.example.com/",
        "https://e2.example.com/",
    ]
    assert set(Message.objects.values_list("topic", "schedule_id")) == {("billing", row.id)}
    Topic.objects.all().delete()  # the group is gone: the next slot is not published
    refused = fire(row.id, timezone.now() + timedelta(minutes=1))
    assert refused.skipped.startswith("not published:") and "URL group" in refused.skipped


def test_a_paused_or_deleted_schedule_publishes_nothing():
    row = create(URL, "* * * * *", TEMPLATE)
    pause(row.id)
    with capture_jobs() as captured:
        assert fire(row.id, timezone.now()).skipped == "paused"
        delete(row.id)
        assert fire(row.id, timezone.now()).skipped == "unknown schedule"
    assert not Message.objects.exists() and captured.jobs == []


def test_the_celery_task_fires_the_schedule():
    row = create(URL, "* * * * *", TEMPLATE)
    with capture_jobs():
        outcome = message_schedules.fire_message_schedule.apply(
            kwargs={"schedule_id": row.id}
        ).get()
    assert outcome.startswith("published 1 message(s)")
    assert Message.objects.filter(schedule_id=row.id).count() == 1


def test_parse_cron_keeps_the_zone():
    assert parse_cron("CRON_TZ=America/New_York  15 8 * * *").tz == "America/New_York"
    assert parse_cron(" 15 8 * * * ").tz == "UTC"
