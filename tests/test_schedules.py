"""Schedules: declaration and validation, slot arithmetic (DST at fixed clocks), firing once per
slot whatever fires it, catch-up and overlap policies, the sync into django-celery-beat, and
pruning. Real beat processes: tests/test_beat.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from django_bgjobs import JobConfigurationError, bgjob
from django_bgjobs.maintenance import prune
from django_bgjobs.models import Job, JobRun, JobSchedule, JobStatus, RunStatus, ScheduleSlot
from django_bgjobs.registry import registry
from django_bgjobs.schedules import Schedule
from django_bgjobs.scheduling.beat import fire
from django_bgjobs.scheduling.sync import sync

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)  # type: ignore[misc]


# --- declaration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "not valid"),
        ({"cron": "0 9 * *"}, "five fields"),
        ({"cron": "0 9 * * *", "tz": "Mars/Olympus"}, "not a time zone"),
        ({"cron": "0 9 * * *", "every": timedelta(minutes=1)}, "exactly one of"),
        ({"every": timedelta(milliseconds=500)}, "at least one second"),
        ({"every": timedelta(minutes=5), "tz": "Europe/Paris"}, "tz= applies to cron"),
        ({"cron": "0 9 * * *", "catch_up": "some"}, "catch_up must be one of"),
        ({"cron": "0 9 * * *", "overlap": "queue"}, "overlap must be one of"),
    ],
)
def test_bad_schedules_fail_when_declared(options, message):
    with pytest.raises(JobConfigurationError, match=message):
        Schedule(**options)


def _module_level(func):  # type: ignore[no-untyped-def]
    func.__qualname__ = func.__name__  # as if defined at the top of a module
    return func


def test_schedule_arguments_are_checked_against_the_job_when_decorated():
    def greet(name: str) -> None: ...

    with pytest.raises(JobConfigurationError, match="Schedule arguments must be JSON"):
        Schedule(cron="0 9 * * *", args=(object(),))
    with pytest.raises(JobConfigurationError, match="greet"):
        bgjob(name="tests.greet_bad", schedules=[Schedule(cron="0 9 * * *", args=(1, 2))])(
            _module_level(greet)
        )
    with pytest.raises(JobConfigurationError, match="tz= goes with cron="):
        bgjob(name="tests.greet_tz", tz="Europe/Paris")(_module_level(greet))


# --- slots at fixed clocks ---------------------------------------------------------------------


def test_cron_slots_are_computed_in_the_schedules_time_zone():
    morning = Schedule(cron="0 9 * * *", tz="Europe/Paris")
    assert morning.latest_slot(paris(2026, 11, 29, 9, 0)) == paris(2026, 11, 29, 9, 0)
    assert morning.latest_slot(paris(2026, 11, 29, 8, 59)) == paris(2026, 11, 28, 9, 0)
    assert morning.next_slot(paris(2026, 11, 29, 9, 0)) == paris(2026, 11, 30, 9, 0)
    # A fire a moment early (beat's clock ahead of the worker's) still counts for its slot.
    assert morning.latest_slot(paris(2026, 11, 29, 8, 59, 59)) == paris(2026, 11, 29, 9, 0)


def test_a_time_skipped_by_spring_forward_runs_once_at_the_jump():
    """2026-03-29 in Paris: 02:00 -> 03:00. A 02:30 job runs once, at 03:00."""
    job = Schedule(cron="30 2 * * *", tz="Europe/Paris")
    day = job.slots_between(paris(2026, 3, 28, 12, 0), paris(2026, 3, 30, 12, 0), 10)
    assert day == [paris(2026, 3, 29, 3, 0), paris(2026, 3, 30, 2, 30)]
    assert job.latest_slot(paris(2026, 3, 29, 3, 5)) == paris(2026, 3, 29, 3, 0)


def test_a_time_repeated_by_fall_back_runs_once():
    """2026-10-25 in Paris: 03:00 -> 02:00, 02:30 happens twice; the job runs once."""
    job = Schedule(cron="30 2 * * *", tz="Europe/Paris")
    first, second = paris(2026, 10, 25, 2, 31), paris(2026, 10, 25, 2, 31, fold=1)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    # (PEP 495: a time in the repeated hour never equals one in another zone: compare in UTC.)
    at_0230_summer_time = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert job.latest_slot(first) == job.latest_slot(second) == at_0230_summer_time
    week = job.slots_between(paris(2026, 10, 24, 12, 0), paris(2026, 10, 26, 12, 0), 10)
    assert week == [at_0230_summer_time, paris(2026, 10, 26, 2, 30)]


def test_every_slots_are_a_utc_grid():
    five = Schedule(every=timedelta(seconds=5))
    now = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert five.latest_slot(now) == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert five.next_slot(now) == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert five.slots_between(now - timedelta(seconds=12), now, 10) == [
        datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC) for s in (0, 5)
    ]
    assert len(five.slots_between(now - timedelta(hours=1), now, 10)) == 10  # the newest 10


# --- firing ------------------------------------------------------------------------------------


@pytest.fixture
def declare() -> Iterator:  # type: ignore[type-arg]
    """Declare a scheduled job for one test (and sync it), then forget it."""
    names: list[str] = []

    def make(name: str, **options: object):  # type: ignore[no-untyped-def]
        def job(n: int = 0) -> int:
            return n

        job.__name__ = job.__qualname__ = name.rsplit(".", 1)[-1]
        job.__module__ = "tests.scheduled"
        function = bgjob(name=name, **options)(job)  # type: ignore[call-overload]
        names.append(name)
        sync()
        return function

    yield make
    for name in names:
        registry._specs.pop(name, None)
    sync()


def jobs_of(key: str) -> list[tuple[datetime, str]]:
    return list(
        ScheduleSlot.objects.filter(schedule__key=key)
        .order_by("slot_at")
        .values_list("slot_at", "job__status")
    )


@pytest.mark.django_db
def test_a_slot_fired_twice_makes_one_job(declare):
    declare("tests.s.daily", cron="0 9 * * *", tz="Europe/Paris")
    at = paris(2026, 11, 29, 9, 0, 1)
    first, again = fire("tests.s.daily", at), fire("tests.s.daily", at + timedelta(seconds=30))
    assert first is not None and first.enqueued == [paris(2026, 11, 29, 9, 0)]
    assert again is not None and again.already and not again.enqueued
    assert jobs_of("tests.s.daily") == [(paris(2026, 11, 29, 9, 0), JobStatus.QUEUED)]
    assert Job.objects.filter(name="tests.s.daily").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_fires_of_one_slot_make_one_job(declare):
    """Two beats fire the same slot at once: one INSERT wins, the other changes nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises them)")
    declare("tests.s.race", cron="*/5 * * * *")
    at = datetime(2026, 11, 29, 10, 5, 0, 300_000, tzinfo=UTC)
    barrier = threading.Barrier(6)

    def fire_once() -> None:
        try:
            barrier.wait()
            fire("tests.s.race", at)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fire_once) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Job.objects.filter(name="tests.s.race").count() == 1
    assert ScheduleSlot.objects.filter(schedule__key="tests.s.race").count() == 1


