"""Real beat processes (`manage.py bgjobs beat`: django-celery-beat's DatabaseScheduler) firing
the schedules of tests/jobs.py (``beat_tick``, every 1 or 2 seconds) into the session's worker:
one job per slot, with one beat, with two at once, and across a beat killed and restarted.

Only the schedule under test is enabled while its beats run (a beat fires every enabled
PeriodicTask of the database); the fixture stops the beats, waits for the worker to have run
every fire they sent and for the jobs to finish, so that nothing spills into the next test.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from django_bgjobs import states
from django_bgjobs.models import FINISHED, Job, JobStatus, ScheduleSlot
from django_bgjobs.schedules import Schedule
from django_bgjobs.scheduling.beat import declared
from tests.conftest import BeatProcess, WorkerProcess, wait_for
from tests.models import Effect

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

JOB = "tests.jobs.beat_tick"
# The fire tasks the worker ran (its log is the session's: counted from an offset).
FIRE_DONE = re.compile(rb"Task django_bgjobs\.fire_schedule\[[^\]]+\] (succeeded|raised|retry)")
FIRE_FAILED = re.compile(rb"Task django_bgjobs\.fire_schedule\[[^\]]+\] (raised|retry)")


class Beats:
    """The beat processes of one test, all firing the one schedule ``key``."""

    def __init__(self, worker: WorkerProcess, key: str, name: str) -> None:
        self.worker = worker
        self.key = key
        self.task = f"bgjobs:{key}"
        self.log_dir = Path(settings.STATE_DIR) / "beats"
        self.log_dir.mkdir(exist_ok=True)
        self.name = name
        self.procs: list[BeatProcess] = []
        self.worker_offset = worker.log_path.stat().st_size
        schedule = declared()[key][1]
        assert schedule.every is not None
        self.schedule: Schedule = schedule
        self.step = schedule.every
        # Beat fires every enabled PeriodicTask: only this one (the flush after the test and
        # its post_migrate sync bring the others back).
        PeriodicTask.objects.exclude(name=self.task).update(enabled=False)
        assert PeriodicTask.objects.filter(name=self.task, enabled=True).exists()

    def start(self) -> BeatProcess:
        log = self.log_dir / f"{self.name}-{len(self.procs)}.log"
        log.unlink(missing_ok=True)
        beat = BeatProcess(self.worker.db_name, log, env=self.worker.extra_env)
        self.procs.append(beat)
        beat.start()
        return beat

    def sent(self) -> int:
        return sum(beat.sent(self.task) for beat in self.procs)

    def _worker_log(self) -> bytes:
        with open(self.worker.log_path, "rb") as log:
            log.seek(self.worker_offset)
            return log.read()

    def fires_done(self) -> int:
        """Fire tasks the worker has finished since the test began."""
        return len(FIRE_DONE.findall(self._worker_log()))

    def fires_failed(self) -> int:
        return len(FIRE_FAILED.findall(self._worker_log()))

    def stop(self) -> None:
        """Stop every beat, then wait until the worker has run what they sent and the jobs
        of the slots claimed (up to one step ahead) have finished."""
        for beat in self.procs:
            beat.stop()
        # A beat stopped right after logging a send may not have sent it: one per process.
        wait_for(
            lambda: self.fires_done() >= self.sent() - len(self.procs),
            timeout=30,
            message="the worker to run every fire the beats sent",
        )
        self._settle()
        wait_for(
            lambda: not Job.objects.filter(name=JOB).exclude(status__in=FINISHED).exists(),
            timeout=30,
            message="the slots' jobs to finish",
        )

    def _settle(self) -> None:
        """Until the worker has run no fire task for a second (at most 10 s)."""
        done, deadline = -1, time.monotonic() + 10
        while done != self.fires_done() and time.monotonic() < deadline:
            done = self.fires_done()
            time.sleep(1)

    def cleanup(self) -> None:
        """After a test that failed midway too: no beat left, no fire in flight, no job of
        the schedule waiting or running."""
        running = [
            beat for beat in self.procs if beat.proc is not None and beat.proc.poll() is None
        ]
        for beat in running:
            beat.kill()
        if running:
            self._settle()
        for job in Job.objects.filter(name=JOB).exclude(status__in=FINISHED):
            states.cancel(job)
        wait_for(
            lambda: not Job.objects.filter(name=JOB, status=JobStatus.RUNNING).exists(),
            timeout=30,
            message="leftover scheduled jobs to stop",
        )


@pytest.fixture
def beats(
    worker: WorkerProcess, transactional_db: None, request: pytest.FixtureRequest
) -> Iterator[Beats]:
    """Beats for the test's schedule: "1s" on PostgreSQL + Redis, "2s" on SQLite + kombu's
    filesystem broker (polled; and its reader can take a message file its writer has created
    but not yet written, which stops the worker with a JSONDecodeError: fewer messages, fewer
    chances)."""
    key = f"{JOB}:{'1s' if connection.vendor == 'postgresql' else '2s'}"
    group = Beats(worker, key, request.node.name)
    try:
        yield group
    finally:
        group.cleanup()


def slots(key: str) -> list[ScheduleSlot]:
    return list(
        ScheduleSlot.objects.filter(schedule__key=key).select_related("job").order_by("slot_at")
    )


def assert_one_job_per_slot(beats: Beats, rows: list[ScheduleSlot]) -> dict[str, float]:
    """Each slot: one job, succeeded at its first attempt, started at or after its time, one
    effect; and no job of the schedule outside a slot. Returns figures for the message."""
    assert rows, "no slot was claimed"
    assert all(row.job is not None and not row.skipped for row in rows)
    jobs = [row.job for row in rows if row.job is not None]
    assert Job.objects.filter(name=JOB).count() == len(jobs) == len({job.pk for job in jobs})
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * len(jobs)
    assert [job.attempts for job in jobs] == [1] * len(jobs)
    effects = Counter(
        Effect.objects.filter(key__startswith=f"{beats.key}@").values_list("key", flat=True)
    )
    assert effects == Counter(f"{beats.key}@{row.slot_at.isoformat()}" for row in rows)
    assert all(job.started_at is not None for job in jobs)
    late = [
        (job.started_at - row.slot_at).total_seconds() for row, job in zip(rows, jobs, strict=True)
    ]
    assert min(late) >= 0, "a job started before its slot"
    return {"slots": len(rows), "late_max_s": round(max(late), 3)}


def assert_consecutive(rows: list[ScheduleSlot], step: timedelta) -> None:
    gaps = [
        (a.slot_at, b.slot_at)
        for a, b in zip(rows, rows[1:], strict=False)
        if b.slot_at - a.slot_at != step
    ]
    assert not gaps, f"slots not consecutive: {gaps}"


def test_one_beat_fires_one_job_per_slot_with_no_gap(beats):
    began = time.monotonic()
    beats.start()
    time.sleep(8)
    ran = time.monotonic() - began
    beats.stop()
    rows = slots(beats.key)
    figures = assert_one_job_per_slot(beats, rows)
    assert_consecutive(rows, beats.step)
    # Every slot of the beat's lifetime (less its start-up) is in the window.
    assert len(rows) >= (ran - 4) / beats.step.total_seconds(), figures
    assert beats.sent() >= beats.fires_done() >= beats.sent() - 1
    assert beats.fires_failed() == 0
    print(f"one beat, {ran:.1f} s: {figures}, fires {beats.fires_done()}")


def test_two_beats_at_once_still_make_exactly_one_job_per_slot(beats):
    began = time.monotonic()
    first, second = beats.start(), beats.start()
    time.sleep(8)
    ran = time.monotonic() - began
    beats.stop()
    rows = slots(beats.key)
    figures = assert_one_job_per_slot(beats, rows)
    assert_consecutive(rows, beats.step)
    assert len(rows) >= (ran - 6) / beats.step.total_seconds(), figures
    # Both beats fired the whole time: about twice as many fires as slots, each slot one job.
    seconds = ran - 6
    assert first.sent(beats.task) >= seconds / beats.step.total_seconds() - 1
    assert second.sent(beats.task) >= seconds / beats.step.total_seconds() - 1
    assert beats.sent() >= beats.fires_done() >= max(beats.sent() - 2, len(rows) + 1)
    assert beats.fires_failed() == 0
    assert ScheduleSlot.objects.filter(schedule__key=beats.key).count() == len(rows)
    print(
        f"two beats, {ran:.1f} s: {figures}, fires {first.sent(beats.task)} + "
        f"{second.sent(beats.task)}"
    )


def test_a_beat_killed_and_restarted_duplicates_nothing_and_catches_up_latest(beats):
    """SIGKILL (no shutdown, no last sync), down for 5 s, then a new beat: the slots due while
    no beat ran are missed, and catch_up="latest" makes the first fire after the restart
    claim only the newest due slot (Schedule.latest_slot: a fire up to EARLY = 2 s before a
    slot counts for it), with the next one ahead; none of the older missed slots."""
    step = beats.step
    beat = beats.start()
    time.sleep(4)
    killed_at = timezone.now()
    beat.kill()
    assert beat.proc is not None and beat.proc.returncode == -9
    time.sleep(5)
    restarted_at = timezone.now()
    beats.start()
    time.sleep(4)
    beats.stop()

    rows = slots(beats.key)
    figures = assert_one_job_per_slot(beats, rows)
    assert killed_at < restarted_at
    before = [row for row in rows if row.created_at < restarted_at]
    after = [row for row in rows if row.created_at >= restarted_at]
    assert before and after
    assert_consecutive(before, step)
    assert_consecutive(after, step)
    last_before, first_after = before[-1].slot_at, after[0].slot_at
    # The first fire after the restart (at `fired`): the newest due slot and the next one.
    fired = after[0].created_at
    claimed_then = {row.slot_at for row in after if row.created_at == fired}
    assert claimed_then == {beats.schedule.latest_slot(fired), beats.schedule.next_slot(fired)}
    assert first_after == min(claimed_then)
    missed = _grid(last_before + step, first_after - step, step)
    # Down 5 s, plus the new beat's start-up, less up to EARLY (2 s) claimed ahead.
    assert len(missed) >= max(1, 3 / step.total_seconds() - 1), figures
    assert not ScheduleSlot.objects.filter(schedule__key=beats.key, slot_at__in=missed).exists()
    # The missed slots: after the last fire before the kill, due by the first one after it.
    last_fire_before = max(row.created_at for row in before)
    assert all(last_fire_before < slot <= fired + timedelta(seconds=2) for slot in missed)
    assert beats.fires_failed() == 0
    print(
        f"killed and restarted: {figures}, before {len(before)}, missed {len(missed)}, "
        f"after {len(after)}; first fire after: {fired.isoformat()} claimed "
        f"{sorted(s.isoformat() for s in claimed_then)}"
    )


def _grid(first: datetime, last: datetime, step: timedelta) -> list[datetime]:
    out = []
    while first <= last:
        out.append(first)
        first += step
    return out
