"""Schedules declared in code: ``@bgjob(cron="0 9 * * *", tz="Europe/Paris")``,
``@bgjob(every=timedelta(minutes=5))`` or ``@bgjob(schedules=[Schedule(...), ...])``.

A schedule is a sequence of *slots*, instants at which the job is due. Beat (django-celery-beat)
only fires; whoever fires works out the slot and enqueues the job under a unique
(schedule, slot) row, so a second beat, a restarted beat or a duplicated message adds nothing.

Cron slots are computed with cronsim in the schedule's time zone (zoneinfo), with cron's
(Debian's) rules for daylight saving time: a time that does not exist on a spring-forward day
runs once, at the jump (02:30 becomes 03:00); a daily time that occurs twice on a fall-back day
runs once, at its first occurrence. ``every`` slots are a grid of UTC instants: multiples of the
interval since the Unix epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from django_bgjobs.exceptions import JobConfigurationError

CatchUp = Literal["latest", "all", "none"]
Overlap = Literal["allow", "skip"]
CATCH_UP: tuple[CatchUp, ...] = ("latest", "all", "none")
OVERLAP: tuple[Overlap, ...] = ("allow", "skip")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A fire a moment early (clock skew between beat and worker) still counts for its slot.
EARLY = timedelta(seconds=2)
# catch_up="all" enqueues at most this many missed slots at once (the newest ones).
MAX_CATCH_UP = 100


def beat_cannot_run(cron: str) -> str | None:
    """Why celery beat's crontab cannot evaluate these five fields, or None. cronsim reads
    more (L, #, W, 7 for Sunday); a schedule beat cannot evaluate would never fire."""
    from celery.schedules import crontab

    minute, hour, day_of_month, month_of_year, day_of_week = cron.split()
    try:
        crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except (ValueError, TypeError) as exc:
        return (
            f"celery beat cannot run this ({exc}); use plain numbers, ranges, lists and "
            "steps (Sunday is 0)"
        )
    return None


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a job runs by itself. Give ``cron`` (five fields, in ``tz``, default UTC) or
    ``every``; ``args``/``kwargs`` are passed to the job. ``name`` tells several schedules of one
    job apart (default: their position). After downtime, ``catch_up`` decides what happens to
    the slots that were missed: ``"latest"`` runs once for the newest, ``"all"`` runs each,
    ``"none"`` runs none (only slots fired on time run). ``overlap="skip"`` skips a slot while
    the previous slot's job has not finished."""

    cron: str | None = None
    every: timedelta | None = None
    tz: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    catch_up: CatchUp = "latest"
    overlap: Overlap = "allow"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise JobConfigurationError("A Schedule needs exactly one of cron=... or every=...")
        if self.cron is not None:
            if not isinstance(self.cron, str) or len(self.cron.split()) != 5:
                raise JobConfigurationError(
                    f"cron={self.cron!r}: give five fields, minute hour day month weekday "
                    "(e.g. '0 9 * * 1-5')"
                )
            try:
                CronSim(self.cron, datetime.now(UTC))
            except CronSimError as exc:
                raise JobConfigurationError(f"cron={self.cron!r} is not valid: {exc}") from None
            if problem := beat_cannot_run(self.cron):
                raise JobConfigurationError(f"cron={self.cron!r}: {problem}")
        if self.every is not None:
            if not isinstance(self.every, timedelta) or self.every < timedelta(seconds=1):
                raise JobConfigurationError(
                    f"every={self.every!r}: give a timedelta of at least one second"
                )
            if self.every.total_seconds() != int(self.every.total_seconds()):
                raise JobConfigurationError(f"every={self.every!r}: whole seconds only")
            if self.tz is not None:
                raise JobConfigurationError(
                    "tz= applies to cron schedules; every= counts real time (UTC)"
                )
        if self.tz is not None:
            try:
                ZoneInfo(self.tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise JobConfigurationError(
                    f"tz={self.tz!r} is not a time zone zoneinfo knows (e.g. 'Europe/Paris'; "
                    "on a system without tz data, pip install tzdata)"
                ) from None
        if self.catch_up not in CATCH_UP:
            raise JobConfigurationError(
                f"catch_up must be one of {CATCH_UP}, not {self.catch_up!r}"
            )
        if self.overlap not in OVERLAP:
            raise JobConfigurationError(f"overlap must be one of {OVERLAP}, not {self.overlap!r}")
        try:
            json.dumps([list(self.args), self.kwargs])
        except (TypeError, ValueError) as exc:
            raise JobConfigurationError(f"Schedule arguments must be JSON: {exc}") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz or "UTC")

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron} ({self.tz or 'UTC'})"
        assert self.every is not None
        return f"every {_seconds_text(int(self.every.total_seconds()))}"

    # --- slots ---

    def latest_slot(self, now: datetime) -> datetime:
        """The newest slot at or before ``now`` (a fire up to EARLY before it counts)."""
        moment = now + EARLY
        if self.every is not None:
            step = int(self.every.total_seconds())
            elapsed = int((moment - EPOCH).total_seconds())
            return EPOCH + timedelta(seconds=elapsed - elapsed % step)
        assert self.cron is not None
        local = moment.astimezone(self.zone)
        # cronsim's reverse iteration excludes an exact start unless it has microseconds.
        local = local.replace(microsecond=local.microsecond or 1)
        return _utc(next(CronSim(self.cron, local, reverse=True)))

    def next_slot(self, after: datetime) -> datetime:
        """The first slot strictly after ``after``."""
        if self.every is not None:
            return self.latest_slot(after - EARLY) + self.every
        assert self.cron is not None
        return _utc(next(CronSim(self.cron, after.astimezone(self.zone))))

    def slots_between(self, after: datetime, upto: datetime, limit: int) -> list[datetime]:
        """Slots s with after < s <= upto, the newest ``limit`` of them, oldest first."""
        slots: list[datetime] = []
        slot = self.latest_slot(upto - EARLY)
        while slot > after and len(slots) < limit:
            slots.append(slot)
            slot = self.latest_slot(slot - EARLY - timedelta(microseconds=1))
        return slots[::-1]

    def due_on_time(self, slot: datetime, now: datetime) -> bool:
        """Whether a fire at ``now`` is on time for ``slot`` (for catch_up="none")."""
        period = (self.every or (self.next_slot(slot) - slot)).total_seconds()
        return (now - slot).total_seconds() <= min(60.0, period / 2)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _seconds_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def schedules_from_options(
    cron: str | None,
    every: timedelta | None,
    tz: str | None,
    schedules: tuple[Schedule, ...] | list[Schedule],
    catch_up: CatchUp,
    overlap: Overlap,
) -> tuple[Schedule, ...]:
    """What ``@bgjob(cron=/every=/tz=/schedules=...)`` declares, as Schedule objects."""
    declared = list(schedules or ())
    if not all(isinstance(s, Schedule) for s in declared):
        raise JobConfigurationError("schedules= takes a list of Schedule(...) objects")
    if cron is not None or every is not None:
        declared.insert(
            0, Schedule(cron=cron, every=every, tz=tz, catch_up=catch_up, overlap=overlap)
        )
    elif tz is not None:
        raise JobConfigurationError("tz= goes with cron=")
    names = [s.name for s in declared if s.name]
    if len(names) != len(set(names)):
        raise JobConfigurationError("two schedules of one job have the same name")
    return tuple(declared)


def schedule_key(job_name: str, schedule: Schedule, index: int, count: int) -> str:
    """A stable name: the job's name, with the schedule's name (or position) when it has
    several. Renaming it (or reordering unnamed schedules) is a new schedule."""
    if schedule.name:
        return f"{job_name}:{schedule.name}"
    return job_name if count == 1 else f"{job_name}:{index}"