@pytest.mark.django_db
def test_every_claims_the_next_slot_ahead_due_at_its_time(declare):
    declare("tests.s.tick", every=timedelta(minutes=5))
    # Mid-slot, tomorrow (so that the slot ahead is in the future whatever the clock says).
    now = datetime.fromtimestamp(
        int(timezone.now().timestamp()) // 300 * 300 + 150, UTC
    ) + timedelta(days=1)
    fired = fire("tests.s.tick", now)
    assert fired is not None
    slot = datetime.fromtimestamp(int(now.timestamp()) // 300 * 300, UTC)
    ahead = slot + timedelta(minutes=5)
    assert fired.enqueued == [slot, ahead]
    job = Job.objects.get(schedule_slot__slot_at=ahead)
    assert (job.status, job.run_after) == (JobStatus.SCHEDULED, ahead)
    # Beat's next fire lands anywhere in the next slot: nothing new, the job is due on time.
    later = fire("tests.s.tick", ahead + timedelta(minutes=4))
    assert later is not None and later.already
    assert [s for s, _ in jobs_of("tests.s.tick")][:2] == [slot, ahead]


@pytest.mark.django_db
def test_a_fire_just_before_a_boundary_claims_the_coming_slot_due_at_its_time(declare):
    """A fire up to EARLY (2 s) before a boundary counts for the coming slot; its job waits
    for the slot's time. The slot after it is claimed by the next fire, in its own slot."""
    declare("tests.s.early", every=timedelta(minutes=5))
    boundary = datetime.fromtimestamp(
        (int(timezone.now().timestamp()) // 300 + 1) * 300, UTC
    ) + timedelta(days=1)
    fired = fire("tests.s.early", boundary - timedelta(seconds=1))
    assert fired is not None and fired.enqueued == [boundary]
    job = Job.objects.get(schedule_slot__slot_at=boundary)
    assert (job.status, job.run_after) == (JobStatus.SCHEDULED, boundary)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("catch_up", "expected_jobs", "skipped"),
    [
        ("latest", 1, 0),
        ("all", 4, 0),
        ("none", 0, 1),
    ],
)
def test_missed_slots_follow_the_catch_up_policy(declare, catch_up, expected_jobs, skipped):
    """Beat was down from 10:00 to 14:10: the hourly slots 11:00-14:00 were missed."""
    key = f"tests.s.hourly_{catch_up}"
    declare(key, cron="0 * * * *", catch_up=catch_up)
    fire(key, datetime(2026, 11, 29, 10, 0, 1, tzinfo=UTC))
    fired = fire(key, datetime(2026, 11, 29, 14, 10, tzinfo=UTC))
    assert fired is not None
    assert len(fired.enqueued) == expected_jobs and len(fired.skipped) == skipped
    if catch_up == "latest":
        assert fired.enqueued == [datetime(2026, 11, 29, 14, 0, tzinfo=UTC)]
    if catch_up == "all":
        assert [s.hour for s in fired.enqueued] == [11, 12, 13, 14]
    if catch_up == "none":
        assert "catch_up='none'" in fired.skipped[0][1]


@pytest.mark.django_db
def test_overlap_skip_skips_a_slot_while_the_previous_run_is_unfinished(declare):
    declare("tests.s.exclusive", cron="* * * * *", overlap="skip")
    fire("tests.s.exclusive", datetime(2026, 11, 29, 10, 0, 1, tzinfo=UTC))
    fired = fire("tests.s.exclusive", datetime(2026, 11, 29, 10, 1, 1, tzinfo=UTC))
    assert fired is not None and not fired.enqueued
    assert "the previous run" in fired.skipped[0][1]
    Job.objects.filter(name="tests.s.exclusive").update(status=JobStatus.SUCCEEDED)
    fired = fire("tests.s.exclusive", datetime(2026, 11, 29, 10, 2, 1, tzinfo=UTC))
    assert fired is not None and len(fired.enqueued) == 1


@pytest.mark.django_db
def test_a_fire_for_a_schedule_no_code_declares_enqueues_nothing(caplog):
    assert fire("tests.s.nobody", timezone.now()) is None
    assert "which no code declares" in caplog.text


# --- sync into django-celery-beat -------------------------------------------------------------


@pytest.mark.django_db
def test_sync_makes_stable_periodic_tasks_and_a_second_sync_changes_nothing(declare):
    declare(
        "tests.s.report",
        schedules=[
            Schedule(cron="0 9 * * 1-5", tz="Europe/Paris", name="weekday", args=(1,)),
            Schedule(every=timedelta(minutes=10), name="often", args=(2,)),
        ],
    )
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="bgjobs:tests.s.")}
    weekday, often = tasks["bgjobs:tests.s.report:weekday"], tasks["bgjobs:tests.s.report:often"]
    assert (weekday.task, weekday.kwargs) == (
        "django_bgjobs.fire_schedule",
        '{"key": "tests.s.report:weekday"}',
    )
    assert (weekday.crontab.hour, weekday.crontab.day_of_week, str(weekday.crontab.timezone)) == (
        "9",
        "1-5",
        "Europe/Paris",
    )
    assert (often.interval.every, often.interval.period) == (600, "seconds")
    again = sync()
    assert not again.created and not again.updated and not again.drift
    assert PeriodicTask.objects.filter(name__startswith="bgjobs:tests.s.").count() == 2


@pytest.mark.django_db
def test_a_paused_schedule_stays_paused_across_syncs(declare):
    declare("tests.s.paused", cron="0 3 * * *")
    PeriodicTask.objects.filter(name="bgjobs:tests.s.paused").update(enabled=False)
    sync()
    assert not PeriodicTask.objects.get(name="bgjobs:tests.s.paused").enabled
    assert not JobSchedule.objects.select_related("periodic_task").get(key="tests.s.paused").enabled


@pytest.mark.django_db
def test_old_slots_are_pruned_but_each_schedules_newest_stays(declare):
    declare("tests.s.old_slots", cron="0 * * * *")
    for hour in (1, 2, 3):  # 40 days ago: older than every retention
        fire("tests.s.old_slots", timezone.now() - timedelta(days=40, hours=-hour))
    assert ScheduleSlot.objects.filter(schedule__key="tests.s.old_slots").count() == 3
    prune()
    assert ScheduleSlot.objects.filter(schedule__key="tests.s.old_slots").count() == 1


@pytest.mark.django_db
def test_a_paused_every_schedule_resumed_before_its_claimed_slot_runs_it(declare):
    from django_bgjobs.scheduling.beat import cancel_future_slots

    declare("tests.s.resume", every=timedelta(minutes=5))
    # Mid-slot, tomorrow: the slot ahead is the one job still to come.
    now = datetime.fromtimestamp(
        int(timezone.now().timestamp()) // 300 * 300 + 150, UTC
    ) + timedelta(days=1)
    fire("tests.s.resume", now)
    row = JobSchedule.objects.get(key="tests.s.resume")
    assert cancel_future_slots(row) == 1  # paused: the job claimed ahead is cancelled
    fired = fire("tests.s.resume", now + timedelta(seconds=1))  # resumed, fired again
    assert fired is not None and len(fired.enqueued) == 1  # the future slot is claimed again
    assert Job.objects.filter(name="tests.s.resume", status=JobStatus.SCHEDULED).count() == 1


@pytest.mark.django_db
def test_a_schedule_removed_from_code_is_disabled_reported_and_its_ahead_job_cancelled(declare):
    declare("tests.s.gone", every=timedelta(minutes=5))
    fire("tests.s.gone", timezone.now())
    ahead = Job.objects.get(name="tests.s.gone", status=JobStatus.SCHEDULED)
    registry._specs.pop("tests.s.gone")
    report = sync()
    assert report.removed == ["tests.s.gone"]
    row = JobSchedule.objects.select_related("periodic_task").get(key="tests.s.gone")
    assert not row.in_code and not row.periodic_task.enabled
    ahead.refresh_from_db()
    assert ahead.status == JobStatus.CANCELLED


@pytest.mark.django_db
def test_drift_is_reported_and_the_code_wins(declare):
    declare("tests.s.drift", cron="0 9 * * *")
    task = PeriodicTask.objects.get(name="bgjobs:tests.s.drift")
    # Someone changed it in beat's admin.
    task.crontab = CrontabSchedule.objects.create(minute="0", hour="10", timezone="UTC")
    task.save()
    out = StringIO()
    with pytest.raises(CommandError, match="differ from the code"):
        call_command("bgjobs", "sync-schedules", "--check", stdout=out)
    assert "beat's cron is '0 10 * * *', code says '0 9 * * *'" in out.getvalue()
    call_command("bgjobs", "sync-schedules", stdout=StringIO())
    assert PeriodicTask.objects.get(name="bgjobs:tests.s.drift").crontab.hour == "9"


@pytest.mark.django_db
def test_migrate_syncs_the_code_schedules():
    """post_migrate ran when the test database was made: the built-in prune schedule is there."""
    assert PeriodicTask.objects.filter(name="bgjobs:django_bgjobs.prune", enabled=True).exists()


# --- pruning -----------------------------------------------------------------------------------


def _finished(status: str, age: timedelta) -> Job:
    now = timezone.now()
    job = Job.objects.create(
        name="tests.jobs.noop",
        queue="default",
        status=status,
        max_attempts=1,
        attempts=1,
        created_at=now - age,
        finished_at=now - age,
    )
    JobRun.objects.create(
        job=job, attempt=1, status=RunStatus.SUCCEEDED, started_at=now - age, finished_at=now - age
    )
    return job


@pytest.mark.django_db
def test_prune_deletes_finished_jobs_past_their_retention_in_batches(declare):
    old_ok = [_finished(JobStatus.SUCCEEDED, timedelta(days=8)) for _ in range(5)]
    new_ok = _finished(JobStatus.SUCCEEDED, timedelta(days=1))
    old_dead = _finished(JobStatus.DEAD, timedelta(days=8))  # dead jobs are kept 30 days
    very_old_dead = _finished(JobStatus.DEAD, timedelta(days=31))
    running = Job.objects.create(
        name="tests.jobs.noop",
        queue="default",
        max_attempts=1,
        status=JobStatus.RUNNING,
        created_at=timezone.now(),
    )
    declare("tests.s.pruned", cron="0 9 * * *")
    fire("tests.s.pruned", timezone.now())
    slot_job = Job.objects.get(name="tests.s.pruned")
    Job.objects.filter(pk=slot_job.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now() - timedelta(days=9)
    )
    with override_settings(BGJOBS={"QUEUES": ["default", "emails", "slow"], "PRUNE_BATCH": 2}):
        assert prune(dry_run=True)["succeeded"] == 6
        counts = prune()
    assert counts == {"succeeded": 6, "cancelled": 0, "dead": 1}
    left = set(Job.objects.values_list("pk", flat=True))
    assert {new_ok.pk, old_dead.pk, running.pk} <= left
    assert not left & {j.pk for j in [*old_ok, very_old_dead, slot_job]}
    assert not JobRun.objects.filter(job_id__in=[j.pk for j in old_ok]).exists()
    # The slot stays (the schedule's newest still marks where catch-up starts), without its job.
    assert ScheduleSlot.objects.get(schedule__key="tests.s.pruned").job is None


@pytest.mark.django_db
def test_prune_command():
    _finished(JobStatus.CANCELLED, timedelta(days=8))
    out = StringIO()
    call_command("bgjobs", "prune", "--dry-run", stdout=out)
    assert "would delete 1 cancelled" in out.getvalue()
    call_command("bgjobs", "prune", stdout=out)
    assert not Job.objects.filter(status=JobStatus.CANCELLED).exists()


@pytest.mark.parametrize("cron", ["0 0 L * *", "0 0 * * 7", "0 0 * * 1#2"])
def test_cron_syntax_beat_cannot_run_is_refused_when_declared(cron):
    with pytest.raises(JobConfigurationError, match="celery beat cannot run"):
        Schedule(cron=cron)
